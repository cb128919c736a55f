"""Five torchvision models no one here wrote, in the sandboxed runner, against the demo's own model.

Run from the repository root (no database, no broker: the runner alone)::

    .venv/bin/python bench/torchvision_models.py [--threads 1] [--batch 32] [--json PATH]

For the demo's reference model (`TinyLesionNet`, untrained: speed does not depend on weights) and
each of `clients/python/examples/torchvision_models.py`'s models (densenet121, resnet50,
efficientnet_b0, convnext_tiny, vit_b_16, weights=None, with their manifests), one run of this
script:

1. generates the demo's dataset (240 cases, seed 7, prevalence 0.3, the demo's scanner shift)
   unless `--cohort` names one, and decodes it once with the manifests' pixel pipeline;
2. builds the package with the vendor-side builder (`build_package`): its size and build time;
3. reads the model back with intake's reader and starts a sandboxed `ModelRunner` as a worker
   would (bubblewrap, seccomp, RLIMIT_DATA `--memory-limit`, default the runner's): the load
   time the worker measures on itself;
4. runs inference over the 240 cases, then Grad-CAM over the same 240 (the manifest's layer and
   reshape), `--batch` images per request: images/s of each;
5. reads the worker's memory as its own kernel counts it (`ModelRunner.memory`: VmHWM, VmRSS,
   VmData from /proc/self/status inside the sandbox), resetting the high-water mark between
   stages, so each stage's peak RSS is its own; VmData, what RLIMIT_DATA bounds, after each.

Printed: one table row per model and each figure's ratio to the reference model's, measured in
the same run. `--json PATH` writes the figures.

With `--runs`, each package then goes the whole way on a fresh embedded instance (SQLite and
storage under the work folder, eager tasks, the settings' runner: threads, RLIMIT_DATA): intake
with its sandboxed smoke test, review, and a validation run of the demo's protocol on the demo's
dataset, to the draft report; printed: each run's status, cases, Grad-CAM maps and stage seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "clients" / "python" / "examples"
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

MODELS = ["densenet121", "resnet50", "efficientnet_b0", "convnext_tiny", "vit_b_16"]
REFERENCE = "reference"
MIB = 2**20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--cases", type=int, default=240)
    parser.add_argument("--cohort", type=Path, help="an existing cohort folder (make_cohort)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the worker")
    parser.add_argument("--batch", type=int, default=32, help="images per request")
    parser.add_argument("--memory-limit", type=int, help="RLIMIT_DATA bytes (default: runner's)")
    parser.add_argument("--workdir", type=Path, help="where packages and the cohort go")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--runs", action="store_true", help="and a full run of each package")
    return parser.parse_args(argv)


def demo_images(args: argparse.Namespace, workdir: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The demo's dataset decoded as the manifests' input spec asks: (N, 1, 64, 64) float32."""
    from validation.dicom.pixels import InputSpec, batch_inputs
    from validation.management.commands.demo import SHIFT
    from validation.synthetic.cohort import generate_cohort

    folder = args.cohort
    if folder is None:
        folder = workdir / f"cohort-{args.cases}-seed7"
        if not (folder / "manifest.csv").exists():
            generate_cohort(folder, cases=args.cases, seed=7, prevalence=0.3, shift=SHIFT)
    manifest = json.loads((EXAMPLES / "manifests" / "vit_b_16.json").read_text())
    paths = sorted(str(p) for p in (folder / "dicom").glob("*.dcm"))
    images, errors = batch_inputs(paths, InputSpec.from_dict(manifest["input"]))
    readable = [i for i, e in enumerate(errors) if e is None]
    return images[readable], {"folder": str(folder), "cases": len(paths), "read": len(readable)}


