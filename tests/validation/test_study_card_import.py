"""A dataset version's study card: given with the import (beside the manifest in a folder or an
archive, or as an argument), else the dataset's draft; checked before anything is stored;
frozen with the seal (its hash in the seal's audit event) and never changed afterwards, not by
the ORM, not by SQL, not by a later draft."""

import copy
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audit.immutability import ImmutableRecordError
from audit.models import AuditAction, AuditEvent
from tests.support.sample_document import SAMPLE_STUDY_CARD
from validation.errors import ApplicationError, PermissionDenied
from validation.models import Dataset, DatasetVersion
from validation.services.datasets import (
    dataset_create,
    dataset_study_card_draft_save,
    dataset_version_import,
)
from validation.study_card import study_card_hash

pytestmark = pytest.mark.django_db


def _dataset(world, name="Chest") -> Dataset:
    return dataset_create(actor=world.steward, partner=world.partner_a, name=name)


def _with_card(cohort: Path, dest: Path, card) -> Path:
    folder = Path(shutil.copytree(cohort.parent, dest))
    text = card if isinstance(card, str) else json.dumps(card)
    (folder / "study_card.json").write_text(text, encoding="utf-8")
    return folder


def _sealed_event(version: DatasetVersion) -> AuditEvent:
    return AuditEvent.objects.get(
        action=AuditAction.DATASET_VERSION_SEALED, target_id=str(version.pk)
    )


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_a_card_beside_the_manifest_is_frozen_with_the_seal(world, cohort, tmp_path, kind):
    folder = _with_card(cohort, tmp_path / "cohort", SAMPLE_STUDY_CARD)
    source = folder
    if kind == "zip":
        source = tmp_path / "upload.zip"
        with zipfile.ZipFile(source, "w") as zf:
            for path in sorted(folder.rglob("*")):
                zf.write(path, Path("cohort") / path.relative_to(folder))
    version = dataset_version_import(actor=world.steward, dataset=_dataset(world), source=source)
    assert version.status == DatasetVersion.Status.SEALED
    assert version.study_card == SAMPLE_STUDY_CARD
    assert version.study_card_sha256 == study_card_hash(SAMPLE_STUDY_CARD)
    payload = _sealed_event(version).payload
    assert payload["study_card_sha256"] == version.study_card_sha256
    assert payload["study_card_source"] == "import"


def test_an_import_without_a_card_takes_the_draft_else_an_empty_card(world, cohort):
    dataset = _dataset(world)
    bare = dataset_version_import(actor=world.steward, dataset=dataset, source=cohort)
    assert bare.study_card == {} and bare.study_card_sha256 == study_card_hash({})
    assert _sealed_event(bare).payload["study_card_source"] == "none"

    draft = {"sites": ["North"], "sampling": {"method": "random"}}
    dataset_study_card_draft_save(actor=world.steward, dataset=dataset, card=draft)
    event = AuditEvent.objects.get(action=AuditAction.DATASET_STUDY_CARD_DRAFTED)
    assert event.payload == {"study_card_sha256": study_card_hash(draft)}
    drafted = dataset_version_import(actor=world.steward, dataset=dataset, source=cohort)
    assert drafted.study_card == draft
    assert _sealed_event(drafted).payload["study_card_source"] == "draft"

    # Editing the draft after the seal leaves the sealed version's card as it was.
    dataset_study_card_draft_save(actor=world.steward, dataset=dataset, card=SAMPLE_STUDY_CARD)
    drafted.refresh_from_db()
    assert drafted.study_card == draft and bare.study_card == {}
    # A card given with the import wins over the draft.
    given = {"prevalence": "natural"}
    own = dataset_version_import(
        actor=world.steward, dataset=dataset, source=cohort, study_card=given
    )
    assert own.study_card == given


