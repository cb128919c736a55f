"""The study card through the API: given with an import upload (checked before the upload is
kept, problems at their paths), frozen on the version, and read on the dataset version's card
by the partner and by a granted vendor."""

import io
import json

import pytest
from rest_framework.test import APIClient

from tests.api.test_datasets_api import _zip
from tests.support.sample_document import SAMPLE_STUDY_CARD
from validation.models import DatasetImport, DatasetVersion
from validation.services.datasets import dataset_create, dataset_grant
from validation.study_card import ENTRIES, study_card_hash

pytestmark = pytest.mark.django_db


def _client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def _card_file(card, name="study_card.json") -> io.BytesIO:
    data = io.BytesIO(card if isinstance(card, bytes) else json.dumps(card).encode())
    data.name = name
    return data


def test_an_import_upload_carries_the_study_card_to_the_sealed_version(
    world, cohort, django_capture_on_commit_callbacks
):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    steward = _client(world.steward)
    with django_capture_on_commit_callbacks(execute=True):
        accepted = steward.post(
            f"/api/v1/datasets/{dataset.pk}/imports/",
            {"file": _zip(cohort.parent), "study_card": _card_file(SAMPLE_STUDY_CARD)},
            format="multipart",
        )
    assert accepted.status_code == 202, accepted.json()
    job = steward.get(f"/api/v1/dataset-imports/{accepted.json()['id']}/").json()
    assert job["status"] == "done", job
    version = DatasetVersion.objects.get(pk=job["version"])
    assert version.study_card == SAMPLE_STUDY_CARD

    card = steward.get(f"/api/v1/dataset-cards/{version.pk}/").json()["study_card"]
    assert card == {
        "recorded": True,
        "card": SAMPLE_STUDY_CARD,
        "sha256": study_card_hash(SAMPLE_STUDY_CARD),
        "missing": [],
    }
    vendor = _client(world.vendor_user)
    assert vendor.get(f"/api/v1/dataset-cards/{version.pk}/").status_code == 404
    dataset_grant(actor=world.steward, dataset_version=version, vendor=world.vendor_a)
    assert vendor.get(f"/api/v1/dataset-cards/{version.pk}/").json()["study_card"] == card


def test_a_bad_study_card_is_refused_with_its_paths_before_the_upload_is_kept(world, cohort):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    bad = {**SAMPLE_STUDY_CARD, "sampling": {"method": "haphazard"}, "sites": ["A", "A"]}
    for card, paths in [
        (bad, ["study_card.sampling.method", "study_card.sites"]),
        (b"{oops", ["study_card"]),
    ]:
        refused = _client(world.steward).post(
            f"/api/v1/datasets/{dataset.pk}/imports/",
            {"file": _zip(cohort.parent), "study_card": _card_file(card)},
            format="multipart",
        )
        assert refused.status_code == 400, refused.json()
        problem = refused.json()
        assert problem["detail"].startswith("The study card has")
        assert [e["path"] for e in problem["errors"]] == paths
    assert not DatasetImport.objects.exists()


def test_a_version_sealed_before_study_cards_says_it_has_none(world, cohort):
    from tests.factories import DatasetVersionFactory

    version = DatasetVersionFactory.create()  # as stored before the study card existed
    assert version.study_card is None
    team = _client(world.reviewer)
    card = team.get(f"/api/v1/dataset-cards/{version.pk}/").json()["study_card"]
    assert card["recorded"] is False and card["card"] == {} and card["sha256"] == ""
    assert card["missing"] == [label for _path, label in ENTRIES]
