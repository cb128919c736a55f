"""The package smoke test on a real Celery worker: the upload answers `testing` at once and a
`gpu` worker (its own process, real Redis, PostgreSQL) decides. PostgreSQL tier only."""

import time

import pytest

from audit.models import AuditAction
from audit.selectors import audit_events_for
from tests.support.run_on_workers import worker_env
from tests.support.worker_fleet import WorkerFleet
from validation.models import ModelPackage
from validation.services.packages import package_submit

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.sandbox,
    pytest.mark.django_db(transaction=True),
]


def test_the_upload_answers_testing_and_a_gpu_worker_decides(
    world, package_file, settings, tmp_path, broker, dispatch_via
):
    dispatch_via(broker)
    env = worker_env(settings, broker, BLINDSPOT_RUNNER_THREADS="1")
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
