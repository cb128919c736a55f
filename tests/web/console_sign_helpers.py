"""A report drafted the way a run's reporting stage drafts one (real metric results, the real
document builder), awaiting its signatures: what the signing page and its tests need."""

import numpy as np
from django.db import transaction

from reports.models import Report
from reports.services import report_draft
from tests.factories import RunFactory
from validation.management.commands.demo import PROTOCOL
from validation.models import MetricResult, ValidationRun
from validation.protocol_document import with_defaults
from validation.stats.evaluation import Plan, evaluate


def vendor_run(world, **fields) -> ValidationRun:
    """A run of vendor A's package on partner A's dataset."""
    fields.setdefault("status", ValidationRun.Status.ISSUED)
    run = RunFactory.create(package__vendor=world.vendor_a, **fields)
    dataset = run.dataset_version.dataset
    dataset.partner = world.partner_a
    dataset.save()
    return run


def drafted_real_report(world) -> Report:
    run = vendor_run(
        world, status=ValidationRun.Status.REPORTING, protocol__document=with_defaults(PROTOCOL)
    )
    protocol = run.protocol.document
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 120)
    scores = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.2, 120), 0, 1)
    groups = {spec["attribute"]: rng.choice(["a", "b"], 120) for spec in protocol["subgroups"]}
    plan = Plan.from_protocol(protocol, threshold=float(run.package.manifest["threshold"]))
    sections = evaluate(y, scores, groups, plan)
    sections.pop("scoring")
    sections["failures"] = {"by_category": [], "n_cases": 120, "n_scored": 120}
    for section, value in sections.items():
        MetricResult.objects.create(run=run, section=section, value=value)
    with transaction.atomic():
        report = report_draft(run=run)
    assert report.status == Report.Status.AWAITING_SIGNATURE
    return report
