"""Comparison runs (issue 18 item 13): started through run_start with its refusals, scored once
both runs are scored (queued by the second run's scoring stage), drafted as a comparison
report that is signed, issued and verified like any report, and signed in the console."""

import io

import pytest
from pypdf import PdfReader

from audit.models import AuditAction, AuditEvent
from config.celery import QueuedTask
from reports.models import Report
from reports.services import report_correct, report_sign, report_verify
from tests.factories import PASSWORD
from tests.support.comparisons import (
    COMPARISON,
    N,
    comparison_setup,
    infer,
    protocol_with_comparison,
    version_with_cases,
)
from tests.support.people import signed_in
from tests.web.vendor_helpers import package_of
from validation import task_names, tasks
from validation.errors import ApplicationError, PermissionDenied
from validation.models import ComparisonRun, ModelPackage, ValidationRun
from validation.services import runs
from validation.services.comparisons import comparison_start, lineage_reaches
from validation.storage import media_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(world):
    return comparison_setup(world)


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
        _start(world, setup, protocol=protocol_with_comparison(world, comparison=False, name="Q"))
    stranger = package_of(world.vendor_a, version="2.0", status=ModelPackage.Status.APPROVED)
    with pytest.raises(ApplicationError, match="lineage does not reach it"):
        _start(world, setup, candidate=stranger)
    with pytest.raises(ApplicationError, match="has not granted this vendor"):
        _start(world, setup, dataset_version=version_with_cases(world, grant=False))
    with pytest.raises(ApplicationError, match="cannot be compared with itself"):
        _start(world, setup, candidate=baseline)
    # An earlier run of the baseline on another dataset version cannot be paired.
    with django_capture_on_commit_callbacks(execute=False):
        other = runs.run_start(
            actor=world.reviewer,
            package=baseline,
            dataset_version=version_with_cases(world),
            protocol=protocol,
        )
    with pytest.raises(ApplicationError, match="another dataset version"):
        _start(world, setup, baseline=None, baseline_run=other)
    assert not ComparisonRun.objects.exists()


def _scored(world, setup, django_capture_on_commit_callbacks) -> ComparisonRun:
    with django_capture_on_commit_callbacks(execute=False):
        comparison = _start(world, setup)
    infer(comparison.baseline, seed=1, shift=0.0)
    infer(comparison.candidate, seed=2, shift=0.05)
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


def test_a_run_is_the_baseline_of_one_comparison_at_most(
    world, setup, django_capture_on_commit_callbacks
):
    baseline, candidate, version, protocol = setup
    with django_capture_on_commit_callbacks(execute=False):
        first = _start(world, setup)
    third = package_of(
        world.vendor_a, version="1.2", supersedes=candidate, status=ModelPackage.Status.APPROVED
    )
    with pytest.raises(ApplicationError, match="already the baseline of comparison C-") as refused:
        _start(world, setup, baseline=None, baseline_run=first.baseline, candidate=third)
    assert refused.value.status_code == 409
    assert ComparisonRun.objects.count() == 1
