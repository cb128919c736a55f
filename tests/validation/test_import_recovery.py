"""Dataset imports that lose their worker: a delivery that finds the import RUNNING with a stale
heartbeat restarts it and removes what the dead attempt left; a live owner is left alone; the
janitor queues lost imports again and removes staging nobody owns. The staged upload is deleted
in every final outcome. (The same with real workers and SIGKILL: test_import_crash.py.)"""

import io
import os
import time
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from config.celery import QueuedTask
from validation import task_names
from validation.models import DatasetImport, DatasetVersion
from validation.services.dataset_imports import (
    dataset_import_execute,
    dataset_import_request,
    dataset_imports_recover,
)
from validation.services.datasets import dataset_create

pytestmark = pytest.mark.django_db


def _zip(folder: Path) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder))
    return SimpleUploadedFile("cohort.zip", buffer.getvalue())


@pytest.fixture
def job(world, cohort, django_capture_on_commit_callbacks):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    with django_capture_on_commit_callbacks(execute=False):  # the task is not delivered yet
        return dataset_import_request(
            actor=world.steward, dataset=dataset, upload=_zip(cohort.parent)
        )


def _left_by_a_killed_attempt(job, settings) -> tuple[Path, Path]:
    """What a worker SIGKILLed between renaming its packs into the store and the commit leaves:
    the row RUNNING under attempt 1 with a stale heartbeat, the attempt's folder (unpacked
    archive, staging store), and the pack folder renamed into the store with no version."""
    root = Path(settings.SEQUESTERED_ROOT)
    folder = root / "incoming" / "imports" / f"{job.pk}-a1"
    (folder / "dataset-x" / "dicom").mkdir(parents=True)
    (folder / "dataset-x" / "dicom" / "a.dcm").write_bytes(b"partner data")
    (folder / "store-dead").mkdir()
    orphan = root / "packs" / "store-dead"
    (orphan / "masks").mkdir(parents=True)
    (orphan / "123.pack").write_bytes(b"partner data")
    DatasetImport.objects.filter(pk=job.pk).update(
        status=DatasetImport.Status.RUNNING,
        attempts=1,
        worker="w1@host",
        heartbeat_at=timezone.now() - timedelta(seconds=settings.WORKER_STALE_S + 5),
        files_done=100,
    )
    return folder, orphan


def test_a_redelivered_import_whose_worker_died_restarts_and_cleans_up(job, settings):
    staged = Path(settings.SEQUESTERED_ROOT) / job.staged_path
    assert staged.is_file()
    folder, orphan = _left_by_a_killed_attempt(job, settings)

    dataset_import_execute(import_id=job.pk, worker="w2@host")  # the broker delivers it again

    job.refresh_from_db()
    assert job.status == DatasetImport.Status.DONE, job.message
    assert job.attempts == 2 and job.worker == "w2@host"
    assert job.version is not None and job.version.status == DatasetVersion.Status.SEALED
    assert job.files_done == job.files_total == 16 and job.staged_path == ""
    assert DatasetVersion.objects.count() == 1
    assert not staged.exists() and not folder.exists() and not orphan.exists()
    assert list((Path(settings.SEQUESTERED_ROOT) / "incoming" / "imports").iterdir()) == []
    packs = {p.name for p in (Path(settings.SEQUESTERED_ROOT) / "packs").iterdir()}
    referenced = {c.file_path.split("/")[1] for c in job.version.cases.exclude(file_path="")}
    assert packs == referenced

    dataset_import_execute(import_id=job.pk, worker="w3@host")  # once more: nothing happens
    job.refresh_from_db()
    assert job.attempts == 2 and DatasetVersion.objects.count() == 1


def test_an_import_whose_owner_is_alive_is_left_alone(job, settings):
    staged = Path(settings.SEQUESTERED_ROOT) / job.staged_path
    folder, orphan = _left_by_a_killed_attempt(job, settings)
    DatasetImport.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())

    dataset_import_execute(import_id=job.pk, worker="w2@host")

    job.refresh_from_db()
    assert job.status == DatasetImport.Status.RUNNING and job.attempts == 1
    assert job.worker == "w1@host" and not DatasetVersion.objects.exists()
    assert staged.is_file() and folder.exists() and orphan.exists()  # still its owner's


def test_a_refused_import_deletes_its_upload(job, settings):
    staged = Path(settings.SEQUESTERED_ROOT) / job.staged_path
    staged.write_bytes(b"not an archive at all")
    dataset_import_execute(import_id=job.pk, worker="w1@host")
    job.refresh_from_db()
    assert job.status == DatasetImport.Status.REFUSED and job.attempts == 1
    assert not staged.exists() and job.staged_path == ""
    imports = Path(settings.SEQUESTERED_ROOT) / "incoming" / "imports"
    assert not imports.exists() or list(imports.iterdir()) == []


def test_the_janitor_requeues_lost_imports_and_removes_staging_nobody_owns(
    job, settings, django_capture_on_commit_callbacks
):
    root = Path(settings.SEQUESTERED_ROOT)
    staged = root / job.staged_path
    folder, _orphan = _left_by_a_killed_attempt(job, settings)
    stray_upload = root / "incoming" / "uploads" / "upload-stray.bin"  # its request died
    stray_upload.write_bytes(b"partner data")
    finished = root / "incoming" / "imports" / "999-a3"  # an attempt of no running import
    finished.mkdir(parents=True)
    (finished / "x").write_bytes(b"partner data")
    past = time.time() - 3600
    for path in (stray_upload, finished, staged):
        os.utime(path, (past, past))

    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert dataset_imports_recover(grace_s=60) == [job.pk]
    assert [(q.name, q.kwargs) for q in queued if isinstance(q, QueuedTask)] == [
        (task_names.DATASET_IMPORT, {"import_id": job.pk})
    ]
    assert not stray_upload.exists() and not finished.exists()
    assert staged.is_file()  # the lost import's upload: it is about to be restarted

    with django_capture_on_commit_callbacks(execute=False) as again:
        assert dataset_imports_recover(grace_s=60) == []  # not again until stale again
    assert again == []
    job.refresh_from_db()
    assert job.status == DatasetImport.Status.RUNNING and folder.exists() and job.worker == ""

    dataset_import_execute(import_id=job.pk, worker="w2@host")  # the queued task restarts it
    job.refresh_from_db()
    assert job.status == DatasetImport.Status.DONE and job.attempts == 2, job.message
    assert not staged.exists() and not folder.exists()
