"""Issue 14, item 6: case-level access is recorded. Every read of case-level data (cases with
their labels, predictions, Grad-CAM maps and images of partner data) by anyone is a
CASE_DATA_VIEWED event in the same transaction, or is not offered at all: the admin does not
browse case-level rows, an issued PDF that shows exemplars records who read how many cases, and
no API answer carries a case id."""

import json

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from audit.selectors import audit_chain_verify
from reports.models import Report
from tests.factories import (
    CaseFactory,
    DatasetVersionFactory,
    PackageFactory,
    RunFactory,
    UserFactory,
    issued_report,
)
from validation.models import Dataset, DatasetGrant, Explanation, MetricResult, Prediction

pytestmark = pytest.mark.django_db

SECRET_CASE = "CASE-SECRET-0001"
SECRET_PIXELS = "iVBORw0KGgoSECRETPIXELS"


@pytest.fixture
def run_with_cases(world, settings):
    package = PackageFactory.create(vendor=world.vendor_a, submitted_by=world.vendor_user)
    dataset = Dataset.objects.create(partner=world.partner_a, name="Chest")
    version = DatasetVersionFactory.create(dataset=dataset, created_by=world.steward)
    DatasetGrant.objects.create(
        dataset_version=version,
        vendor=world.vendor_a,
        allow_exemplars=True,
        granted_by=world.steward,
    )
    run = RunFactory.create(package=package, dataset_version=version, requested_by=world.reviewer)
    cases = [
        CaseFactory.create(dataset_version=version, case_id=f"{SECRET_CASE[:-1]}{i}", label=i % 2)
        for i in range(1, 4)
    ]
    for case in cases:
        Prediction.objects.create(run=run, case=case, score=0.25 + 0.25 * case.label)
    Explanation.objects.create(run=run, case=cases[0], cam_npy=b"\x93NUMPY")
    MetricResult.objects.create(run=run, section="primary", value={"auc": {"estimate": 0.9}})
    (settings.MEDIA_ROOT / "reports").mkdir(parents=True)
    return run


def _with_exemplars(run, n: int) -> Report:
    """An issued report whose document is as report_document_build leaves it when the grant
    allows exemplars: each one a Grad-CAM overlay of a partner image."""
    exemplars = [
        {"label": f"Exemplar {i + 1} (reference: positive)", "image_png": SECRET_PIXELS}
        for i in range(n)
    ]
    return Report.objects.create(
        run=run,
        document={"explainability": {"exemplars_allowed": True, "exemplars": exemplars}},
        content_sha256="c" * 64,
        status=Report.Status.ISSUED,
        issued_at=timezone.now(),
        pdf_sha256="p" * 64,
        service_signature="sig",
        pdf_path=f"reports/test-{run.pk}.pdf",
    )


def _views():
    return AuditEvent.objects.filter(action=AuditAction.CASE_DATA_VIEWED)


@pytest.mark.parametrize("kind", ["pdf", "dicom"])
@pytest.mark.parametrize("who", ["vendor_user", "steward", "reviewer", "auditor"])
def test_downloading_a_pdf_with_exemplars_records_the_case_level_read(
    world, run_with_cases, settings, who, kind
):
    report = _with_exemplars(run_with_cases, 2)
    (settings.MEDIA_ROOT / report.pdf_path).write_bytes(b"%PDF-1.7 test")
    user = getattr(world, who)
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(f"/api/v1/reports/{report.pk}/{kind}/")
    assert response.status_code == 200
    viewed = _views().get()
    assert viewed.actor == user
    assert (viewed.target_type, viewed.target_id) == (
        "validation.ValidationRun",
        str(report.run_id),
    )
    assert viewed.payload["cases"] == 2
    assert viewed.payload["report"] == f"{report.reference} v{report.version}"
    assert "exemplar" in viewed.payload["what"].lower()
    downloaded = AuditEvent.objects.get(action=AuditAction.REPORT_DOWNLOADED)
    assert downloaded.pk == viewed.pk - 1  # one transaction, one after the other
    assert audit_chain_verify().intact


def test_a_pdf_without_exemplars_shows_no_case_level_data(world, run_with_cases, settings):
    report = issued_report(run_with_cases)
    (settings.MEDIA_ROOT / report.pdf_path).write_bytes(b"%PDF-1.7 test")
    client = APIClient()
    client.force_authenticate(world.vendor_user)
    assert client.get(f"/api/v1/reports/{report.pk}/pdf/").status_code == 200
    assert AuditEvent.objects.filter(action=AuditAction.REPORT_DOWNLOADED).count() == 1
    assert not _views().exists()


def test_the_admin_does_not_browse_case_level_data(world, run_with_cases):
    boss = UserFactory.create(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(boss)
    case = run_with_cases.dataset_version.cases.first()
    prediction = run_with_cases.predictions.first()
    explanation = run_with_cases.explanations.first()
    for path in [
        "/admin/validation/case/",
        f"/admin/validation/case/{case.pk}/change/",
        "/admin/validation/prediction/",
        f"/admin/validation/prediction/{prediction.pk}/change/",
        "/admin/validation/explanation/",
        f"/admin/validation/explanation/{explanation.pk}/change/",
    ]:
        response = client.get(path, follow=True)
        assert SECRET_CASE[:-1] not in response.content.decode(), path
        assert response.status_code == 404, path
    report = _with_exemplars(run_with_cases, 1)
    page = client.get(f"/admin/reports/report/{report.pk}/change/")
    assert page.status_code == 200
    assert SECRET_PIXELS not in page.content.decode()
    assert client.get("/admin/validation/validationrun/").status_code == 200
    assert not _views().exists()


@pytest.mark.parametrize("who", ["vendor_user", "steward", "reviewer", "qa", "auditor"])
def test_no_api_answer_carries_case_level_data_unrecorded(world, run_with_cases, who):
    """Every GET the API offers on the run, its dataset and its report, as each role: no case
    id, score or image leaves unless a CASE_DATA_VIEWED event records it."""
    run = run_with_cases
    report = issued_report(run)
    version = run.dataset_version
    client = APIClient()
    client.force_authenticate(getattr(world, who))
    paths = [
        "/api/v1/runs/",
        f"/api/v1/runs/{run.pk}/",
        f"/api/v1/runs/{run.pk}/results/",
        "/api/v1/datasets/",
        f"/api/v1/datasets/{version.dataset_id}/",
        f"/api/v1/datasets/{version.dataset_id}/usage/",
        "/api/v1/dataset-cards/",
        f"/api/v1/dataset-cards/{version.pk}/",
        "/api/v1/dataset-imports/",
        "/api/v1/grants/",
        "/api/v1/reports/",
        f"/api/v1/reports/{report.pk}/",
        "/api/v1/packages/",
    ]
    for path in paths:
        response = client.get(path)
        text = json.dumps(response.json()) if response.content else ""
        if SECRET_CASE[:-1] in text or SECRET_PIXELS in text:
            assert _views().filter(actor=getattr(world, who)).exists(), path
