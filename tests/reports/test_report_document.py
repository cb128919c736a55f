"""The report document a real run produces (real sandboxed runner, real DICOM): the device as
its manifest declares it, the localisation chance baseline, the audit excerpt with its gaps
explained, read back from the rendered PDF."""

import io

import numpy as np
import pytest
from pypdf import PdfReader

from reports.models import Report
from reports.rendering import render_pdf
from tests.factories import approved_package, protocol_document
from tests.run_helpers import infer
from validation.models import Case, Explanation
from validation.services import runs
from validation.services.datasets import dataset_create, dataset_grant, dataset_version_import
from validation.services.protocols import protocol_create

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]


@pytest.fixture
def document(world, package_file, cohort, django_capture_on_commit_callbacks):
    package = approved_package(world, package_file)
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    version = dataset_version_import(actor=world.steward, dataset=dataset, source=cohort)
    dataset_grant(actor=world.steward, dataset_version=version, vendor=world.vendor_a)
    # Another partner's dataset, recorded between this run's events: not part of its excerpt.
    dataset_create(actor=world.other_steward, partner=world.partner_b, name="Elsewhere")
    protocol = protocol_create(
        actor=world.reviewer, name="P", document=protocol_document(min_cell_size=4)
    )
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.run_start(
            actor=world.reviewer, package=package, dataset_version=version, protocol=protocol
        )
    infer(run.pk)
    for stage in (runs.run_score, runs.run_explain, runs.run_report):
        stage(run_id=run.pk)
    return run, Report.objects.get(run=run).document


def _words(document) -> str:
    pages = PdfReader(io.BytesIO(render_pdf(document))).pages
    return " ".join(" ".join(page.extract_text() for page in pages).split())


def test_the_device_is_described_from_the_manifest(document):
    run, doc = document
    device = doc["device"]
    assert device["sha256"] == run.package.sha256
    assert device["indications"] == ["Focal lesion on frontal chest radiograph, adults"]
    assert device["modalities"] == ["DX", "CR"]
    assert device["format"] == "torch.export"
    assert device["input_shape"] == {"channels": 1, "height": 64, "width": 64}
    assert device["training_data"]["declared"] is False
    sandbox = doc["identity"]["sandbox"]
    assert "execve" in sandbox["seccomp_denied"] and "seccomp denies" not in sandbox["isolation"]
    words = _words(doc)
    assert "Focal lesion on frontal chest radiograph, adults" in words
    assert "['" not in words
    assert "The vendor declared no training data" in words


def test_the_localisation_chance_is_the_mean_roi_share_of_the_map(document):
    run, doc = document
    localisation = doc["explainability"]["localisation"]
    with_roi = Explanation.objects.filter(run=run, pointing_hit__isnull=False)
    assert with_roi.exists()
    shares = []
    for explanation in with_roi.select_related("case"):
        case: Case = explanation.case
        height, width = 64, 64  # the maps are the model's input size
        rows, cols = case.attributes["rows"], case.attributes["columns"]
        assert case.roi is not None
        x0, y0, x1, y1 = case.roi
        across = np.ceil(x1 * width / cols) - np.floor(x0 * width / cols)
        down = np.ceil(y1 * height / rows) - np.floor(y0 * height / rows)
        shares.append(across * down / (height * width))
    assert localisation["chance"] == pytest.approx(np.mean(shares), abs=1e-3)
    assert 0 < localisation["chance"] < 1
    assert f"Chance baseline {localisation['chance']:.3f}" in _words(doc)


def test_the_audit_excerpt_includes_the_grant_and_explains_its_gaps(document):
    _run, doc = document
    actions = [event["action"] for event in doc["audit_excerpt"]]
    for action in ("dataset.created", "dataset_version.sealed", "dataset.granted", "run.queued"):
        assert action in actions
    seqs = [event["seq"] for event in doc["audit_excerpt"]]
    granted = seqs[actions.index("dataset.granted")]
    gap = doc["audit_gaps"][0]
    assert gap["first"] == granted + 1  # the other partner's dataset.created
    assert gap["other_objects"] >= 1 and gap["unused"] == 0
    skipped = set(range(gap["first"], gap["last"] + 1))
    assert not skipped & set(seqs)
    words = _words(doc)
    assert f"Event {gap['first']} is not listed: 1 is about other objects" in words or (
        f"Events {gap['first']}\N{EN DASH}{gap['last']} are not listed" in words
    )


def test_findings_discussion_and_limitations_come_from_the_runs_own_numbers(document):
    from reports.findings import report_discussion, report_findings, report_limitations

    _, doc = document
    assert doc["findings"] == report_findings(doc)
    assert doc["discussion"] == report_discussion(doc, doc["findings"])
    assert doc["limitations"] == report_limitations(doc)
    assert all(set(item) == {"kind", "severity", "sentence"} for item in doc["findings"])
    assert doc["discussion"]["conclusion"]
    # The cohort's files declare themselves synthetic; the vendor declared no training data.
    assert doc["test_data"]["synthetic"] is True
    limitations = " ".join(doc["limitations"])
    assert "The test data are synthetic" in limitations
    assert "The vendor declared no training data" in limitations
    assert "Synthetic or single-partner" not in limitations  # the old boilerplate
    words = _words(doc)
    assert doc["discussion"]["conclusion"] in words
