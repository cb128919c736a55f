"""The study card on the web pages: the partner edits the dataset's draft through a form the
service checks (problems on their fields, nothing saved), uploads a card with an archive, and
reads a sealed version's card read-only; a granted vendor reads it on the dataset card."""

import io
import json

import pytest
from django.urls import reverse

from tests.support.people import signed_in
from tests.support.sample_document import SAMPLE_STUDY_CARD
from tests.web.test_partner_pages import cohort_zip
from validation.models import Dataset, DatasetImport
from validation.services.datasets import dataset_create, dataset_grant, dataset_version_import

pytestmark = pytest.mark.django_db

FORM = {
    "collection_start": "2021-03-01",
    "collection_end": "2023-02-28",
    "sites": "North hospital\n\n  South clinic  \n",
    "inclusion_criteria": "Adults\nFrontal chest radiograph",
    "exclusion_criteria": "",
    "sampling_method": "consecutive",
    "sampling_note": "",
    "prevalence": "Natural",
    "reference_method": "Histopathology",
    "readers": "2",
    "reader_qualification": "",
    "adjudication": "",
}


@pytest.fixture
def dataset(world) -> Dataset:
    return dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")


def test_the_steward_edits_the_draft_and_the_dataset_page_shows_it(world, dataset):
    client = signed_in(world.steward)
    page = client.get(reverse("web:dataset", args=[dataset.pk])).content.decode()
    assert "Draft study card" in page and "No draft has been written yet." in page
    assert page.count("Not provided by the data partner") == 12
    url = reverse("web:dataset-study-card", args=[dataset.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, FORM)
    assert response.status_code == 303 and response["Location"] == reverse(
        "web:dataset", args=[dataset.pk]
    )
    dataset.refresh_from_db()
    assert dataset.study_card_draft == {
        "collection_period": {"start": "2021-03-01", "end": "2023-02-28"},
        "sites": ["North hospital", "South clinic"],
        "inclusion_criteria": ["Adults", "Frontal chest radiograph"],
        "sampling": {"method": "consecutive"},
        "prevalence": "Natural",
        "reference_standard": {"method": "Histopathology", "readers": 2},
    }
    page = client.get(reverse("web:dataset", args=[dataset.pk])).content.decode()
    assert "South clinic" in page and "Histopathology" in page
    assert page.count("Not provided by the data partner") == 4
    # The form opens with the draft in it.
    form = client.get(url).content.decode()
    assert "North hospital\nSouth clinic</textarea>" in form


def test_a_card_the_schema_refuses_is_shown_on_its_fields_and_not_saved(world, dataset):
    client = signed_in(world.steward)
    url = reverse("web:dataset-study-card", args=[dataset.pk])
    response = client.post(
        url, {**FORM, "collection_end": "2020-01-01", "sites": "x" * 201 + "\nfine"}
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert form.errors["collection_end"] == ["lies before the collection start"]
    assert "is longer than 200 characters" in form.errors["sites"][0]
    assert "The study card is invalid (2 problem(s))." in response.content.decode()
    dataset.refresh_from_db()
    assert dataset.study_card_draft is None


def test_only_the_datasets_steward_reaches_the_form(world, dataset):
    url = reverse("web:dataset-study-card", args=[dataset.pk])
    assert signed_in(world.other_steward).get(url).status_code == 404
    assert signed_in(world.other_steward).post(url, FORM).status_code == 404
    assert signed_in(world.vendor_user).get(url).status_code == 403
    dataset.refresh_from_db()
    assert dataset.study_card_draft is None


def test_a_sealed_versions_card_is_shown_read_only_to_the_partner_and_a_granted_vendor(
    world, dataset, cohort
):
    version = dataset_version_import(
        actor=world.steward, dataset=dataset, source=cohort, study_card=SAMPLE_STUDY_CARD
    )
    page = signed_in(world.steward).get(reverse("web:dataset-version", args=[version.pk]))
    body = page.content.decode()
    assert "Frozen with the seal" in body and version.study_card_sha256 in body
    assert "Board-certified thoracic radiologists, 8 and 15 years" in body
    assert "<form" not in body.split('id="h-study-card"')[1].split("</section>")[0]
    assert "Not provided by the data partner" not in body
    dataset_grant(actor=world.steward, dataset_version=version, vendor=world.vendor_a)
    card = signed_in(world.vendor_user).get(reverse("web:dataset-card", args=[version.pk]))
    text = card.content.decode()
    assert "Study card" in text and "A third radiologist decided on disagreement" in text
    assert version.study_card_sha256 in text


def test_an_archive_upload_takes_a_study_card_file(
    world, dataset, cohort, django_capture_on_commit_callbacks
):
    client = signed_in(world.steward)
    url = reverse("web:dataset-import-new", args=[dataset.pk])
    bad = io.BytesIO(json.dumps({"sampling": {"method": "haphazard"}}).encode())
    bad.name = "study_card.json"
    refused = client.post(url, {"file": cohort_zip(cohort.parent), "study_card": bad})
    assert refused.status_code == 400
    assert "study_card/sampling/method: &#x27;haphazard&#x27; is not one of" in (
        refused.content.decode()
    )
    assert not DatasetImport.objects.exists()
    good = io.BytesIO(json.dumps(SAMPLE_STUDY_CARD).encode())
    good.name = "study_card.json"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"file": cohort_zip(cohort.parent), "study_card": good})
    job = DatasetImport.objects.get()
    assert job.status == "done" and job.version is not None
    assert job.version.study_card == SAMPLE_STUDY_CARD
