"""Infrastructure faults on the real stack: Redis as the broker (a private redis-server of this
test's own), PostgreSQL, two Celery GPU worker processes (solo pool, sandboxed runners). In the
middle of a shard the broker restarts, or every connection the workers hold to the database is
terminated (what a PostgreSQL restart or failover does to its clients); the run must still
complete with exactly one prediction per case and the same metrics as an undisturbed run of the
same package on the same data (as in `test_worker_crash.py`, where a worker dies instead)."""

import math
import time

import pytest
from django.db import connection

from audit.models import AuditAction, AuditEvent
from tests.factories import protocol_document
from tests.run_helpers import run_setup
from tests.support.run_on_workers import assert_close, wait_for, worker_env
from tests.support.worker_fleet import PrivateRedis, WorkerFleet
from tests.validation.test_worker_crash import WORKER_SETTINGS
from validation.models import MetricResult, Prediction, RunShard, ValidationRun
from validation.services import runs
from validation.synthetic.cohort import generate_cohort

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

CASES, SHARD, BATCH = 120, 30, 2
SECTIONS = ("primary", "subgroups", "fairness", "calibration", "bootstrap", "acceptance")


@pytest.fixture
def private_redis(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("worker processes need a shared database: runs in the PostgreSQL tier")
    try:
        server = PrivateRedis(tmp_path / "redis")
    except RuntimeError as exc:
        pytest.skip(str(exc))
    server.start()
    yield server
    server.stop()


def _drop_worker_connections() -> int:
    """Terminate every other session on this test's database (the workers' connections, their
    heartbeat threads' included), as a PostgreSQL restart does; return how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [connection.settings_dict["NAME"]],
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("fault", ["redis-restart", "postgres-connections-dropped"])
def test_a_run_survives_an_infrastructure_fault_mid_shard(
    fault, world, package_file, tmp_path, settings, private_redis, dispatch_via
):
    settings.RUN_SHARD_SIZE, settings.RUNNER_BATCH_SIZE = SHARD, BATCH
    manifest = generate_cohort(tmp_path / "cohort", cases=CASES, seed=11, prevalence=0.5)
    document = protocol_document(min_cell_size=5, subgroups=[{"attribute": "sex"}])
    package, version, protocol = run_setup(
        world, package_path=package_file, manifest=manifest, protocol=document
    )

    def start():
        return runs.run_start(
            actor=world.reviewer, package=package, dataset_version=version, protocol=protocol
        )

    reference = start()  # undisturbed, eager, in this process
    reference.refresh_from_db()
    assert reference.status == ValidationRun.Status.AWAITING_SIGNATURE

    env = worker_env(settings, private_redis.url, **WORKER_SETTINGS)
    with WorkerFleet(env, log_dir=tmp_path / "logs") as fleet:
        hosts = [fleet.start("w1"), fleet.start("w2")]
        fleet.wait_ready(hosts)
        dispatch_via(private_redis.url)
        run = start()

        def mid_shard():
            for shard in RunShard.objects.filter(run=run, status="running"):
                done = Prediction.objects.filter(run=run, case_id__in=shard.case_ids).count()
                if 0 < done < len(shard.case_ids) - BATCH:
                    return shard, done
            return None

        if fault == "redis-restart":
            # The broker goes down while the last shards run and stays down until the shard that
            # finishes last has moved the run to scoring, so that its worker must queue
            # `run_score` (and acknowledge its shard) with no broker to talk to.
            wait_for(
                lambda: not run.shards.filter(status="pending").exists() and mid_shard(),
                120,
                "the last shards in progress",
                fleet,
            )
            private_redis.stop()
            wait_for(
                lambda: ValidationRun.objects.filter(pk=run.pk).exclude(status="running").exists(),
                120,
                "the run to leave inference with the broker down",
                fleet,
            )
            time.sleep(5)  # longer than a publisher's default retries (about a second)
            private_redis.start()
        else:
            wait_for(mid_shard, 120, "a shard in progress", fleet)
            assert _drop_worker_connections() >= 2  # at least each worker's task connection
        wait_for(
            lambda: ValidationRun.objects.filter(
                pk=run.pk, status__in=["awaiting-signature", "failed", "cancelled"]
            ).exists(),
            300,
            "the run to finish",
            fleet,
            interval=0.5,
        )
        logs = "\n".join(f"--- {h}\n{fleet.log(h)}" for h in hosts)

    run.refresh_from_db()
    assert run.status == ValidationRun.Status.AWAITING_SIGNATURE, (run.error_detail, logs)
    assert set(run.shards.values_list("status", flat=True)) == {"done"}

    predictions = Prediction.objects.filter(run=run)
    assert predictions.count() == CASES == run.cases_done
    assert predictions.values("case_id").distinct().count() == CASES
    scores = dict(predictions.values_list("case_id", "score"))
    expected = dict(Prediction.objects.filter(run=reference).values_list("case_id", "score"))
    assert scores.keys() == expected.keys()
    for case_id, score in expected.items():
        got = scores[case_id]
        assert got is not None and score is not None, case_id
        assert math.isclose(got, score, rel_tol=1e-6), case_id
    assert run.explanations.count() == reference.explanations.count() == CASES // 2

    for section in SECTIONS:
        got = MetricResult.objects.get(run=run, section=section).value
        want = MetricResult.objects.get(run=reference, section=section).value
        assert_close(got, want, section)

    assert (
        AuditEvent.objects.filter(
            action=AuditAction.RUN_INFERENCE_DONE, target_id=str(run.pk)
        ).count()
        == 1
    )
    assert not AuditEvent.objects.filter(action=AuditAction.RUN_FAILED, target_id=str(run.pk))
