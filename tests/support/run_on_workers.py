"""What the tests that run real Celery workers share (the crash tests, the fault test, the
smoke test on a worker): the environment a worker process needs to reach this test's database,
broker and folders; waiting on the fleet with its logs on timeout; comparing two runs' metrics."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from tests.support.worker_fleet import WorkerFleet


def worker_env(settings: Any, broker: str, **extra: str) -> dict[str, str]:
    """The worker processes' environment: this test's PostgreSQL database, the broker, the test's
    own media, sequestered, runner-cache and package-staging folders, then `extra`."""
    from django.db import connection

    db = connection.settings_dict
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return {
        "DATABASE_URL": f"postgres://{db['USER']}@{host}:{port}/{db['NAME']}",
        "CELERY_BROKER_URL": broker,
        "BLINDSPOT_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "BLINDSPOT_SEQUESTERED_ROOT": str(settings.SEQUESTERED_ROOT),
        "BLINDSPOT_RUNNER_CACHE_ROOT": str(settings.RUNNER_CACHE_ROOT),
        "BLINDSPOT_PACKAGE_STAGING_ROOT": str(settings.PACKAGE_STAGING_ROOT),
        **extra,
    }


def wait_for(
    predicate: Callable[[], Any],
    timeout_s: float,
    what: str,
    fleet: WorkerFleet,
    interval: float = 0.02,
    state: Callable[[], str] | None = None,
) -> Any:
    """`predicate()`'s first truthy value; on timeout an AssertionError with `state()` (by default
    the runs and their shards) and every worker's log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(interval)
    logs = "\n".join(f"--- {h}\n{fleet.log(h)}" for h in fleet.workers)
    raise AssertionError(f"timed out waiting for {what}\n{(state or runs_state)()}\n{logs}")


def runs_state() -> str:
    from validation.models import RunShard, ValidationRun

    runs = list(ValidationRun.objects.values_list("pk", "status", "error_detail"))
    shards = list(RunShard.objects.values_list("run_id", "index", "status", "worker", "attempts"))
    return f"runs {runs}\nshards {shards}"


def assert_close(a: Any, b: Any, path: str = "") -> None:
    """Equal structures; floats equal to 1e-9 relative (batches differ once a shard resumes)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b), path
    else:
        assert a == b, path
