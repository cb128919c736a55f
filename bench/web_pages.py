"""How long each web page takes, for every demo role, on the demo's data.

Run from the repository root after `make demo`::

    .venv/bin/python bench/web_pages.py [--var var] [--per-shape 3] [--json PATH]

Copies the demo's SQLite database (so the bench's own sign-ins do not enter the demo's record),
signs in as each demo user through the sign-in page, and visits every page reachable by links
from the overview (tests/support/crawl.py: same-site GET links; sign-out and downloads skipped;
at most `--per-shape` pages of one shape such as /runs/N/). Each page is requested twice: the
first (cold: templates compiled, caches empty) and the second (warm) are timed in process with
Django's test client (the whole middleware stack, the database, the templates; not the network).

Printed per role: pages, median and slowest (cold and warm), the slowest page; then the
baseline (the sign-in page, warm) and the ratio of the slowest warm page to the 1 s budget of
issue 15. Exits 1 if any page answers 5xx, a link leads to a 404, or a warm page takes over 1 s.
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

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
BUDGET_S = 1.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var", type=Path, default=REPO_ROOT / "var", help="the demo's var/")
    parser.add_argument("--per-shape", type=int, default=3)
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def setup(var: Path, scratch: Path) -> None:
    source = var / "blindspot.sqlite3"
    if not source.exists():
        sys.exit(f"No demo database at {source}: run `make demo` first.")
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", scratch / f"blindspot.sqlite3{suffix}")
    os.environ.update(
        DATABASE_URL=f"sqlite:///{scratch / 'blindspot.sqlite3'}",
        BLINDSPOT_VAR_DIR=str(var),
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    import logging

    import django

    django.setup()
    logging.getLogger("django.request").setLevel(logging.CRITICAL)  # failures are listed below


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as scratch:
        setup(args.var.resolve(), Path(scratch))
        from django.test import Client

        from tests.support.crawl import crawl
        from validation.management.commands.demo import PEOPLE, demo_password

        client = Client()
        client.get("/accounts/login/")
        began = time.perf_counter()
        client.get("/accounts/login/")
        baseline = time.perf_counter() - began
        results: dict[str, dict] = {}
        failures: list[str] = []
        for username, _, _, role in PEOPLE:
            client = Client()
            client.post(
                "/accounts/login/", {"username": username, "password": demo_password(username)}
            )
            cold = crawl(client, per_shape=args.per_shape)
            warm = []
            for visit in cold:
                t0 = time.perf_counter()
                status = client.get(visit.url).status_code
                warm.append((visit.url, status, time.perf_counter() - t0))
            # A link to a page that answers 404 is a broken link; 5xx is a server error.
            failures += [f"{role} {v.url}: {v.status}" for v in cold if v.status in (404, 500)]
            failures += [f"{role} {v.url}: {v.status}" for v in cold if v.status > 500]
            failures += [f"{role} {u}: {s:.2f} s" for u, _, s in warm if s > BUDGET_S]
            slowest = max(warm, key=lambda w: w[2])
            results[role] = {
                "pages": len(cold),
                "cold_median_s": statistics.median(v.seconds for v in cold),
                "cold_max_s": max(v.seconds for v in cold),
                "warm_median_s": statistics.median(w[2] for w in warm),
                "warm_max_s": slowest[2],
                "slowest": slowest[0],
                "slowest_cold": max(cold, key=lambda v: v.seconds).url,
                "statuses": sorted({v.status for v in cold}),
            }
        print(
            f"{'role':<18}{'pages':>6}{'cold med':>10}{'cold max':>10}{'warm med':>10}"
            f"{'warm max':>10}  slowest page"
        )
        for label, r in results.items():
            print(
                f"{label:<18}{r['pages']:>6}{r['cold_median_s'] * 1000:>8.0f}ms"
                f"{r['cold_max_s'] * 1000:>8.0f}ms{r['warm_median_s'] * 1000:>8.0f}ms"
                f"{r['warm_max_s'] * 1000:>8.0f}ms  {r['slowest']}"
            )
        slowest_warm = max(r["warm_max_s"] for r in results.values())
        print(f"baseline (sign-in page, warm): {baseline * 1000:.1f} ms")
        print(f"slowest warm page / 1 s budget: {slowest_warm / BUDGET_S:.3f}")
        print(f"slowest warm page / baseline: {slowest_warm / baseline:.1f}")
        if args.json:
            args.json.write_text(json.dumps({"baseline_s": baseline, "roles": results}, indent=2))
        for label, r in results.items():
            print(f"{label}: statuses {r['statuses']}; slowest cold page {r['slowest_cold']}")
        for failure in failures:
            print("FAIL", failure)
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
