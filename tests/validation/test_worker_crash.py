"""Crash safety on the real stack: Redis as the broker, PostgreSQL, two Celery GPU worker
processes (solo pool, sandboxed runners). One worker is SIGKILLed, with its model process, in the
middle of a shard; the run must still complete with exactly one prediction per case and the same
metrics as an uninterrupted run of the same package on the same data."""

import math

import pytest

from audit.models import AuditAction, AuditEvent
from tests.factories import protocol_document
from tests.run_helpers import run_setup
from tests.support.run_on_workers import assert_close, wait_for, worker_env
from tests.support.worker_fleet import WorkerFleet
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
WORKER_SETTINGS = {
    "BLINDSPOT_RUNNER_THREADS": "1",
    "BLINDSPOT_RUNNER_BATCH_SIZE": str(BATCH),
    "BLINDSPOT_RUN_SHARD_SIZE": str(SHARD),
    "BLINDSPOT_WORKER_HEARTBEAT_S": "1",
    "BLINDSPOT_WORKER_STALE_S": "10",
}


def _start_run(world, version, package, protocol):
    return runs.run_start(
        actor=world.reviewer, package=package, dataset_version=version, protocol=protocol
    )


def test_a_worker_killed_mid_shard_loses_nothing(
    world, package_file, tmp_path, settings, broker, dispatch_via
):
    settings.RUN_SHARD_SIZE, settings.RUNNER_BATCH_SIZE = SHARD, BATCH
    manifest = generate_cohort(tmp_path / "cohort", cases=CASES, seed=11, prevalence=0.5)
    document = protocol_document(min_cell_size=5, subgroups=[{"attribute": "sex"}])
    package, version, protocol = run_setup(
        world, package_path=package_file, manifest=manifest, protocol=document
    )

    # The uninterrupted reference: eager, in this process (no broker configured here).
    reference = _start_run(world, version, package, protocol)
    reference.refresh_from_db()
    assert reference.status == ValidationRun.Status.AWAITING_SIGNATURE

    with WorkerFleet(
        worker_env(settings, broker, **WORKER_SETTINGS), log_dir=tmp_path / "logs"
    ) as fleet:
        victim, survivor = fleet.start("w1"), fleet.start("w2")
        fleet.wait_ready([victim, survivor])
        dispatch_via(broker)
        run = _start_run(world, version, package, protocol)  # its planner goes through Redis

        def victim_mid_shard():
            for shard in RunShard.objects.filter(run=run, status="running", worker=victim):
                done = Prediction.objects.filter(run=run, case_id__in=shard.case_ids).count()
                if 0 < done < len(shard.case_ids):
                    return shard, done
            return None

        shard, done_at_kill = wait_for(victim_mid_shard, 120, "the victim mid-shard", fleet)
        fleet.kill(victim)
        wait_for(
            lambda: ValidationRun.objects.filter(
                pk=run.pk, status__in=["awaiting-signature", "failed"]
            ).exists(),
            300,
            "the run to finish",
            fleet,
            interval=0.5,
        )
        log = fleet.log(survivor)

    run.refresh_from_db()
    assert run.status == ValidationRun.Status.AWAITING_SIGNATURE, (run.error_detail, log)
    shard.refresh_from_db()
    assert 0 < done_at_kill < SHARD
    assert shard.status == "done" and shard.attempts >= 2 and shard.worker == survivor

    predictions = Prediction.objects.filter(run=run)
    assert predictions.count() == CASES == run.cases_done
    assert predictions.values("case_id").distinct().count() == CASES
    scores = dict(predictions.values_list("case_id", "score"))
    expected = dict(Prediction.objects.filter(run=reference).values_list("case_id", "score"))
    assert scores.keys() == expected.keys()
    for case_id, score in expected.items():
        got = scores[case_id]
        assert got is not None and score is not None, case_id  # every case was scored
        assert math.isclose(got, score, rel_tol=1e-6), case_id
    assert run.explanations.count() == reference.explanations.count() == CASES // 2

    for section in SECTIONS:
        got = MetricResult.objects.get(run=run, section=section).value
        want = MetricResult.objects.get(run=reference, section=section).value
        assert_close(got, want, section)

    done = AuditEvent.objects.get(action=AuditAction.RUN_INFERENCE_DONE, target_id=str(run.pk))
    execution = done.payload["execution"]
    assert execution["shards"] == CASES // SHARD and execution["redeliveries"] >= 1
    assert survivor in execution["workers"]
