"""Rows the vendor pages' tests share: packages and runs of vendor A and vendor B, and a run
scored by the real scoring service from real predictions."""

import numpy as np
from django.utils import timezone

from tests.factories import (
    CaseFactory,
    DatasetVersionFactory,
    PackageFactory,
    ProtocolFactory,
    RunFactory,
    UserFactory,
    protocol_document,
)
from validation.models import ModelPackage, Prediction, ValidationRun
from validation.packaging import default_manifest
from validation.protocol_document import protocol_hash, with_defaults
from validation.services.scoring import run_compute_metrics


def package_of(vendor, user=None, **fields) -> ModelPackage:
    manifest = default_manifest(
        name=fields.pop("name", "Finder"),
        version=fields.get("version", "1.0"),
        gradcam_target_layer="block3",
    )
    fields.setdefault("version", manifest["version"])
    if fields.get("status") in (ModelPackage.Status.APPROVED, ModelPackage.Status.REJECTED):
        # A decided package names its reviewer (a database check).
        fields.setdefault("reviewed_by", UserFactory.create())
        fields.setdefault("reviewed_at", timezone.now())
        fields.setdefault("review_note", "Reviewed by a test.")
    return PackageFactory.create(
        vendor=vendor,
        name=manifest["name"],
        manifest=manifest,
        **({"submitted_by": user} if user else {}),
        **fields,
    )


def run_of(package, partner=None, **fields) -> ValidationRun:
    version = DatasetVersionFactory.create()
    if partner is not None:
        version.dataset.partner = partner
        version.dataset.save()
    return RunFactory.create(package=package, dataset_version=version, **fields)


def scored_run(
    package, *, n=60, min_cell=5, partner=None, protocol_changes=None, **fields
) -> ValidationRun:
    """A run whose results the real scoring service computed from `n` predictions: sex F/M
    evenly, plus one 'X' case (a cell below the minimum size, suppressed for vendors).
    `protocol_changes` overrides keys of its protocol document."""
    document = with_defaults(
        protocol_document(
            **{
                "min_cell_size": min_cell,
                "acceptance_criteria": [
                    {"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.5},
                    {
                        "metric": "sensitivity",
                        "bound": "estimate",
                        "comparator": ">=",
                        "value": 0.99,
                    },
                ],
                **(protocol_changes or {}),
            }
        )
    )
    protocol = ProtocolFactory.create(
        document=document, sha256=protocol_hash(document), locked_at=timezone.now()
    )
    version = DatasetVersionFactory.create()
    if partner is not None:
        version.dataset.partner = partner
        version.dataset.save()
    fields.setdefault("status", ValidationRun.Status.AWAITING_SIGNATURE)
    run = RunFactory.create(
        package=package,
        dataset_version=version,
        protocol=protocol,
        cases_total=n,
        cases_done=n,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        stage_seconds={"inference": 3.2, "scoring": 1.1, "explaining": 2.0, "reporting": 0.5},
        **fields,
    )
    rng = np.random.default_rng(5)
    for i in range(n):
        label = i % 2
        sex = "X" if i == n - 1 else ("F" if i % 4 < 2 else "M")
        case = CaseFactory.create(dataset_version=version, label=label, attributes={"sex": sex})
        score = float(np.clip(0.3 + 0.4 * label + rng.normal(0, 0.2), 0.01, 0.99))
        Prediction.objects.create(run=run, case=case, score=score)
    run_compute_metrics(run)
    return run
