"""Dataset ingest benchmark: importing a synthetic cohort against a bare pydicom loop.

Run from the repository root::

    .venv/bin/python bench/ingest.py [--cases 2000] [--workers 1,2] [--rounds 3] [--json PATH]

One run, in a private temporary folder (its own SQLite database, sequestered store and cohort):

- writes a `--cases` synthetic DX/CR cohort with `generate_cohort` (seed 7), or uses `--cohort`;
- the baseline: a bare loop of `pydicom.dcmread` + `pixel_array` over the same files, one
  process (the cost of reading and decoding the cohort, nothing else);
- the import through the service, `dataset_version_import`, as a partner steward runs it: the
  manifest is checked, every file is hashed, parsed, decoded, de-identified with the PS3.15
  basic profile, spliced back and appended to the sequestered packs, the cases are inserted and
  the version sealed with its Merkle root. Once per `--workers` value, each a new dataset.
- cases/s of each and the ratio import / bare loop, against the target (>= 0.8). `--rounds`
  times (3) a bare loop then the imports, each ratio taken against its own round's bare loop
  (this machine's speed drifts by tens of percent over a minute); every round is printed and
  the median ratio is the figure.

The files are read once beforehand so every pass finds them in the page cache.
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
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from validation.models import DatasetVersion

TARGET = 0.8
ROOT = Path(__file__).resolve().parents[1]


def _django(workdir: Path) -> None:
    os.environ["BLINDSPOT_VAR_DIR"] = str(workdir / "var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _bare_loop(files: list[Path]) -> float:
    import pydicom

    started = time.perf_counter()
    for path in files:
        pydicom.dcmread(path).pixel_array  # noqa: B018 - decoding is the point
    return len(files) / (time.perf_counter() - started)


def _warm_page_cache(files: list[Path]) -> None:
    for path in files:
        path.read_bytes()


def _import(manifest: Path, workers: int, steward, partner) -> tuple[float, DatasetVersion]:
    from validation.services.datasets import dataset_create, dataset_version_import

    dataset = dataset_create(actor=steward, partner=partner, name=f"bench-{workers}-{time.time()}")
    started = time.perf_counter()
    version = dataset_version_import(
        actor=steward, dataset=dataset, source=manifest.parent, workers=workers
    )
    seconds = time.perf_counter() - started
    return seconds, version


def _people():
    from django.contrib.auth import get_user_model

    from validation.models import Membership, Organisation, Role

    partner = Organisation.objects.create(name="Bench partner", kind=Organisation.Kind.PARTNER)
    steward = get_user_model().objects.create_user("bench-steward")
    Membership.objects.create(user=steward, organisation=partner, role=Role.PARTNER_STEWARD)
    return steward, partner


def _round(files: list[Path], manifest: Path, workers: list[int], steward, partner) -> dict:
    """One bare loop, then one import per worker count, each ratio against this round's bare
    loop (the machine's speed drifts between rounds; within one it is closer to steady)."""
    bare = _bare_loop(files)
    imports = []
    for n in workers:
        seconds, version = _import(manifest, n, steward, partner)
        assert version.cases.filter(read_error="").count() == len(files), "unreadable files"
        rate = len(files) / seconds
        imports.append(
            {"workers": n, "seconds": seconds, "cases_per_s": rate, "ratio": rate / bare}
        )
    return {"bare_cases_per_s": bare, "imports": imports}


def _medians(rounds: list[dict], workers: list[int]) -> list[dict]:
    runs = []
    for i, n in enumerate(workers):
        per_round = [r["imports"][i] for r in rounds]
        runs.append(
            {
                "workers": n,
                "cases_per_s": statistics.median(r["cases_per_s"] for r in per_round),
                "ratio": statistics.median(r["ratio"] for r in per_round),
            }
        )
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--workers", default=f"1,{os.cpu_count() or 1}")
    parser.add_argument("--cohort", type=Path, help="an existing cohort folder (manifest.csv)")
    parser.add_argument("--rounds", type=int, default=3, help="bare loop + imports, repeated")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    workers = sorted({int(w) for w in args.workers.split(",")})

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=ROOT / "var"))
    try:
        _django(workdir)
        from validation.synthetic.cohort import generate_cohort

        if args.cohort:
            manifest = args.cohort / "manifest.csv"
        else:
            started = time.perf_counter()
            manifest = generate_cohort(workdir / "cohort", cases=args.cases, seed=7)
            print(f"cohort: {args.cases} cases written in {time.perf_counter() - started:.1f} s")
        files = sorted((manifest.parent / "dicom").glob("*.dcm"))
        size = sum(p.stat().st_size for p in files)
        print(f"{len(files)} files, {size / 1e6:.1f} MB, {os.cpu_count()} cores")
        _warm_page_cache(files)
        steward, partner = _people()

        rounds = []
        for number in range(1, args.rounds + 1):
            rounds.append(_round(files, manifest, workers, steward, partner))
            shown = ", ".join(
                f"{r['workers']} worker(s) {r['cases_per_s']:.0f}/s ({r['ratio']:.3f})"
                for r in rounds[-1]["imports"]
            )
            print(f"round {number}: bare {rounds[-1]['bare_cases_per_s']:.0f}/s; import {shown}")
        runs = _medians(rounds, workers)
        bare = statistics.median(r["bare_cases_per_s"] for r in rounds)
        print(f"bare pydicom read + decode: {bare:7.1f} cases/s (median of {len(rounds)} rounds)")
        for run in runs:
            verdict = "meets" if run["ratio"] >= TARGET else "BELOW"
            print(
                f"import, {run['workers']} worker(s): {run['cases_per_s']:7.1f} cases/s; "
                f"ratio import/bare {run['ratio']:.3f} (median of rounds; {verdict} the "
                f"{TARGET} target)"
            )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "cases": len(files),
                        "rounds": rounds,
                        "imports": runs,
                        "target": TARGET,
                        "cores": os.cpu_count(),
                    },
                    indent=2,
                )
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
