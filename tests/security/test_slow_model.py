"""A hostile (or broken) vendor model that stalls on real images (issue 14, item 11).

The model answers the intake smoke test's random batch at once and runs a long computation on
anything that looks like a real radiograph (values within the scaled image range: percentile
scaling clips to [0, 1], so normalised pixels stay within [-2, 2], which standard-normal noise
never does). `torch.export` cannot sleep; `torch.cond` picks the long branch by the input.

Before: every batch timed out, then each of its cases timed out alone in a fresh sandbox, a
batch timeout per case; a cancel waited for the batch. Now: timeouts in a row end the run with
`timeout`, the run's time budget ends it too, and a cancel kills the model within seconds."""

import os
import threading
import time

import numpy as np
import pytest
import torch
from django.db import connection

from config.celery import app as celery_app
from tests.factories import protocol_document
from tests.run_helpers import infer, start_run
from validation.models import Prediction, RunShard, ValidationRun
from validation.packaging import build_package, default_manifest
from validation.runner_pool import runner_for, runner_pid
from validation.services import runs
from validation.services.run_stages import PUBLIC_FAILURE
from validation.services.shards import shard_execute

Status = ValidationRun.Status
PROTOCOL = protocol_document(explain={"cases": "none"})
CASES = 16  # the `cohort` fixture


class _StallsOnRealImages(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        def stall(f):  # 12 chained 4096x4096 products: tens of seconds on a CPU core
            h = torch.ones(4096, 4096) * f.mean()
            for _ in range(12):
                h = torch.tanh(h @ h)
            return f.mean(dim=(1, 2, 3)).unsqueeze(1) + h.mean() * 0

        def answer(f):
            return f.mean(dim=(1, 2, 3)).unsqueeze(1)

        return torch.cond(x.abs().amax() <= 2.001, stall, answer, (self.conv(x),))


@pytest.fixture(scope="module")
def stalling_package(tmp_path_factory):
    torch.manual_seed(0)
    return build_package(
        model=_StallsOnRealImages(),
        example_input=torch.randn(2, 1, 64, 64),
        manifest=default_manifest(name="Stall", version="1.0", gradcam_target_layer="conv"),
        out_path=tmp_path_factory.mktemp("stall") / "stall.tar.gz",
    )


@pytest.fixture
def slow_settings(settings):
    settings.RUNNER_THREADS = 1
    settings.RUNNER_BATCH_SIZE = 8
    settings.RUN_WATCH_INTERVAL_S = 0.2
    return settings


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _warm(run) -> float:
    """Start the run's sandboxed runner as a worker's warm pool holds it; its start seconds.
    Random input (what the intake smoke test sends) is answered at once."""
    began = time.monotonic()
    runner = runner_for(run.package)
    seconds = time.monotonic() - began
    noise = np.random.default_rng(0).standard_normal((2, 1, 64, 64)).astype(np.float32)
    answered = time.monotonic()
    assert runner.predict(noise).shape == (2, 1)
    assert time.monotonic() - answered < 2
    return seconds


@pytest.mark.sandbox
@pytest.mark.django_db
def test_timeouts_in_a_row_end_the_run_with_timeout(world, cohort, stalling_package, slow_settings):
    slow_settings.RUNNER_BATCH_TIMEOUT_S = 2
    run = start_run(world, package_path=stalling_package, manifest=cohort, protocol=PROTOCOL)
    start_s = _warm(run)
    began = time.monotonic()
    infer(run.pk)
    wall = time.monotonic() - began
    run.refresh_from_db()
    assert run.status == Status.FAILED and run.failure_category == "timeout"
    assert run.error_public == PUBLIC_FAILURE["timeout"]
    assert "timed out 3 times in a row" in run.error_detail
    # The batch, then two of its cases alone, each in a fresh sandbox: 3 timeouts, 2 starts.
    # Before, every case of both batches: 18 timeouts and 16 starts.
    assert wall < 3 * 2 + 3 * start_s + 15, (wall, start_s)
    assert not Prediction.objects.filter(run=run).exists()
    assert RunShard.objects.get(run=run).status == RunShard.Status.STOPPED


@pytest.mark.sandbox
@pytest.mark.django_db
def test_a_spent_time_budget_ends_the_run_mid_batch(world, cohort, stalling_package, slow_settings):
    slow_settings.RUNNER_BATCH_TIMEOUT_S = 300
    slow_settings.RUN_TIME_BUDGET_S = 10
    run = start_run(world, package_path=stalling_package, manifest=cohort, protocol=PROTOCOL)
    _warm(run)
    began = time.monotonic()
    infer(run.pk)
    wall = time.monotonic() - began
    run.refresh_from_db()
    assert run.status == Status.FAILED and run.failure_category == "timeout"
    assert "time budget (10 s" in run.error_detail
    assert wall < 10 + 8, wall  # the budget, the watcher's tick, the kill
    assert runner_pid(run.package) is None


@pytest.mark.sandbox
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_cancel_kills_the_model_within_seconds(
    world, cohort, stalling_package, slow_settings, monkeypatch
):
    """The shard runs on a thread as on a worker, the reviewer cancels from another connection
    (committed writes: PostgreSQL, whose flush the append-only triggers allow). Tasks go to
    Celery's in-memory broker, not eagerly in-process: this test plays the worker."""
    if connection.vendor != "postgresql":
        pytest.skip("a second connection must see committed rows: runs in the PostgreSQL tier")
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    slow_settings.RUNNER_BATCH_TIMEOUT_S = 300
    run = start_run(world, package_path=stalling_package, manifest=cohort, protocol=PROTOCOL)
    _warm(run)
    runs.run_infer(run_id=run.pk)
    errors: list[BaseException] = []

    def shard() -> None:
        try:
            shard_execute(run_id=run.pk, index=0, worker="test@worker")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=shard)
    worker.start()
    deadline = time.monotonic() + 60
    while (pid := runner_pid(run.package)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid is not None, "the sandbox never started"
    time.sleep(3)  # the first batch is with the model
    assert worker.is_alive(), errors
    cancelled = time.monotonic()
    runs.run_cancel(actor=world.reviewer, run=run)
    worker.join(timeout=30)
    stopped = time.monotonic() - cancelled
    assert not worker.is_alive() and not errors, errors
    assert stopped < 5, stopped
    assert _gone(pid), "the model process outlived the cancel"
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    assert RunShard.objects.get(run=run).status == RunShard.Status.STOPPED
    assert not Prediction.objects.filter(run=run).exists()
