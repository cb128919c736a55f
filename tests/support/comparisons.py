"""Comparison runs for tests: two approved versions of vendor A's model (1.1 succeeds 1.0), a
sealed version of N cases granted to vendor A, a protocol that pre-registers the comparison,
and what the shards of a run would write."""

import numpy as np
from django.utils import timezone

from tests.factories import CaseFactory, DatasetVersionFactory, protocol_document
from tests.web.vendor_helpers import package_of
from validation.models import ComparisonRun, ModelPackage, Prediction, ValidationRun
from validation.protocol_document import with_defaults
from validation.services.comparisons import comparison_score, comparison_start
from validation.services.datasets import dataset_grant
from validation.services.protocols import protocol_create
from validation.services.runs import run_score

COMPARISON = {
    "endpoints": [
        {"metric": "auc", "hypothesis": "non-inferiority", "margin": 0.05},
        {"metric": "sensitivity", "hypothesis": "non-inferiority", "margin": 0.05},
        {"metric": "specificity", "hypothesis": "superiority", "margin": 0.0},
    ]
}
N = 80


def protocol_with_comparison(world, *, comparison=True, name="P"):
    document = with_defaults(
        protocol_document(
            min_cell_size=10,
            subgroups=[{"attribute": "sex"}, {"attribute": "manufacturer"}],
            bootstrap={"replicates": 0, "seed": 1, "method": "percentile"},
            **({"comparison": COMPARISON} if comparison else {}),
        )
    )
    return protocol_create(actor=world.reviewer, name=name, document=document)


def version_with_cases(world, *, grant=True):
    version = DatasetVersionFactory.create()
    version.dataset.partner = world.partner_a
    version.dataset.save()
    for i in range(N):
        CaseFactory.create(
            dataset_version=version,
            case_id=f"case-{i:03d}",
            label=i % 2,
            # "Cobalt" has 4 cases: under min_cell_size, so its cells carry no numbers.
            attributes={
                "sex": "F" if i % 4 < 2 else "M",
                "manufacturer": "Cobalt" if i < 4 else "Acme",
            },
        )
    if grant:
        dataset_grant(actor=world.steward, dataset_version=version, vendor=world.vendor_a)
    return version


def comparison_setup(world):
    """(baseline, candidate, dataset version, protocol)."""
    approved = {"status": ModelPackage.Status.APPROVED}
    baseline = package_of(world.vendor_a, version="1.0", **approved)
    candidate = package_of(world.vendor_a, version="1.1", supersedes=baseline, **approved)
    return baseline, candidate, version_with_cases(world), protocol_with_comparison(world)


def infer(run: ValidationRun, seed: int, shift: float) -> None:
    """What the shards write, seeded: one score per case, one case failed."""
    rng = np.random.default_rng(seed)
    for case in run.dataset_version.cases.order_by("case_id"):
        if case.case_id == "case-005":
            Prediction.objects.create(run=run, case=case, error_category="crash")
            continue
        score = 0.3 + (0.35 + shift) * case.label + rng.normal(0, 0.18)
        Prediction.objects.create(run=run, case=case, score=float(np.clip(score, 0.01, 0.99)))
    ValidationRun.objects.filter(pk=run.pk).update(
        status=ValidationRun.Status.SCORING, started_at=timezone.now(), sandboxed=True
    )


def comparison_scored(world, setup) -> ComparisonRun:
    """A comparison started by the reviewer and scored (what is queued on commit never runs
    inside a test's transaction): awaiting signature, its report drafted."""
    baseline, candidate, version, protocol = setup
    comparison = comparison_start(
        actor=world.reviewer,
        baseline=baseline,
        candidate=candidate,
        dataset_version=version,
        protocol=protocol,
    )
    infer(comparison.baseline, seed=1, shift=0.0)
    infer(comparison.candidate, seed=2, shift=0.05)
    for run in (comparison.baseline, comparison.candidate):
        run_score(run_id=run.pk)
    comparison_score(comparison_id=comparison.pk)
    comparison.refresh_from_db()
    return comparison
