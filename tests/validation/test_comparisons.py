"""Comparison runs (issue 18 item 13): started through run_start with its refusals, scored once
both runs are scored (queued by the second run's scoring stage), drafted as a comparison
report that is signed, issued and verified like any report, and signed in the console."""

import io

import numpy as np
import pytest
from django.utils import timezone
from pypdf import PdfReader

from audit.models import AuditAction, AuditEvent
from config.celery import QueuedTask
from reports.models import Report
from reports.services import report_correct, report_sign, report_verify
from tests.factories import PASSWORD, CaseFactory, DatasetVersionFactory, protocol_document
from tests.support.people import signed_in
from tests.web.vendor_helpers import package_of
from validation import task_names, tasks
from validation.errors import ApplicationError, PermissionDenied
from validation.models import ComparisonRun, ModelPackage, Prediction, ValidationRun
from validation.protocol_document import with_defaults
from validation.services import runs
from validation.services.comparisons import comparison_start, lineage_reaches
from validation.services.datasets import dataset_grant
from validation.services.protocols import protocol_create
from validation.storage import media_path

pytestmark = pytest.mark.django_db

COMPARISON = {
    "endpoints": [
        {"metric": "auc", "hypothesis": "non-inferiority", "margin": 0.05},
        {"metric": "sensitivity", "hypothesis": "non-inferiority", "margin": 0.05},
        {"metric": "specificity", "hypothesis": "superiority", "margin": 0.0},
    ]
}
N = 80


def _protocol(world, *, comparison=True, name="P"):
    document = with_defaults(
        protocol_document(
            min_cell_size=10,
            subgroups=[{"attribute": "sex"}, {"attribute": "manufacturer"}],
            bootstrap={"replicates": 0, "seed": 1, "method": "percentile"},
            **({"comparison": COMPARISON} if comparison else {}),
        )
    )
    return protocol_create(actor=world.reviewer, name=name, document=document)


def _version(world, *, grant=True):
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


@pytest.fixture
def setup(world):
    approved = {"status": ModelPackage.Status.APPROVED}
    baseline = package_of(world.vendor_a, version="1.0", **approved)
    candidate = package_of(world.vendor_a, version="1.1", supersedes=baseline, **approved)
    return baseline, candidate, _version(world), _protocol(world)


def _start(world, setup, **overrides):
    baseline, candidate, version, protocol = setup
    arguments = {
        "actor": world.reviewer,
        "baseline": baseline,
        "candidate": candidate,
        "dataset_version": version,
        "protocol": protocol,
        **overrides,
    }
    return comparison_start(**arguments)


def test_lineage_reaches_back_through_versions(world):
    first = package_of(world.vendor_a, version="1.0")
    second = package_of(world.vendor_a, version="1.1", supersedes=first)
    third = package_of(world.vendor_a, version="1.2", supersedes=second)
    assert lineage_reaches(third, first) and lineage_reaches(second, first)
    assert not lineage_reaches(first, third) and not lineage_reaches(first, first)


