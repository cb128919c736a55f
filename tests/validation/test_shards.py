"""Shards in-process on the real runner: the failure policy (a case that breaks the model is
retried alone, then counted; the run goes on), cancellation at the next batch, a package that
cannot load, cache-aware routing and the rescue of a dead worker's shards."""

from datetime import timedelta

import numpy as np
import pytest
import torch
from django.utils import timezone
from torch import nn

from tests.factories import CaseFactory, RunFactory, protocol_document
from tests.run_helpers import infer, start_run
from validation.dicom.pixels import InputSpec, batch_inputs
from validation.models import MetricResult, Prediction, RunShard, ValidationRun, WorkerPresence
from validation.packaging import build_package, default_manifest
from validation.routing import direct_queue, shard_queues
from validation.services import runs, shards
from validation.services.run_stages import PUBLIC_FAILURE
from validation.services.workers import shards_rescue, worker_heartbeat, worker_leave
from validation.storage import model_cache_path

pytestmark = pytest.mark.django_db
Status = ValidationRun.Status
PROTOCOL = protocol_document(min_cell_size=2)


class BrightnessIntolerant(nn.Module):
    """On real images (the reference pipeline clips them to -2..2), finite scores below `limit`
    (the input's mean) and NaN above it; on intake's smoke batch of standard normals (values
    below -2.5) always finite. A model that passes intake and breaks on some partner cases."""

    def __init__(self, limit: float) -> None:
        super().__init__()
        self.register_buffer("limit", torch.tensor(limit))
        self.features = nn.Conv2d(1, 1, kernel_size=1)  # the identity: the Grad-CAM layer
        nn.init.ones_(self.features.weight)
        assert self.features.bias is not None  # Conv2d has one unless bias=False
        nn.init.zeros_(self.features.bias)

    def forward(self, x):
        x = self.features(x)
        mean = x.mean(dim=(1, 2, 3))
        real = x.amin(dim=(1, 2, 3)) > -2.5
        # sqrt of 1 where unused, so its gradient stays finite on the smoke batch too.
        root = torch.sqrt(torch.where(real, self.limit - mean, torch.ones_like(mean)))
        return torch.where(real, root, mean).unsqueeze(1)


def _input_means(manifest_path) -> dict[str, float]:
    import csv

    spec = InputSpec.from_dict(
        default_manifest(name="x", version="1", gradcam_target_layer=None)["input"]
    )
    rows = list(csv.DictReader(open(manifest_path)))
    x, errors = batch_inputs([manifest_path.parent / r["file"] for r in rows], spec)
    assert not any(errors)
    return {r["case_id"]: float(m) for r, m in zip(rows, x.mean(axis=(1, 2, 3)), strict=True)}


@pytest.mark.sandbox
def test_a_case_that_breaks_the_model_is_retried_alone_then_counted(world, cohort, tmp_path):
    means = _input_means(cohort)
    limit = float(np.quantile(list(means.values()), 0.7))
    package = build_package(
        model=BrightnessIntolerant(limit),
        example_input=torch.randn(2, 1, 64, 64),
        manifest=default_manifest(name="Picky", version="1.0", gradcam_target_layer="features"),
        out_path=tmp_path / "picky.tar.gz",
    )
    run = start_run(world, package_path=package, manifest=cohort, protocol=PROTOCOL)

    infer(run.pk)

    run.refresh_from_db()
    assert run.status == Status.SCORING  # the run went on
    rows = {p.case.case_id: p for p in Prediction.objects.filter(run=run).select_related("case")}
    assert rows.keys() == means.keys()
    for case_id, mean in means.items():
        if mean > limit:
            assert rows[case_id].error_category == "bad-output" and rows[case_id].score is None
        else:
            expected = 1 / (1 + np.exp(-np.sqrt(limit - mean)))
            assert rows[case_id].score == pytest.approx(expected, rel=1e-5), case_id
    broken = sum(1 for m in means.values() if m > limit)
    assert 0 < broken < len(means)
    runs.run_score(run_id=run.pk)
    failures = MetricResult.objects.get(run=run, section="failures").value
    assert failures["by_category"] == [{"category": "bad-output", "n": broken}]


