"""The package smoke test on a real Celery worker: the upload answers `testing` at once and a
`gpu` worker (its own process, real Redis, PostgreSQL) decides. PostgreSQL tier only."""

import time

import pytest
from django.db import connection

from audit.models import AuditAction
from audit.selectors import audit_events_for
from tests.support.worker_fleet import WorkerFleet, redis_url
from validation.models import ModelPackage
from validation.services.packages import package_submit

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.sandbox,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def broker(monkeypatch):
    """A Redis broker this process sends to, as the web process does in production."""
    if connection.vendor != "postgresql":
        pytest.skip("worker processes need a shared database: runs in the PostgreSQL tier")
    try:
        url, proc = redis_url()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    import redis

    from config.celery import app

    redis.Redis.from_url(url).flushdb()

    def drop_connections() -> None:
        for pool in (app.amqp._producer_pool, app._pool):  # type: ignore[attr-defined]  # private, untyped
            if pool is not None:
                pool.force_close_all()
        app.amqp._producer_pool = app._pool = None  # type: ignore[attr-defined]  # private, untyped

    drop_connections()
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setitem(app.conf, "broker_url", url)
    yield url
    drop_connections()
    if proc is not None:
        proc.kill()


def test_the_upload_answers_testing_and_a_gpu_worker_decides(
    world, package_file, settings, tmp_path, broker
):
    db = connection.settings_dict
    env = {
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "CELERY_BROKER_URL": broker,
        "BLINDSPOT_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "BLINDSPOT_SEQUESTERED_ROOT": str(settings.SEQUESTERED_ROOT),
        "BLINDSPOT_RUNNER_CACHE_ROOT": str(settings.RUNNER_CACHE_ROOT),
        "BLINDSPOT_PACKAGE_STAGING_ROOT": str(settings.PACKAGE_STAGING_ROOT),
        "BLINDSPOT_RUNNER_THREADS": "1",
    }
    with open(package_file, "rb") as fh:
        began = time.monotonic()
        package = package_submit(actor=world.vendor_user, upload=fh)
        answered = time.monotonic() - began
    # Nothing ran in this process: no worker is up yet, and the package waits, staged.
    package.refresh_from_db()
    assert package.status == ModelPackage.Status.TESTING and package.smoke_attempts == 0
    with WorkerFleet(env, log_dir=tmp_path / "logs") as fleet:
        worker = fleet.start("gpu1", queues="gpu")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            package.refresh_from_db()
            if package.status != ModelPackage.Status.TESTING:
                break
            time.sleep(0.5)
        log = fleet.log(worker)
    assert package.status == ModelPackage.Status.SUBMITTED, log
    assert package.smoke_attempts == 1 and package.smoke_load_seconds
    assert [e.action for e in audit_events_for(package)] == [AuditAction.PACKAGE_SUBMITTED]
    assert not list(settings.PACKAGE_STAGING_ROOT.glob("*.tar"))
    print(f"upload answered in {answered:.2f} s; the smoke test ran on the worker")
