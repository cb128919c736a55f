"""End-to-end validation runs on real Celery workers against the model's raw forward pass.

Run from the repository root (needs PostgreSQL and Redis, as in production; both are local here)::

    .venv/bin/python bench/run.py [--cases 2000] [--size 128] [--batch 32] [--shard 128]

One run of this script:

1. creates a fresh PostgreSQL database (`--database`, dropped and re-made) and flushes a Redis
   database, migrates, generates a synthetic cohort (`--cases`, prevalence 0.3) and imports it
   through the partner intake; builds a vendor package of a ResNet-18 (torchvision, random
   weights: throughput does not depend on them; one input channel, `--size` pixels square,
   Grad-CAM layer `layer4`) and submits it through intake, smoke test included;
2. measures the **raw** throughput: the same exported program loaded in this process the way the
   sandboxed worker loads it, one torch thread, forward passes over pre-decoded float32 tensors of
   the cohort's first cases at `--batch` per pass;
3. starts one Celery GPU worker (solo pool, one torch thread, device auto) and times two runs of
   the demo protocol (1,000-replicate bootstrap, subgroups, calibration; Grad-CAM for positives)
   from `run_start` in this process, through Redis, to the draft report: the first run finds the
   worker cold, the second warm;
4. adds a second worker and times two more runs: the first shows cache-aware routing (only the
   new worker starts cold), the second has both warm.

End-to-end cases/s = cases / (draft report time - start time). Printed: raw cases/s, each run's
cases/s, cold starts, per-stage seconds and the shard stage sums, and the two ratios against
their targets: warm one-worker end-to-end / raw (>= 0.7) and warm two-worker / one-worker
(>= 1.7). `--json PATH` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128, help="model input, pixels square")
    parser.add_argument("--batch", type=int, default=32, help="images per model call")
    parser.add_argument("--shard", type=int, default=128, help="cases per shard")
    parser.add_argument("--raw-cases", type=int, default=512)
    parser.add_argument("--cohort", type=Path, help="an existing cohort folder (make_cohort)")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="blindspot_bench_run")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def fresh_database(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def configure(args: argparse.Namespace, var_dir: Path) -> dict[str, str]:
    """Environment shared by this process (the web side) and the workers, set before Django."""
    from tests.support.worker_fleet import redis_url

    broker, _started = redis_url(args.redis)
    import redis

    redis.Redis.from_url(broker).flushdb()
    env = {
        "DATABASE_URL": fresh_database(args.postgres, args.database),
        "CELERY_BROKER_URL": broker,
        "BLINDSPOT_VAR_DIR": str(var_dir),
        "BLINDSPOT_RUNNER_THREADS": "1",
        "BLINDSPOT_RUNNER_BATCH_SIZE": str(args.batch),
        "BLINDSPOT_RUN_SHARD_SIZE": str(args.shard),
        "BLINDSPOT_RUNNER_DEVICE": "auto",
        "BLINDSPOT_WORKER_HEARTBEAT_S": "2",
    }
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def build_resnet_package(out: Path, size: int) -> Path:
    import torch
    import torchvision

    from validation.packaging import build_package, default_manifest

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=1)
    model.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.eval()
    manifest = default_manifest(
        name="ResNet18 bench", version="1.0", gradcam_target_layer="layer4", height=size, width=size
    )
    return build_package(
        model=model, example_input=torch.randn(2, 1, size, size), manifest=manifest, out_path=out
    )


def world(args: argparse.Namespace, var_dir: Path):
    """Organisations, people, the imported dataset version, the approved package, the protocol."""
    from validation.management.commands.demo import PROTOCOL
    from validation.models import Organisation, Role
    from validation.services.datasets import dataset_create, dataset_grant, dataset_version_import
    from validation.services.organisations import organisation_create, user_create_with_role
    from validation.services.packages import (
        package_review,
        package_smoke_execute,
        package_submit,
    )
    from validation.services.protocols import protocol_create
    from validation.synthetic.cohort import generate_cohort

    orgs = {
        kind: organisation_create(actor=None, name=f"Bench {kind}", kind=kind)
        for kind in (
            Organisation.Kind.VENDOR,
            Organisation.Kind.PARTNER,
            Organisation.Kind.VALIDATOR,
        )
    }

    def person(name, kind, role):
        return user_create_with_role(
            actor=None,
            username=name,
            password="bench-password-1",  # noqa: S106 - a throwaway database
            full_name=name,
            organisation=orgs[kind],
            role=role,
        )

    vendor = person("vendor", Organisation.Kind.VENDOR, Role.VENDOR_MEMBER)
    steward = person("steward", Organisation.Kind.PARTNER, Role.PARTNER_STEWARD)
    reviewer = person("reviewer", Organisation.Kind.VALIDATOR, Role.REVIEWER)
    began = time.perf_counter()
    if args.cohort:
        manifest = args.cohort / "manifest.csv"
    else:
        manifest = generate_cohort(var_dir / "cohort", cases=args.cases, seed=7, prevalence=0.3)
    dataset = dataset_create(
        actor=steward, partner=orgs[Organisation.Kind.PARTNER], name="Bench cohort"
    )
    version = dataset_version_import(actor=steward, dataset=dataset, source=manifest)
    dataset_grant(actor=steward, dataset_version=version, vendor=orgs[Organisation.Kind.VENDOR])
    print(f"cohort imported: {version.cases.count()} cases, {time.perf_counter() - began:.1f} s")
    began = time.perf_counter()
    package_path = build_resnet_package(var_dir / "resnet18.tar.gz", args.size)
    with open(package_path, "rb") as fh:
        package = package_submit(actor=vendor, upload=fh)
    # No worker is up yet: this process runs the smoke test itself (the queued message then
    # finds the package decided and returns).
    package_smoke_execute(package_id=package.pk)
    package = package_review(actor=reviewer, package=package, approve=True)
    print(f"package exported, submitted and smoke-tested: {time.perf_counter() - began:.1f} s")
    protocol = protocol_create(actor=reviewer, name="Bench protocol", document=PROTOCOL)
    return reviewer, package, version, protocol


def raw_throughput(package, version, args: argparse.Namespace) -> dict:
    """Forward passes in this process on pre-decoded tensors: the model's own speed."""
    import numpy as np
    import torch

    from validation.dicom.pixels import InputSpec, batch_inputs
    from validation.runner_pool import _model_file
    from validation.storage import case_dicom_bytes

    torch.set_num_threads(1)
    spec = InputSpec.from_dict(package.manifest["input"])
    cases = list(version.cases.filter(read_error="").order_by("case_id")[: args.raw_cases])
    x, errors = batch_inputs([case_dicom_bytes(c) for c in cases], spec)
    x = x[[i for i, e in enumerate(errors) if e is None]]
    module = torch.export.unflatten(torch.export.load(str(_model_file(package))))
    batches = [
        torch.from_numpy(np.ascontiguousarray(x[i : i + args.batch]))
        for i in range(0, len(x), args.batch)
    ]
    with torch.no_grad():
        module(batches[0])  # warm-up
        rates = []
        for _ in range(3):
            began = time.perf_counter()
            for batch in batches:
                module(batch)
            rates.append(len(x) / (time.perf_counter() - began))
    return {"cases_per_s": statistics.median(rates), "passes": [round(r, 1) for r in rates]}