def vendor_module() -> Any:
    """The vendor's module, `clients/python/examples/torchvision_models.py` (this file has its
    name), loaded from its path as the package command would find it on the vendor's path."""
    spec = importlib.util.spec_from_file_location(
        "torchvision_models", EXAMPLES / "torchvision_models.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(name: str, workdir: Path) -> tuple[Path, dict[str, Any], float]:
    """(package path, manifest, build seconds) for `name`, built by the vendor-side builder."""
    import torch

    from validation.packaging import build_package, default_manifest

    torch.manual_seed(0)
    if name == REFERENCE:
        from validation.synthetic.reference_model import GRADCAM_TARGET_LAYER, TinyLesionNet

        model = TinyLesionNet()
        manifest = default_manifest(
            name="LesionFinder", version="bench", gradcam_target_layer=GRADCAM_TARGET_LAYER
        )
    else:
        model = vendor_module().MODELS[name]()
        manifest = json.loads((EXAMPLES / "manifests" / f"{name}.json").read_text())
    began = time.perf_counter()
    out = build_package(
        model=model,
        example_input=torch.randn(2, 1, 64, 64),
        manifest=manifest,
        out_path=workdir / f"{name}.tar.gz",
    )
    return out, manifest, time.perf_counter() - began


def measure(
    name: str, images: np.ndarray, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    from validation.packaging import read_package
    from validation.runner import confinement
    from validation.runner.client import ModelRunner

    package, manifest, build_s = build(name, workdir)
    _manifest, model_bytes = read_package(package, max_archive_bytes=2**31, max_total_bytes=2**31)
    model_path = workdir / "models" / f"{name}.pt2"
    model_path.parent.mkdir(exist_ok=True)
    model_path.parent.chmod(0o755)  # the sandboxed worker runs as an unprivileged uid
    model_path.unlink(missing_ok=True)
    model_path.write_bytes(model_bytes)
    model_path.chmod(0o444)
    runner = ModelRunner(
        model_path,
        threads=args.threads,
        max_batch=args.batch,
        batch_timeout_s=600,
        memory_limit_bytes=args.memory_limit or confinement.DEFAULT_MEMORY_LIMIT_BYTES,
        device="cpu",
    )
    began = time.perf_counter()
    with runner:
        start_s = time.perf_counter() - began
        loaded = runner.memory(reset_peak=True)
        began = time.perf_counter()
        runner.predict(images)
        infer_s = time.perf_counter() - began
        inference = runner.memory(reset_peak=True)
        began = time.perf_counter()
        _outputs, cams = runner.gradcam(
            images,
            manifest["gradcam_target_layer"],
            manifest["output"]["positive_index"],
            reshape=manifest.get("gradcam_reshape"),
        )
        cam_s = time.perf_counter() - began
        gradcam = runner.memory()
        isolation = runner.isolation
    if not (np.isfinite(cams).all() and cams.shape == (len(images), 64, 64)):
        raise SystemExit(f"{name}: Grad-CAM maps {cams.shape} are not finite maps")
    return {
        "model": name,
        "package": str(package),
        "package_mib": package.stat().st_size / MIB,
        "build_s": build_s,
        "start_s": start_s,
        "load_s": runner.info["load_seconds"],
        "infer_img_s": len(images) / infer_s,
        "gradcam_img_s": len(images) / cam_s,
        "load_peak_rss_mib": _mib(loaded["peak_rss"]),
        "worker_threads": runner.info["threads"],
        "infer_peak_rss_mib": _mib(inference["peak_rss"]),
        "gradcam_peak_rss_mib": _mib(gradcam["peak_rss"]),
        "load_data_mib": _mib(loaded["data"]),
        "infer_data_mib": _mib(inference["data"]),
        "gradcam_data_mib": _mib(gradcam["data"]),
        "isolation": isolation,
    }


def _mib(value: int | None) -> float:
    if value is None:
        raise SystemExit("the worker could not read its own memory (/proc/self/status)")
    return value / MIB


COLUMNS = [
    ("model", "model", "{}"),
    ("package_mib", "package MiB", "{:.1f}"),
    ("start_s", "start s", "{:.1f}"),
    ("load_s", "load s", "{:.2f}"),
    ("infer_img_s", "infer img/s", "{:.0f}"),
    ("gradcam_img_s", "Grad-CAM img/s", "{:.1f}"),
    ("load_peak_rss_mib", "peak RSS load MiB", "{:.0f}"),
    ("infer_peak_rss_mib", "peak RSS infer MiB", "{:.0f}"),
    ("gradcam_peak_rss_mib", "peak RSS Grad-CAM MiB", "{:.0f}"),
    ("gradcam_data_mib", "VmData after Grad-CAM MiB", "{:.0f}"),
]
# Ratios to the reference: how many times larger (size, time, memory) or slower (images/s).
RATIOS = [
    ("package_mib", "size", False),
    ("load_s", "load", False),
    ("infer_img_s", "infer", True),
    ("gradcam_img_s", "Grad-CAM", True),
    ("gradcam_peak_rss_mib", "peak RSS", False),
]


def print_table(rows: list[dict[str, Any]]) -> None:
    reference = rows[0]
    header = [title for _key, title, _fmt in COLUMNS] + [
        "x reference (size, load, slower infer, slower CAM, peak RSS)"
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [fmt.format(row[key]) for key, _title, fmt in COLUMNS]
        ratios = []
        for key, _label, slower in RATIOS:
            ratio = reference[key] / row[key] if slower else row[key] / reference[key]
            ratios.append(f"{ratio:.1f}")
        cells.append(", ".join(ratios) if row is not reference else "1 (the demo's model)")
        print("| " + " | ".join(cells) + " |")


def full_runs(rows: list[dict[str, Any]], cohort: dict[str, Any]) -> list[dict[str, Any]]:
    """Each package through intake, review and a run of the demo's protocol on the demo's
    dataset (eager tasks, this instance's fresh database): what each run came to."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from validation.management.commands.demo import ORGANISATIONS, PEOPLE, PROTOCOL
    from validation.models import ModelPackage, ValidationRun
    from validation.services.datasets import dataset_create, dataset_grant, dataset_version_import
    from validation.services.organisations import organisation_create, user_create_with_role
    from validation.services.packages import package_review, package_submit
    from validation.services.protocols import protocol_create
    from validation.services.runs import run_start

    call_command("migrate", verbosity=0)
    orgs = {
        key: organisation_create(actor=None, name=name, kind=kind)
        for key, (name, kind) in ORGANISATIONS.items()
    }
    people = {
        username: user_create_with_role(
            actor=None,
            username=username,
            password=f"bench-{username}-{os.getpid()}",
            full_name=full_name,
            organisation=orgs[org_key],
            role=role,
        )
        for username, full_name, org_key, role in PEOPLE
    }
    assert get_user_model().objects.count() == len(PEOPLE)
    dataset = dataset_create(actor=people["pat"], partner=orgs["partner"], name="Chest DX/CR")
    version = dataset_version_import(
        actor=people["pat"],
        dataset=dataset,
        source=Path(cohort["folder"]) / "manifest.csv",
    )
    dataset_grant(actor=people["pat"], dataset_version=version, vendor=orgs["vendor"])
    protocol = protocol_create(actor=people["rita"], name="Demo protocol", document=PROTOCOL)
    results = []
    for row in rows:
        with open(row["package"], "rb") as upload:
            package = package_submit(actor=people["vera"], upload=upload)
        package.refresh_from_db()
        if package.status != ModelPackage.Status.SUBMITTED:
            raise SystemExit(f"{row['model']}: refused at intake: {package.refusal_detail}")
        package = package_review(actor=people["rita"], package=package, approve=True)
        began = time.perf_counter()
        run = run_start(
            actor=people["rita"], package=package, dataset_version=version, protocol=protocol
        )
        run.refresh_from_db()
        result = {
            "model": row["model"],
            "status": run.status,
            "cases": f"{run.cases_done}/{run.cases_total}",
            "maps": run.explanations.count(),
            "explain_failure": run.explain_failure,
            "seconds": time.perf_counter() - began,
            "stage_seconds": run.stage_seconds,
        }
        print(
            f"  run of {row['model']}: {result['status']}, {result['cases']} cases, "
            f"{result['maps']} Grad-CAM maps, {result['seconds']:.0f} s, stages "
            f"{run.stage_seconds}" + (f", {run.error_public}" if run.error_public else ""),
            flush=True,
        )
        if run.status != ValidationRun.Status.AWAITING_SIGNATURE or run.explain_failure:
            raise SystemExit(f"{row['model']}: the run did not complete: {run.error_detail}")
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-tv-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o755)
        # A fresh embedded instance (SQLite, storage) for --runs, under the work folder.
        os.environ["BLINDSPOT_VAR_DIR"] = str(workdir / "var")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()  # the demo command's module (its scanner shift) imports Django models
        images, cohort = demo_images(args, workdir)
        print(
            f"{cohort['read']} of {cohort['cases']} demo cases; {args.threads} torch thread(s), "
            f"batch {args.batch}; {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores",
            flush=True,
        )
        rows = []
        for name in [REFERENCE, *args.models]:
            row = measure(name, images, args, workdir)
            print(
                f"  {name}: load {row['load_s']:.2f} s, {row['infer_img_s']:.0f} img/s, "
                f"Grad-CAM {row['gradcam_img_s']:.1f} img/s, peak RSS "
                f"{row['gradcam_peak_rss_mib']:.0f} MiB",
                flush=True,
            )
            rows.append(row)
        print(f"sandbox: {rows[0]['isolation']}")
        print_table(rows)
        runs = full_runs(rows, cohort) if args.runs else []
    if args.json:
        figures = {"cohort": cohort, "rows": rows, "runs": runs}
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
