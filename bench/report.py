"""Report benchmark: JSON assembly and PDF rendering of a full report with 10 subgroup attributes
and 12 Grad-CAM exemplars.

Run from the repository root::

    .venv/bin/python bench/report.py [--cases 240] [--repeat 3] [--json PATH]

One run, in a private temporary folder (its own SQLite database, sequestered store and media):

- `manage.py demo --protocol P` produces a real issued report: a synthetic cohort is imported,
  the reference model packaged, run blind in the sandboxed runner with Grad-CAM on the
  positives, scored (bootstrap, calibration, subgroups) and signed. P is the demo's protocol
  with 10 subgroup attributes (sex, age, manufacturer, model, institution, body part, race,
  site, kVp, photometric interpretation); the grant allows exemplars, so the report carries 12.
- Then, timed `--repeat` times each (median printed, all shown): the JSON assembly
  (`report_document_build`: results, exemplar overlays decoded from the sequestered DICOM,
  audit excerpt) and the rendering of the issued document to PDF (`render_pdf`: WeasyPrint,
  matplotlib plots, fonts subset), and that every render gives the issued PDF's bytes.
- The target: each under 5 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

TARGET_SECONDS = 5.0
ROOT = Path(__file__).resolve().parents[1]
SUBGROUPS = [
    {"attribute": "sex"},
    {"attribute": "age", "bins": [18, 40, 65, 120]},
    {"attribute": "manufacturer"},
    {"attribute": "model"},
    {"attribute": "institution"},
    {"attribute": "body_part"},
    {"attribute": "race", "exploratory": True},
    {"attribute": "site"},
    {"attribute": "kvp", "bins": [40, 80, 100, 150]},
    {"attribute": "photometric", "exploratory": True},
]


def _django(workdir: Path) -> None:
    os.environ["BLINDSPOT_VAR_DIR"] = str(workdir / "var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _issued_report(workdir: Path, cases: int):
    from django.core.management import call_command

    from reports.models import Report
    from validation.management.commands.demo import PROTOCOL

    protocol = workdir / "protocol.json"
    protocol.write_text(json.dumps({**PROTOCOL, "subgroups": SUBGROUPS}))
    started = time.perf_counter()
    call_command("demo", cases=cases, protocol=protocol, stdout=open(os.devnull, "w"))
    print(f"demo run with 10 subgroup attributes: {time.perf_counter() - started:.1f} s")
    return Report.objects.filter(status=Report.Status.ISSUED).get()


T = TypeVar("T")


def _timed(function: Callable[[], T], repeat: int) -> tuple[list[float], T | None]:
    """Seconds of each of `repeat` calls, and the last call's result (None if none ran)."""
    seconds: list[float] = []
    result: T | None = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=240)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--document", type=Path, help="also keep the issued document JSON here")
    args = parser.parse_args(argv)

    (ROOT / "var").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-report-", dir=ROOT / "var"))
    try:
        _django(workdir)
        from django.utils import timezone

        from reports.document import report_document_build
        from reports.rendering import render_pdf
        from validation.storage import media_path

        report = _issued_report(workdir, args.cases)
        issued = json.loads(media_path(report.pdf_path.removesuffix(".pdf") + ".json").read_text())
        if args.document:
            args.document.write_text(json.dumps(issued))
        attributes = len({row["attribute"] for row in issued["subgroups"]})
        exemplars = len(issued["explainability"]["exemplars"])
        print(
            f"report {report.reference}: {attributes} subgroup attributes, "
            f"{len(issued['subgroups'])} subgroup rows, {exemplars} exemplars, "
            f"PDF {report.pdf_sha256[:12]}, {os.cpu_count()} cores"
        )
        build, document = _timed(
            lambda: report_document_build(
                report.run, report_ref=report.reference, version=1, generated_at=timezone.now()
            ),
            args.repeat,
        )
        render, pdf = _timed(lambda: render_pdf(issued), args.repeat)
        same = pdf == media_path(report.pdf_path).read_bytes()
        figures = {"json_assembly_s": build, "render_s": render}
        for name, label in (("json_assembly_s", "JSON assembly"), ("render_s", "PDF render")):
            median = statistics.median(figures[name])
            verdict = "meets" if median < TARGET_SECONDS else "MISSES"
            shown = ", ".join(f"{s:.2f}" for s in figures[name])
            print(
                f"{label}: {median:.2f} s median ({shown}); "
                f"{verdict} the <{TARGET_SECONDS:g} s target"
            )
        assert pdf is not None and document is not None  # repeat >= 1: the medians above exist
        print(f"PDF {len(pdf) / 1e6:.2f} MB; identical to the issued PDF: {same}")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        **figures,
                        "attributes": attributes,
                        "subgroup_rows": len(issued["subgroups"]),
                        "exemplars": exemplars,
                        "identical_pdf": same,
                        "document_keys": sorted(document),
                        "target_s": TARGET_SECONDS,
                    },
                    indent=2,
                )
            )
        return 0 if same else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