def test_start_starts_both_runs_through_run_start_and_audits(
    world, setup, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        comparison = _start(world, setup)
    baseline, candidate, version, protocol = setup
    assert comparison.baseline.package == baseline and comparison.candidate.package == candidate
    for run in (comparison.baseline, comparison.candidate):
        assert run.dataset_version == version and run.status == ValidationRun.Status.QUEUED
    protocol.refresh_from_db()
    assert protocol.is_locked
    names = [q.name for q in queued if isinstance(q, QueuedTask)]
    assert names == [task_names.RUN_INFER, task_names.RUN_INFER]
    started = AuditEvent.objects.get(action=AuditAction.COMPARISON_STARTED)
    assert started.payload["baseline"]["package"] == baseline.sha256
    assert started.payload["plan"] == COMPARISON
    assert AuditEvent.objects.filter(action=AuditAction.RUN_QUEUED).count() == 2


def test_start_refusals(world, setup, django_capture_on_commit_callbacks):
    baseline, candidate, version, protocol = setup
    with pytest.raises(PermissionDenied):
        _start(world, setup, actor=world.vendor_user)
    with pytest.raises(ApplicationError, match="pre-registers no comparison"):
        _start(world, setup, protocol=_protocol(world, comparison=False, name="Q"))
    stranger = package_of(world.vendor_a, version="2.0", status=ModelPackage.Status.APPROVED)
    with pytest.raises(ApplicationError, match="lineage does not reach it"):
        _start(world, setup, candidate=stranger)
    with pytest.raises(ApplicationError, match="has not granted this vendor"):
        _start(world, setup, dataset_version=_version(world, grant=False))
    with pytest.raises(ApplicationError, match="cannot be compared with itself"):
        _start(world, setup, candidate=baseline)
    # An earlier run of the baseline on another dataset version cannot be paired.
    with django_capture_on_commit_callbacks(execute=False):
        other = runs.run_start(
            actor=world.reviewer,
            package=baseline,
            dataset_version=_version(world),
            protocol=protocol,
        )
    with pytest.raises(ApplicationError, match="another dataset version"):
        _start(world, setup, baseline=None, baseline_run=other)
    assert not ComparisonRun.objects.exists()


def _infer(run: ValidationRun, seed: int, shift: float) -> None:
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


def _scored(world, setup, django_capture_on_commit_callbacks) -> ComparisonRun:
    with django_capture_on_commit_callbacks(execute=False):
        comparison = _start(world, setup)
    _infer(comparison.baseline, seed=1, shift=0.0)
    _infer(comparison.candidate, seed=2, shift=0.05)
    with django_capture_on_commit_callbacks(execute=False) as first:
        runs.run_score(run_id=comparison.baseline.pk)
    # The baseline alone is scored: nothing to compare yet.
    assert [q.name for q in first if isinstance(q, QueuedTask)] == [task_names.RUN_EXPLAIN]
    with django_capture_on_commit_callbacks(execute=False) as second:
        runs.run_score(run_id=comparison.candidate.pk)
    queued = [q for q in second if isinstance(q, QueuedTask)]
    assert [q.name for q in queued] == [task_names.RUN_EXPLAIN, task_names.COMPARISON_SCORE]
    assert queued[1].kwargs == {"comparison_id": comparison.pk}
    for _ in range(2):  # a re-delivery finds it scored and returns
        tasks.comparison_score(comparison_id=comparison.pk)
    comparison.refresh_from_db()
    return comparison


def test_scoring_pairs_by_case_and_drafts_the_comparison_report(
    world, setup, django_capture_on_commit_callbacks
):
    comparison = _scored(world, setup, django_capture_on_commit_callbacks)
    assert comparison.status == ComparisonRun.Status.AWAITING_SIGNATURE
    result = comparison.result
    assert result["n_cases"] == N and result["n_excluded"] == 1 and result["n_paired"] == N - 1
    assert [e["metric"] for e in result["endpoints"]] == ["auc", "sensitivity", "specificity"]
    assert AuditEvent.objects.filter(action=AuditAction.COMPARISON_SCORED).count() == 1
    report = Report.objects.get(comparison=comparison)
    assert report.reference == f"C-{comparison.pk:06d}" and report.run == comparison.candidate
    doc = report.document
    assert doc["report"]["kind"] == "comparison"
    assert doc["packages"]["baseline"]["sha256"] == comparison.baseline.package.sha256
    assert doc["packages"]["candidate"]["supersedes"]["version"] == "1.0"
    assert doc["lineage"] == [
        {"version": "1.1", "sha256": comparison.candidate.package.sha256},
        {"version": "1.0", "sha256": comparison.baseline.package.sha256},
    ]
    assert (
        doc["identity"]["dataset"]["merkle_root"] == comparison.baseline.dataset_version.merkle_root
    )
    assert doc["identity"]["protocol"]["sha256"] == comparison.candidate.protocol.sha256
    assert doc["plan"]["endpoints"] == COMPARISON["endpoints"]
    auc = doc["endpoints"][0]
    assert auc["sentence"].startswith("Version 1.1 is")
    assert "in AUC: the lower 95% bound of the difference" in auc["sentence"]
    cobalt = [r for r in doc["subgroups"] if r["group"] == "Cobalt"]
    assert cobalt == [{"attribute": "manufacturer", "group": "Cobalt", "suppressed": True}]
    # Acme is Cobalt's complement (79 paired cases in all): hidden too, or it gives Cobalt away.
    acme = [r for r in doc["subgroups"] if r["group"] == "Acme"]
    assert acme == [{"attribute": "manufacturer", "group": "Acme", "suppressed": True}]
    female = next(r for r in doc["subgroups"] if r["group"] == "F")
    assert female["n"] == 39 and female["sensitivity"]["estimate"] is not None
    # The candidate run's own report is unaffected by the comparison report.
    assert not Report.objects.filter(run=comparison.candidate, comparison__isnull=True).exists()


def test_a_failed_run_fails_its_comparison(world, setup, django_capture_on_commit_callbacks):
    from validation.services.run_stages import run_fail

    with django_capture_on_commit_callbacks(execute=False):
        comparison = _start(world, setup)
    run_fail(run_id=comparison.baseline.pk, category="crash", detail="boom")
    comparison.refresh_from_db()
    assert comparison.status == ComparisonRun.Status.FAILED
    assert comparison.error_public == "The baseline run failed: The model process crashed."
    tasks.comparison_score(comparison_id=comparison.pk)  # a late delivery changes nothing
    assert not Report.objects.filter(comparison=comparison).exists()


def test_the_comparison_report_is_signed_issued_and_verified(
    world, setup, django_capture_on_commit_callbacks
):
    comparison = _scored(world, setup, django_capture_on_commit_callbacks)
    report = Report.objects.get(comparison=comparison)
    page = signed_in(world.reviewer).get(f"/console/reports/{report.pk}/sign/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"Sign C-{comparison.pk:06d} version 1" in html
    assert "Comparison report: Finder 1.1 against 1.0" in html
    with django_capture_on_commit_callbacks(execute=True):
        report_sign(actor=world.reviewer, report=report, password=PASSWORD, meaning="reviewed")
        report_sign(actor=world.qa, report=report, password=PASSWORD, meaning="approved")
    report.refresh_from_db()
    comparison.refresh_from_db()
    assert report.status == Report.Status.ISSUED
    assert comparison.status == ComparisonRun.Status.ISSUED
    # The candidate run's own state is its own pipeline's, not the comparison report's.
    assert comparison.candidate.status == ValidationRun.Status.EXPLAINING
    pdf = media_path(report.pdf_path).read_bytes()
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "Comparison report" in text
    for sha in (comparison.baseline.package.sha256, comparison.candidate.package.sha256):
        assert sha in text.replace("\n", "")
    assert comparison.baseline.dataset_version.merkle_root in text.replace("\n", "")
    assert "paired DeLong" in text and "McNemar" in text
    assert report.document["endpoints"][1]["sentence"][:40] in text.replace("\n", " ")
    assert "suppressed (fewer than 10 paired cases, or the complement of such a" in text
    genuine = report_verify(actor=world.vendor_user, data=pdf)
    assert genuine.status == "issued-current" and genuine.report == report
    tampered = bytearray(pdf)
    tampered[len(tampered) // 2] ^= 0x01  # one byte inside a content stream
    altered = report_verify(actor=world.vendor_user, data=bytes(tampered))
    assert altered.status == "altered" and altered.report == report
    # The API answers the same way, and the vendor sees the report in its list.
    client = signed_in(world.vendor_user)
    assert client.get(f"/reports/{report.pk}/").status_code == 200
    listed = client.get("/reports/").content.decode()
    assert f'C-{comparison.pk:06d} v1</a> <span class="muted">comparison</span>' in listed
    # A correction is a new version of the comparison report, counted per comparison.
    correction = report_correct(actor=world.reviewer, report=report, reason="Typo in a name.")
    assert correction.version == 2 and correction.comparison == comparison
    assert correction.document["report"]["supersedes"]["version"] == 1


def test_an_earlier_baseline_run_stands_in_and_a_cancel_fails_the_comparison(
    world, setup, django_capture_on_commit_callbacks
):
    baseline, candidate, version, protocol = setup
    with django_capture_on_commit_callbacks(execute=False) as queued:
        earlier = runs.run_start(
            actor=world.reviewer, package=baseline, dataset_version=version, protocol=protocol
        )
        comparison = _start(world, setup, baseline=None, baseline_run=earlier)
    assert comparison.baseline == earlier
    assert ValidationRun.objects.filter(package=baseline).count() == 1  # not started again
    assert len([q for q in queued if isinstance(q, QueuedTask)]) == 2
    runs.run_cancel(actor=world.reviewer, run=comparison.candidate)
    comparison.refresh_from_db()
    assert comparison.status == ComparisonRun.Status.FAILED
    assert comparison.error_public == "The candidate run was cancelled."
    assert AuditEvent.objects.filter(action=AuditAction.COMPARISON_FAILED).count() == 1
