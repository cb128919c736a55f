"""Sealing stores files only with a committed version: a database failure at seal time, before
or after the staged folder is renamed into the sequestered store, leaves no file there."""

from pathlib import Path

import pytest

from audit.models import AuditAction
from validation.models import Case, DatasetVersion
from validation.services import datasets
from validation.services.datasets import dataset_create, dataset_version_import

pytestmark = pytest.mark.django_db


def _files(root) -> list[Path]:
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def dataset(world):
    return dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")


def test_a_database_failure_while_sealing_leaves_no_file(
    world, dataset, cohort, settings, monkeypatch
):
    real_audit = datasets.audit_record

    def sealing_fails(**kwargs):
        if kwargs["action"] == AuditAction.DATASET_VERSION_SEALED:
            raise RuntimeError("the database went away")  # injected fault inside the seal
        return real_audit(**kwargs)

    monkeypatch.setattr(datasets, "audit_record", sealing_fails)
    with pytest.raises(RuntimeError, match="went away"):
        dataset_version_import(actor=world.steward, dataset=dataset, source=cohort, workers=1)
    assert not DatasetVersion.objects.exists() and not Case.objects.exists()
    assert _files(settings.SEQUESTERED_ROOT) == []


def test_a_failure_after_the_files_moved_removes_them(world, dataset, cohort, settings):
    seen: list[list[Path]] = []

    def fails_at_the_end_of_the_transaction(version):
        seen.append(_files(Path(settings.SEQUESTERED_ROOT) / "packs"))  # moved by now
        raise RuntimeError("the commit failed")

    with pytest.raises(RuntimeError, match="commit failed"):
        dataset_version_import(
            actor=world.steward,
            dataset=dataset,
            source=cohort,
            workers=1,
            on_seal=fails_at_the_end_of_the_transaction,
        )
    assert seen and seen[0]  # the fault came after the rename into the store
    assert not DatasetVersion.objects.exists()
    assert _files(settings.SEQUESTERED_ROOT) == []

    version = dataset_version_import(  # and a clean import afterwards stores its files
        actor=world.steward, dataset=dataset, source=cohort, workers=1
    )
    for case in version.cases.exclude(file_path=""):
        assert (Path(settings.SEQUESTERED_ROOT) / case.file_path).is_file()
