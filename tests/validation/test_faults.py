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
from tests.support.worker_fleet import PrivateRedis, WorkerFleet
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


@pytest.fixture
def dispatch_via(monkeypatch):
    """This process sends tasks to the broker, as the web process does in production."""
    from config.celery import app

    def drop_connections() -> None:
        for pool in (app.amqp._producer_pool, app._pool):  # type: ignore[attr-defined]  # private, untyped
            if pool is not None:
                pool.force_close_all()
        app.amqp._producer_pool = app._pool = None  # type: ignore[attr-defined]  # private, untyped

    def switch(url: str) -> None:
        drop_connections()
        monkeypatch.setitem(app.conf, "task_always_eager", False)
        monkeypatch.setitem(app.conf, "broker_url", url)

    yield switch
    drop_connections()
    # kombu's process-wide producer pools, which drop_connections closed: a closed pool that
    # stays registered fails the next eager `apply_async` ("Acquire on closed pool").
    from kombu import pools

    pools.reset()


def _worker_env(settings, broker: str) -> dict[str, str]:
    db = connection.settings_dict
    return {
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "CELERY_BROKER_URL": broker,
        "BLINDSPOT_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "BLINDSPOT_SEQUESTERED_ROOT": str(settings.SEQUESTERED_ROOT),
        "BLINDSPOT_RUNNER_CACHE_ROOT": str(settings.RUNNER_CACHE_ROOT),
        "BLINDSPOT_RUNNER_THREADS": "1",
        "BLINDSPOT_RUNNER_BATCH_SIZE": str(BATCH),
        "BLINDSPOT_RUN_SHARD_SIZE": str(SHARD),
        "BLINDSPOT_WORKER_HEARTBEAT_S": "1",
        "BLINDSPOT_WORKER_STALE_S": "10",
    }


def _wait(predicate, timeout_s: float, what: str, fleet: WorkerFleet, interval: float = 0.02):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(interval)
    logs = "\n".join(f"--- {h}\n{fleet.log(h)}" for h in fleet.workers)
    state = list(ValidationRun.objects.values_list("pk", "status", "error_detail"))
    shards = list(RunShard.objects.values_list("run_id", "index", "status", "worker", "attempts"))
    raise AssertionError(f"timed out waiting for {what}\nruns {state}\nshards {shards}\n{logs}")


def _close(a, b, path="") -> None:
    """Equal structures; floats equal to 1e-9 relative (batches differ once a shard resumes)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b), path
    else:
        assert a == b, path


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

    env = _worker_env(settings, private_redis.url)
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
            _wait(
                lambda: not run.shards.filter(status="pending").exists() and mid_shard(),
                120,
                "the last shards in progress",
                fleet,
            )
            private_redis.stop()
            _wait(
                lambda: ValidationRun.objects.filter(pk=run.pk).exclude(status="running").exists(),
                120,
                "the run to leave inference with the broker down",
                fleet,
            )
            time.sleep(5)  # longer than a publisher's default retries (about a second)
            private_redis.start()
        else:
            _wait(mid_shard, 120, "a shard in progress", fleet)
            assert _drop_worker_connections() >= 2  # at least each worker's task connection
        _wait(
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
        _close(got, want, section)

    assert (
        AuditEvent.objects.filter(
            action=AuditAction.RUN_INFERENCE_DONE, target_id=str(run.pk)
        ).count()
        == 1
    )
    assert not AuditEvent.objects.filter(action=AuditAction.RUN_FAILED, target_id=str(run.pk))