@pytest.mark.integration  # the trigger is PostgreSQL's in production
def test_a_sealed_versions_card_refuses_every_change(world, cohort):
    version = dataset_version_import(
        actor=world.steward, dataset=_dataset(world), source=cohort, study_card=SAMPLE_STUDY_CARD
    )
    with pytest.raises(ImmutableRecordError):
        DatasetVersion.objects.filter(pk=version.pk).update(study_card={})
    version.study_card = {"prevalence": "changed"}
    with pytest.raises(ImmutableRecordError):
        version.save()
    for sql in (
        "UPDATE validation_datasetversion SET study_card = '{}' WHERE id = %s",
        "UPDATE validation_datasetversion SET study_card_sha256 = '' WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [version.pk])
    version.refresh_from_db()
    assert version.study_card == SAMPLE_STUDY_CARD


def test_a_bad_card_is_refused_at_its_paths_before_anything_is_stored(
    world, cohort, tmp_path, settings
):
    bad = copy.deepcopy(SAMPLE_STUDY_CARD)
    bad["reference_standard"]["readers"] = 0
    bad["colour"] = "red"
    folder = _with_card(cohort, tmp_path / "cohort", bad)
    dataset = _dataset(world)
    with pytest.raises(ApplicationError) as refused:
        dataset_version_import(actor=world.steward, dataset=dataset, source=folder)
    assert refused.value.message == "The study card has 2 problem(s); nothing was imported."
    assert refused.value.errors == [
        "study_card/colour: 'colour' is not an entry the study card has here",
        "study_card/reference_standard/readers: 0 is less than the minimum of 1",
    ]
    assert not DatasetVersion.objects.exists()
    stored = Path(settings.SEQUESTERED_ROOT) / "packs"
    assert not stored.exists() or not any(stored.rglob("*"))
    event = AuditEvent.objects.get(action=AuditAction.DATASET_IMPORT_REFUSED)
    assert event.payload["errors"] == refused.value.errors

    (folder / "study_card.json").write_text("{not json")
    with pytest.raises(ApplicationError, match="1 problem"):
        dataset_version_import(actor=world.steward, dataset=dataset, source=folder)
    (folder / "study_card.json").write_text(json.dumps(SAMPLE_STUDY_CARD))
    with pytest.raises(ApplicationError, match="two study cards"):
        dataset_version_import(
            actor=world.steward, dataset=dataset, source=folder, study_card={"sites": ["X"]}
        )
    with pytest.raises(ApplicationError, match="nothing was imported") as given:
        dataset_version_import(
            actor=world.steward, dataset=dataset, source=cohort, study_card={"sites": "X"}
        )
    assert given.value.errors == ["study_card/sites: 'X' is not of type 'array'"]
    assert not DatasetVersion.objects.exists()


def test_the_draft_is_checked_and_only_the_datasets_steward_writes_it(world):
    dataset = _dataset(world)
    with pytest.raises(ApplicationError) as refused:
        dataset_study_card_draft_save(
            actor=world.steward,
            dataset=dataset,
            card={"sampling": {"method": "haphazard"}, "sites": ["A", 3]},
        )
    assert [e["path"] for e in refused.value.errors] == [
        "study_card.sampling.method",
        "study_card.sites.1",
    ]
    with pytest.raises(PermissionDenied):
        dataset_study_card_draft_save(actor=world.other_steward, dataset=dataset, card={})
    dataset.refresh_from_db()
    assert dataset.study_card_draft is None
    assert not AuditEvent.objects.filter(action=AuditAction.DATASET_STUDY_CARD_DRAFTED).exists()


def test_the_import_command_takes_a_study_card(world, cohort, tmp_path, capsys):
    card = tmp_path / "card.json"
    card.write_text(json.dumps(SAMPLE_STUDY_CARD))
    args = [str(cohort), "--partner", "Partner A", "--dataset", "Chest", "--steward", "steward_a"]
    call_command("import_dataset", *args, "--create", "--study-card", str(card))
    version = DatasetVersion.objects.get()
    assert version.study_card == SAMPLE_STUDY_CARD
    assert f"Study card SHA-256 {version.study_card_sha256} (complete)" in capsys.readouterr().out
    card.write_text(json.dumps({"readers": 2}))
    with pytest.raises(CommandError, match="is invalid"):
        call_command("import_dataset", *args, "--study-card", str(card))
    assert "study_card/readers: 'readers' is not an entry" in capsys.readouterr().err
    assert DatasetVersion.objects.count() == 1
