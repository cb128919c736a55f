"""Imports requested through the API: the upload is kept in the sequestered store's private
staging area, a task imports it (see `datasets.dataset_version_import`) and records progress,
then the upload is deleted whatever the outcome."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.celery import enqueue_on_commit
from validation import task_names
from validation.errors import ApplicationError
from validation.models import Dataset, DatasetImport
from validation.services.datasets import dataset_version_import, require_steward

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024


def _uploads_root() -> Path:
    root = Path(settings.SEQUESTERED_ROOT) / "incoming" / "uploads"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def dataset_import_request(*, actor, dataset: Dataset, upload) -> DatasetImport:
    """Keep the uploaded archive and queue its import. The archive's checks (format, members,
    sizes) and the manifest's run in the task; a refusal is recorded on the import."""
    require_steward(actor, dataset.partner)
    max_bytes = settings.DATASET_MAX_ARCHIVE_BYTES
    if upload.size > max_bytes:
        raise ApplicationError(f"The archive is larger than the limit of {max_bytes} bytes.")
    fd, staged = tempfile.mkstemp(prefix="upload-", suffix=".bin", dir=_uploads_root())
    try:
        with open(fd, "wb") as out:
            for chunk in upload.chunks(CHUNK):
                out.write(chunk)
        with transaction.atomic():
            job = DatasetImport.objects.create(
                dataset=dataset,
                requested_by=actor,
                source_name=(upload.name or "upload")[-255:],
                staged_path=str(Path(staged).relative_to(settings.SEQUESTERED_ROOT)),
            )
            enqueue_on_commit(task_names.DATASET_IMPORT, import_id=job.pk)
    except BaseException:
        Path(staged).unlink(missing_ok=True)  # no partner data left behind without its job
        raise
    return job


def dataset_import_execute(*, import_id: int) -> None:
    """Run one queued import to its end: done with a sealed version, or refused with reasons."""
    with transaction.atomic():
        job = DatasetImport.objects.select_for_update().filter(pk=import_id).first()
        if job is None or job.status != DatasetImport.Status.QUEUED:
            return
        job.status = DatasetImport.Status.RUNNING
        job.save(update_fields=["status"])
    staged = Path(settings.SEQUESTERED_ROOT) / job.staged_path

    def progress(done: int, total: int) -> None:
        DatasetImport.objects.filter(pk=import_id).update(files_done=done, files_total=total)

    outcome: dict = {}
    try:
        version = dataset_version_import(
            actor=job.requested_by, dataset=job.dataset, source=staged, progress=progress
        )
        outcome = {"status": DatasetImport.Status.DONE, "version": version}
        outcome["message"] = f"Imported and sealed as version {version.version}."
    except ApplicationError as exc:
        outcome = {
            "status": DatasetImport.Status.REFUSED,
            "message": exc.message[:500],
            "errors": exc.errors,
        }
    except Exception:
        log.exception("dataset import %s failed", import_id)
        outcome = {
            "status": DatasetImport.Status.REFUSED,
            "message": "The import failed on an internal error; the team has been notified.",
        }
    finally:
        staged.unlink(missing_ok=True)
        DatasetImport.objects.filter(pk=import_id).update(
            staged_path="", finished_at=timezone.now(), **outcome
        )
