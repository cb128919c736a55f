"""Scoring a run: the stored metrics depend on the predictions, never on the order in which the
shards happened to write them (workers finish in any order; a crashed shard is finished by
another worker later)."""

import numpy as np
import pytest

from tests.factories import CaseFactory, RunFactory, protocol_document
from validation.models import MetricResult, Prediction, ValidationRun
from validation.services.scoring import run_compute_metrics

pytestmark = pytest.mark.django_db

PROTOCOL = protocol_document(
    subgroups=[{"attribute": "sex"}],
    min_cell_size=2,
    bootstrap={"replicates": 200, "seed": 11},
)


def _scored_run(order: list[int], labels, scores, sexes, version=None) -> ValidationRun:
    run = RunFactory.create(status=ValidationRun.Status.SCORING)
    run.package.manifest = {"threshold": 0.5}
    run.package.save(update_fields=["manifest"])
    run.protocol.document = PROTOCOL
    run.protocol.save(update_fields=["document"])
    if version is None:
        cases = [
            CaseFactory.create(
                dataset_version=run.dataset_version,
                case_id=f"C{i:03d}",
                label=int(labels[i]),
                attributes={"sex": sexes[i]},
            )
            for i in range(len(labels))
        ]
    else:
        run.dataset_version = version
        run.save(update_fields=["dataset_version"])
        cases = list(version.cases.order_by("case_id"))
    Prediction.objects.bulk_create(  # written in `order`, as shards finishing in that order would
        [Prediction(run=run, case=cases[i], score=float(scores[i])) for i in order]
    )
    return run


def test_metrics_do_not_depend_on_the_order_predictions_were_written():
    rng = np.random.default_rng(3)
    n = 60
    labels = rng.integers(0, 2, n)
    scores = np.clip(labels * 0.3 + rng.normal(0.4, 0.2, n), 0, 1)
    sexes = rng.choice(["F", "M"], n).tolist()
    forward = _scored_run(list(range(n)), labels, scores, sexes)
    shuffled = _scored_run(
        rng.permutation(n).tolist(), labels, scores, sexes, version=forward.dataset_version
    )
    run_compute_metrics(forward)
    run_compute_metrics(shuffled)
    first = {m.section: m.value for m in MetricResult.objects.filter(run=forward)}
    second = {m.section: m.value for m in MetricResult.objects.filter(run=shuffled)}
    assert first["bootstrap"]["overall"], "the protocol plans bootstrap intervals"
    assert first == second