@pytest.mark.sandbox
def test_a_cancelled_run_stops_its_shard_at_the_next_batch(
    world, package_file, cohort, settings, monkeypatch
):
    settings.RUNNER_BATCH_SIZE = 4
    run = start_run(world, package_path=package_file, manifest=cohort, protocol=PROTOCOL)
    batch = shards._ShardWork.batch

    def batch_then_cancel(self, prepared):  # a reviewer cancels while the first batch runs
        batch(self, prepared)
        runs.run_cancel(actor=world.reviewer, run=ValidationRun.objects.get(pk=run.pk))

    monkeypatch.setattr(shards._ShardWork, "batch", batch_then_cancel)
    infer(run.pk)

    assert Prediction.objects.filter(run=run).count() == 4
    assert RunShard.objects.get(run=run).status == "stopped"
    assert ValidationRun.objects.get(pk=run.pk).status == Status.CANCELLED


@pytest.mark.sandbox
def test_a_package_that_cannot_load_fails_the_run_safely(db):
    manifest = default_manifest(name="Broken", version="1", gradcam_target_layer="block3")
    run = RunFactory.create(status=Status.RUNNING, package__manifest=manifest)
    CaseFactory.create_batch(3, dataset_version=run.dataset_version)
    model = model_cache_path(run.package.sha256, "pt2")
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"not an exported program")
    model.parent.chmod(0o755)
    model.chmod(0o444)
    [shard] = shards.shards_plan(run)

    shards.shard_execute(run_id=run.pk, index=shard.index, worker="test@worker")

    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert run.error_public == PUBLIC_FAILURE["load-failed"]  # the vendor's view
    assert "load" in run.error_detail.lower()  # the reviewers' details
    shard.refresh_from_db()
    assert shard.status == "stopped" and not Prediction.objects.filter(run=run).exists()


def _presence(hostname, *, warm=(), age_s=0.0):
    presence = worker_heartbeat(hostname=hostname, warm_packages=list(warm))
    WorkerPresence.objects.filter(pk=presence.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=age_s)
    )


def test_shards_go_first_to_live_workers_holding_the_package_warm(db, settings):
    settings.RUN_AFFINITY_SHARDS_PER_WORKER, settings.WORKER_STALE_S = 2, 60
    _presence("warm@a", warm=["abc"])
    _presence("warm-but-dead@b", warm=["abc"], age_s=120)
    _presence("cold@c", warm=["other"])
    assert shard_queues("abc", 4) == [direct_queue("warm@a")] * 2 + ["gpu"] * 2
    assert shard_queues("nobody-warm", 3) == ["gpu"] * 3
    _presence("warm@d", warm=["abc"])
    assert shard_queues("abc", 5) == [
        direct_queue("warm@a"),
        direct_queue("warm@d"),
        direct_queue("warm@a"),
        direct_queue("warm@d"),
        "gpu",
    ]


def test_a_dead_workers_shards_go_back_to_the_shared_queue(
    db, settings, django_capture_on_commit_callbacks
):
    settings.RUN_SHARD_SIZE, settings.WORKER_STALE_S = 4, 30
    run = RunFactory.create(status=Status.RUNNING)
    CaseFactory.create_batch(16, dataset_version=run.dataset_version)
    planned = shards.shards_plan(run)
    assert [len(s.case_ids) for s in planned] == [4, 4, 4, 4]
    _presence("dead@a", age_s=300)
    _presence("alive@b")
    RunShard.objects.filter(pk=planned[0].pk).update(status="running", worker="dead@a")
    RunShard.objects.filter(pk=planned[1].pk).update(queue=direct_queue("dead@a"))
    RunShard.objects.filter(pk=planned[2].pk).update(status="running", worker="alive@b")
    RunShard.objects.filter(pk=planned[3].pk).update(status="done", worker="dead@a")

    with django_capture_on_commit_callbacks(execute=False) as queued:
        rescued = shards_rescue()

    assert sorted(rescued) == [(run.pk, 0), (run.pk, 1)] and len(queued) == 2
    assert set(RunShard.objects.filter(index__in=[0, 1]).values_list("queue", flat=True)) == {"gpu"}
    assert list(WorkerPresence.objects.values_list("hostname", flat=True)) == ["alive@b"]
    assert shards_rescue() == []  # told once

    # A worker that shuts down cleanly hands the shards routed to its own queue back at once.
    RunShard.objects.filter(pk=planned[2].pk).update(
        status="pending", queue=direct_queue("alive@b")
    )
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert worker_leave(hostname="alive@b") == [(run.pk, 2)]
    assert len(queued) == 1 and not WorkerPresence.objects.exists()
