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


def test_scoring_stores_the_independence_section_from_the_declared_training_data():
    """Cases from a declared scanner (by model name) or a declared site are counted, and the
    primary metrics split by it; a failed case is left out of the split as out of every
    metric (exclude-and-report)."""
    rng = np.random.default_rng(8)
    n = 40
    labels = rng.integers(0, 2, n)
    scores = np.clip(labels * 0.35 + rng.normal(0.35, 0.2, n), 0, 1)
    run = RunFactory.create(status=ValidationRun.Status.SCORING)
    run.package.manifest = {
        "threshold": 0.5,
        "training_data": {"sites": ["Harbor"], "scanners": ["Acme DR-500"]},
    }
    run.package.save(update_fields=["manifest"])
    run.protocol.document = PROTOCOL
    run.protocol.save(update_fields=["document"])
    scanners = [
        {"manufacturer": "Acme Medical", "model": "Acme DR-500", "institution": "Northfield"},
        {"manufacturer": "Borealis Imaging", "model": "Aurora CR-2", "institution": "Lakeside"},
        {"manufacturer": "Cobalt Systems", "model": "Cobalt XR-9", "institution": "harbor"},
        {"manufacturer": "Borealis Imaging", "model": "Aurora CR-2", "institution": "Lakeside"},
    ]
    cases = [
        CaseFactory.create(
            dataset_version=run.dataset_version,
            case_id=f"C{i:03d}",
            label=int(labels[i]),
            attributes={"sex": "F", **scanners[i % 4]},
        )
        for i in range(n)
    ]
    Prediction.objects.bulk_create(
        [Prediction(run=run, case=c, score=float(scores[i])) for i, c in enumerate(cases)]
    )
    failed = Prediction.objects.get(run=run, case__case_id="C000")  # an Acme case
    failed.score, failed.error_category = None, "timeout"
    failed.save(update_fields=["score", "error_category"])

    run_compute_metrics(run)
    section = MetricResult.objects.get(run=run, section="independence").value
    assert section["n_cases"] == 40 and section["n_overlap"] == 20  # Acme and Harbor cases
    assert section["share"] == 0.5 and section["independent"] is False
    assert section["overlapping_scanners"] == ["Acme Medical Acme DR-500"]
    assert section["overlapping_sites"] == ["harbor"]
    training, independent = section["split"]
    assert (training["group"], training["n"]) == ("declared training source", 19)
    assert independent["n"] == 20
    from_training = [i for i in range(1, n) if i % 4 in (0, 2)]
    assert training["n_pos"] == int(labels[from_training].sum())
    assert training["auc"]["method"].startswith("DeLong")
    run_compute_metrics(run)  # a repeat stores nothing twice
    assert MetricResult.objects.filter(run=run, section="independence").count() == 1