def timed_run(reviewer, package, version, protocol, label: str) -> dict:
    from validation.models import ValidationRun
    from validation.selectors import run_execution
    from validation.services.runs import run_start

    began = time.perf_counter()
    run = run_start(actor=reviewer, package=package, dataset_version=version, protocol=protocol)
    while True:
        run.refresh_from_db()
        if run.status in ("awaiting-signature", "failed", "cancelled"):
            break
        time.sleep(0.1)
    seconds = time.perf_counter() - began
    if run.status != ValidationRun.Status.AWAITING_SIGNATURE:
        raise SystemExit(f"{label}: run {run.pk} {run.status}: {run.error_detail}")
    summary = run_execution(run)
    result = {
        "label": label,
        "run": run.pk,
        "seconds": round(seconds, 2),
        "cases_per_s": round(run.cases_total / seconds, 1),
        "cold_starts": summary["cold_starts"],
        "workers": summary["workers"],
        "devices": summary["devices"],
        "stages": run.stage_seconds,
        "shard_seconds": summary["seconds"],
        "explanations": run.explanations.count(),
    }
    print(
        f"{label:<34} {result['seconds']:7.1f} s {result['cases_per_s']:8.1f} cases/s   "
        f"cold starts {result['cold_starts']}  shards on {', '.join(summary['workers'])}"
    )
    print(f"{'':<34} stages {run.stage_seconds}  shard sums {summary['seconds']}")
    return result


def use_broker(url: str) -> None:
    """This process plays the web side: tasks go to Redis, not run eagerly."""
    from config.celery import app

    app.conf.task_always_eager = False
    # The item is what `app.conf.broker_url = url` sets; celery-types has that attribute read-only.
    app.conf["broker_url"] = url


def main() -> int:
    args = parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="blindspot-bench-run-"))
    env = configure(args, var_dir)
    from tests.support.worker_fleet import WorkerFleet

    reviewer, package, version, protocol = world(args, var_dir)
    raw = raw_throughput(package, version, args)
    label = "raw forward, in process, 1 thread"
    print(f"{label:<34} {raw['cases_per_s']:17.1f} cases/s  {raw['passes']}")
    use_broker(env["CELERY_BROKER_URL"])
    runs = []
    with WorkerFleet(env, log_dir=var_dir / "logs") as fleet:
        first = fleet.start("w1")
        fleet.wait_ready([first])
        runs.append(timed_run(reviewer, package, version, protocol, "1 worker, cold"))
        runs.append(timed_run(reviewer, package, version, protocol, "1 worker, warm"))
        second = fleet.start("w2")
        fleet.wait_ready([second])
        runs.append(timed_run(reviewer, package, version, protocol, "2 workers, second one cold"))
        runs.append(timed_run(reviewer, package, version, protocol, "2 workers, warm"))
    one, two = runs[1]["cases_per_s"], runs[3]["cases_per_s"]
    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "cases": args.cases,
        "model": f"ResNet-18, 1x{args.size}x{args.size}",
        "batch": args.batch,
        "shard": args.shard,
        "raw": raw,
        "runs": runs,
        "end_to_end_over_raw": round(one / raw["cases_per_s"], 3),
        "two_workers_over_one": round(two / one, 3),
    }
    print(
        f"\nend-to-end (1 worker, warm) / raw forward = {figures['end_to_end_over_raw']:.2f} "
        f"(target >= 0.70)\n2 workers / 1 worker (warm)             = "
        f"{figures['two_workers_over_one']:.2f} (target >= 1.70)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
