"""The API under load while a validation run executes on real Celery workers.

Run from the repository root (needs PostgreSQL and Redis, as in production; both are local here)::

    .venv/bin/python bench/api_load.py [--seconds 60] [--clients 20] [--cases 600]

One run of this script:

1. sets up the world of `bench/run.py` in a fresh PostgreSQL database (`--database`, dropped and
   re-made) and a flushed Redis database: a synthetic cohort imported through the partner
   intake, a ResNet-18 package submitted and smoke-tested, the demo protocol; starts one Celery
   worker (`tests/support/worker_fleet.py`, the production layout: solo pool, every queue);
   executes one run and has it signed (review, then approval), so that there is an issued
   report to download;
2. starts the web process production uses (the Procfile's gunicorn, 3 sync workers, loopback
   only, `DJANGO_DEBUG=0`) on a free port;
3. **baseline**: `--clients` concurrent clients, each a thread with its own vendor API token,
   for `--seconds`, cycling through: GET a run's status, list runs, list packages, download the
   issued report's PDF; no run executing (the worker idle);
4. **under a run**: the same load for `--seconds` while runs execute on the worker (a new one is
   started whenever the last one finishes, so one is always executing).

Printed for each phase: requests, requests/s, p50/p95/p99 latency, the count of 5xx answers and
of transport errors, and what ran meanwhile; then the ratios under a run / baseline. Exits 1 if
any request answered 5xx or failed in transport (there must be none), or a run failed.
`--json PATH` writes the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

PASSWORD = "bench-password-1"  # noqa: S105 - bench/run.py's people, in a throwaway database
FINAL = ("awaiting-signature", "issued", "failed", "cancelled")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--cases", type=int, default=600, help="cases per run")
    parser.add_argument("--size", type=int, default=128, help="model input, pixels square")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--shard", type=int, default=128)
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn workers (Procfile)")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="blindspot_bench_api_load")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--json", type=Path)
    # What bench/run.py's setup reads and this benchmark does not vary.
    parser.set_defaults(cohort=None, raw_cases=0)
    return parser.parse_args()


@dataclass
class Phase:
    """What the clients saw in one phase."""

    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    transport_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    kinds: dict[str, list[float]] = field(default_factory=dict)

    def record(self, kind: str, status: int, latency: float) -> None:
        with self.lock:
            self.latencies.append(latency)
            self.statuses[status] += 1
            self.kinds.setdefault(kind, []).append(latency)

    def figures(self) -> dict:
        ordered = sorted(self.latencies)
        cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else []

        def ms(q: int) -> float:
            return round(cuts[q - 1] * 1000, 1) if cuts else float("nan")

        return {
            "requests": len(ordered),
            "requests_per_s": round(len(ordered) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": ms(50),
            "p95_ms": ms(95),
            "p99_ms": ms(99),
            "status_5xx": sum(n for s, n in self.statuses.items() if s >= 500),
            "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "p50_ms_by_kind": {
                kind: round(statistics.median(values) * 1000, 1)
                for kind, values in sorted(self.kinds.items())
            },
            "requests_by_kind": {kind: len(values) for kind, values in sorted(self.kinds.items())},
            "transport_errors": len(self.transport_errors),
        }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_web(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen:
    """The Procfile's web process, bound to loopback; returns once it answers."""
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                gunicorn,
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--timeout",
                "120",
            ],
            cwd=REPO_ROOT,
            env={**os.environ, **env, "DJANGO_DEBUG": "0", "PYTHONPATH": str(REPO_ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/runs/")
            conn.getresponse().read()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"gunicorn exited:\n{log.read_text()[-4000:]}") from None
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not answer within 60 s")


def client(
    port: int, token: str, paths: list[tuple[str, str]], phase: Phase, stop: float, offset: int
) -> None:
    """One client: its requests in turn (starting at `offset`), one at a time, until `stop`."""
    headers = {"Authorization": f"Token {token}", "Connection": "close"}
    i = offset
    while time.monotonic() < stop:
        kind, path = paths[i % len(paths)]
        i += 1
        began = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
        except OSError as exc:
            with phase.lock:
                phase.transport_errors.append(f"{kind}: {exc!r}")
            continue
        phase.record(kind, response.status, time.perf_counter() - began)


def load(name: str, port: int, tokens: list[str], paths, seconds: float) -> Phase:
    phase = Phase(name)
    began = time.monotonic()
    stop = began + seconds
    threads = [
        threading.Thread(target=client, args=(port, token, paths, phase, stop, n), daemon=True)
        for n, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.monotonic() - began
    return phase


def wait_final(run, timeout_s: float = 1800) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in FINAL:
            return run.status
        time.sleep(0.2)
    raise SystemExit(f"run {run.pk} did not finish within {timeout_s} s ({run.status})")


def issued_report(run, reviewer, approver):
    """Sign the run's report (review, then approval) and wait until it is issued."""
    from reports.models import Report
    from reports.services import report_sign

    report = Report.objects.filter(run=run).order_by("-version").first()
    if report is None:
        raise SystemExit(f"run {run.pk} has no report")
    for actor, meaning in ((reviewer, "reviewed"), (approver, "approved")):
        report_sign(actor=actor, report=report, password=PASSWORD, meaning=meaning)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        report.refresh_from_db()
        if report.status == Report.Status.ISSUED:
            return report
        time.sleep(0.2)
    raise SystemExit(f"report {report.pk} was not issued within 300 s ({report.status})")


def main() -> int:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in a log
    var_dir = Path(tempfile.mkdtemp(prefix="blindspot-bench-api-load-"))
    from run import configure, use_broker, world  # bench/run.py, beside this script

    env = configure(args, var_dir)
    from tests.support.worker_fleet import WorkerFleet
    from validation.models import Organisation, Role, ValidationRun
    from validation.services.organisations import user_create_with_role
    from validation.services.runs import run_start
    from validation.services.tokens import api_token_create

    reviewer, package, version, protocol = world(args, var_dir)
    orgs = {org.kind: org for org in Organisation.objects.all()}
    approver = user_create_with_role(
        actor=None,
        username="approver",
        password=PASSWORD,
        full_name="Bench Approver",
        organisation=orgs[Organisation.Kind.VALIDATOR],
        role=Role.QA_APPROVER,
    )
    tokens = []
    for n in range(args.clients):
        user = user_create_with_role(
            actor=None,
            username=f"vendor-client-{n}",
            password=PASSWORD,
            full_name=f"Vendor client {n}",
            organisation=orgs[Organisation.Kind.VENDOR],
            role=Role.VENDOR_MEMBER,
        )
        tokens.append(api_token_create(actor=user, name="bench api_load")[1])

    use_broker(env["CELERY_BROKER_URL"])
    runs_started: list = []
    paths: list[tuple[str, str]] = [("run status", "")]

    def start() -> ValidationRun:
        run = run_start(actor=reviewer, package=package, dataset_version=version, protocol=protocol)
        runs_started.append(run)
        paths[0] = ("run status", f"/api/v1/runs/{run.pk}/")  # clients poll the newest run
        return run

    with WorkerFleet(env, log_dir=var_dir / "logs") as fleet:
        worker = fleet.start("w1")
        fleet.wait_ready([worker])
        first = start()
        began = time.perf_counter()
        if wait_final(first) != "awaiting-signature":
            raise SystemExit(f"the first run ended {first.status}: {first.error_detail}")
        run_seconds = time.perf_counter() - began
        report = issued_report(first, reviewer, approver)
        print(f"one run of {first.cases_total} cases: {run_seconds:.1f} s; its report issued")

        paths += [
            ("list runs", "/api/v1/runs/"),
            ("list packages", "/api/v1/packages/"),
            ("report pdf", f"/api/v1/reports/{report.pk}/pdf/"),
        ]
        port = free_port()
        web = start_web(env, port, args.web_workers, var_dir / "web.log")
        try:
            baseline = load("baseline (no run)", port, tokens, paths, args.seconds)
            stop = threading.Event()
            outcomes: list[str] = []

            def keep_a_run_executing() -> None:
                while not stop.is_set():
                    run = start()
                    outcomes.append(wait_final(run))

            runner = threading.Thread(target=keep_a_run_executing, daemon=True)
            runner.start()
            deadline = time.monotonic() + 120
            while not any(r.status == "running" for r in _refreshed(runs_started[1:])):
                if time.monotonic() > deadline:
                    raise SystemExit("the run under load did not start within 120 s")
                time.sleep(0.1)
            before = _predictions()
            loaded = load("while a run executes", port, tokens, paths, args.seconds)
            scored = _predictions() - before
            stop.set()
            # The run in flight is not part of the measurement: cancelled, it stops at its next
            # batch (a run that failed meanwhile is in `outcomes`).
            _cancel_in_flight(runs_started, reviewer)
            runner.join(timeout=600)
        finally:
            web.terminate()
            web.wait(timeout=30)

    figures = summarise(args, baseline, loaded, scored, outcomes)
    failures = sum(
        figures[p]["status_5xx"] + figures[p]["transport_errors"] for p in ("baseline", "under_run")
    )
    web_log = (var_dir / "web.log").read_text(errors="replace")
    shutil.rmtree(var_dir, ignore_errors=True)
    if failures or "failed" in outcomes:
        print(f"FAIL: {failures} requests answered 5xx or failed; runs {outcomes}")
        print(web_log[-4000:])
        return 1
    return 0


def summarise(args, baseline: Phase, loaded: Phase, scored: int, outcomes: list[str]) -> dict:
    """Print the figures of both phases and their ratios; write them to `--json`."""
    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "clients": args.clients,
        "seconds": args.seconds,
        "web": f"gunicorn, {args.web_workers} sync workers",
        "baseline": baseline.figures(),
        "under_run": {
            **loaded.figures(),
            "cases_scored_meanwhile": scored,
            "runs_meanwhile": outcomes,
        },
    }
    b, u = figures["baseline"], figures["under_run"]
    figures["ratios_under_run_over_baseline"] = {
        "requests_per_s": round(u["requests_per_s"] / b["requests_per_s"], 3),
        "p50": round(u["p50_ms"] / b["p50_ms"], 3),
        "p95": round(u["p95_ms"] / b["p95_ms"], 3),
        "p99": round(u["p99_ms"] / b["p99_ms"], 3),
    }
    for phase in (baseline, loaded):
        f = phase.figures()
        print(
            f"{phase.name:<22} {f['requests']:6d} requests {f['requests_per_s']:7.1f} req/s   "
            f"p50 {f['p50_ms']:7.1f} ms  p95 {f['p95_ms']:7.1f} ms  p99 {f['p99_ms']:7.1f} ms   "
            f"5xx {f['status_5xx']}  transport errors {f['transport_errors']}  {f['statuses']}"
        )
        print(f"{'':<22} p50 by request: {f['p50_ms_by_kind']}")
        for error in phase.transport_errors[:5]:
            print(f"    {error}")
    print(f"{'':<22} meanwhile: {scored} cases scored by the worker; runs {outcomes}")
    r = figures["ratios_under_run_over_baseline"]
    print(
        f"under a run / baseline: req/s {r['requests_per_s']:.2f}, p50 {r['p50']:.2f}, "
        f"p95 {r['p95']:.2f}, p99 {r['p99']:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


def _cancel_in_flight(runs: list, reviewer) -> None:
    from validation.errors import ApplicationError
    from validation.services.runs import run_cancel

    for run in _refreshed(runs):
        if run.status not in FINAL:
            try:
                run_cancel(actor=reviewer, run=run)
            except ApplicationError:  # it finished meanwhile
                pass


def _refreshed(runs: list) -> list:
    for run in runs:
        run.refresh_from_db()
    return runs


def _predictions() -> int:
    from validation.models import Prediction

    return Prediction.objects.count()


if __name__ == "__main__":
    sys.exit(main())
