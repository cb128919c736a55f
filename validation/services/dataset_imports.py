"""Imports requested through the API: the upload is kept in the sequestered store's private
staging area, a task imports it (see `datasets.dataset_version_import`) and records progress,
then the upload is deleted whatever the outcome.

A worker can die mid-import (SIGKILL, a lost machine). Each attempt is claimed under a row lock
(attempt number, worker, heartbeat) and works in its own folder, `incoming/imports/<id>-a<n>`;
while it runs on a worker, a thread renews its heartbeat. A delivery that finds the import
RUNNING with a fresh heartbeat returns (its owner lives); with a stale one it removes what the
dead attempt left (its folder, and any pack folder it renamed into the store without a
committed version) and restarts. The sealing transaction also marks the import done, and only
for the attempt that holds the claim, so a version is sealed once. `dataset_imports_recover`
(each GPU worker's heartbeat) queues stale imports again and removes staging nobody owns."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.celery import enqueue_on_commit
from validation import task_names
from validation.errors import ApplicationError
from validation.models import Case, Dataset, DatasetImport, DatasetVersion
from validation.services.datasets import (
    dataset_version_import,
    require_steward,
    study_card_check,
)

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024


STAGING_GRACE_S = 6 * 3600  # an upload or folder nobody owns is removed after this long


class _Superseded(Exception):
    """Another attempt has claimed the import since this one started."""


def _imports_root() -> Path:
    return Path(settings.SEQUESTERED_ROOT) / "incoming" / "imports"


def _attempt_root(import_id: int, attempt: int) -> Path:
    return _imports_root() / f"{import_id}-a{attempt}"


def _uploads_root() -> Path:
    root = Path(settings.SEQUESTERED_ROOT) / "incoming" / "uploads"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def dataset_import_request(
    *, actor, dataset: Dataset, upload, study_card: dict | None = None
) -> DatasetImport:
    """Keep the uploaded archive and queue its import. A study card given with it is checked
    here, before anything is kept, and goes with the import; the archive's checks (format,
    members, sizes) and the manifest's run in the task; a refusal is recorded on the import."""
    require_steward(actor, dataset.partner)
    if study_card is not None:
        study_card_check(study_card)
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
                study_card=study_card,
            )
            enqueue_on_commit(task_names.DATASET_IMPORT, import_id=job.pk)
    except BaseException:
        Path(staged).unlink(missing_ok=True)  # no partner data left behind without its job
        raise
    return job


def dataset_import_execute(*, import_id: int, worker: str = "") -> None:
    """Run one queued import to its end: done with a sealed version, or refused with reasons.
    Restarts an import whose previous attempt lost its worker (see the module docstring);
    returns early for a finished import or one whose owner is alive. The staged upload and the
    attempt's folder are deleted in every outcome."""
    attempt = _claim(import_id, worker)
    if attempt is None:
        return
    job = DatasetImport.objects.select_related("dataset", "requested_by").get(pk=import_id)
    staged = Path(settings.SEQUESTERED_ROOT) / job.staged_path if job.staged_path else None
    mine = DatasetImport.objects.filter(
        pk=import_id, attempts=attempt, status=DatasetImport.Status.RUNNING
    )
    work_root = _attempt_root(import_id, attempt)
    try:
        with _heartbeat(mine):
            outcome = _attempt_run(job, mine, staged, work_root)
    except _Superseded:
        log.warning("dataset import %s attempt %s was superseded", import_id, attempt)
        return  # the newer attempt owns the upload and the outcome
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    if outcome:
        owned = mine.update(staged_path="", finished_at=timezone.now(), **outcome)
    else:
        owned = 1  # done: the sealing transaction recorded the outcome
    if owned and staged is not None:
        staged.unlink(missing_ok=True)


def _attempt_run(job: DatasetImport, mine, staged: Path | None, work_root: Path) -> dict:
    """The import itself; returns the refusal to record, or {} when sealed (the sealing
    transaction marked the import done)."""

    def progress(done: int, total: int) -> None:
        mine.update(files_done=done, files_total=total, heartbeat_at=timezone.now())

    def mark_done(version: DatasetVersion) -> None:
        """Inside the sealing transaction: only the attempt holding the claim may seal."""
        if mine.select_for_update().values_list("pk", flat=True).first() is None:
            raise _Superseded(job.pk)
        mine.update(
            status=DatasetImport.Status.DONE,
            version=version,
            message=f"Imported and sealed as version {version.version}.",
            staged_path="",
            finished_at=timezone.now(),
        )

    try:
        if staged is None or not staged.is_file():
            raise ApplicationError("The uploaded archive is no longer there; upload it again.")
        dataset_version_import(
            actor=job.requested_by,
            dataset=job.dataset,
            source=staged,
            progress=progress,
            work_root=work_root,
            on_seal=mark_done,
            study_card=job.study_card,
        )
    except ApplicationError as exc:
        return {
            "status": DatasetImport.Status.REFUSED,
            "message": exc.message[:500],
            "errors": exc.errors,
        }
    except _Superseded:
        raise
    except Exception:
        log.exception("dataset import %s failed", job.pk)
        return {
            "status": DatasetImport.Status.REFUSED,
            "message": "The import failed on an internal error; the team has been notified.",
        }
    return {}


def _claim(import_id: int, worker: str) -> int | None:
    """Lock the import and claim a new attempt: its number, or None when there is nothing to
    do (missing, finished, or RUNNING under a live owner). A RUNNING import whose heartbeat is
    stale, or that the janitor released (no worker), lost its worker: what its attempts left
    is removed before the restart."""
    with transaction.atomic():
        job = DatasetImport.objects.select_for_update().filter(pk=import_id).first()
        if job is None or job.status not in (
            DatasetImport.Status.QUEUED,
            DatasetImport.Status.RUNNING,
        ):
            return None
        if job.status == DatasetImport.Status.RUNNING:
            if job.worker and _alive(job):
                return None
            log.warning("dataset import %s: attempt %s lost its worker", job.pk, job.attempts)
            for old in range(1, job.attempts + 1):
                _attempt_remove(_attempt_root(job.pk, old))
        job.status = DatasetImport.Status.RUNNING
        job.attempts += 1
        job.worker = worker[:200]
        job.heartbeat_at = job.started_at = timezone.now()
        job.files_done = 0
        job.save(
            update_fields=[
                "status",
                "attempts",
                "worker",
                "heartbeat_at",
                "started_at",
                "files_done",
            ]
        )
        return job.attempts


def _alive(job: DatasetImport) -> bool:
    stale = timezone.now() - timedelta(seconds=settings.WORKER_STALE_S)
    return job.heartbeat_at is not None and job.heartbeat_at >= stale


def _attempt_remove(folder: Path) -> None:
    """Remove a dead attempt's folder, and the pack folders it renamed into the store if no
    committed case refers to them (killed between the rename and the commit)."""
    if not folder.is_dir():
        return
    packs = Path(settings.SEQUESTERED_ROOT) / "packs"
    for store in folder.glob("store-*"):
        prefix = f"packs/{store.name}/"
        if not Case.objects.filter(file_path__startswith=prefix).exists() and not (
            Case.objects.filter(mask_path__startswith=prefix).exists()
        ):
            shutil.rmtree(packs / store.name, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


class _heartbeat:
    """Renew the attempt's heartbeat every WORKER_HEARTBEAT_S from a thread while the import
    runs on a worker. Eagerly (no broker: the import runs in the requesting process) nobody
    else could take the import over, and no thread is started."""

    def __init__(self, mine) -> None:
        self.mine = mine
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _loop(self) -> None:
        from django.db import connection

        try:
            while not self.stop.wait(settings.WORKER_HEARTBEAT_S):
                try:
                    self.mine.update(heartbeat_at=timezone.now())
                except Exception:  # a missed beat is retried; it must not kill the import
                    log.warning("dataset import heartbeat failed", exc_info=True)
        finally:
            connection.close()

    def __enter__(self):
        if not settings.CELERY_TASK_ALWAYS_EAGER:
            self.thread = threading.Thread(target=self._loop, name="import-heartbeat", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)


def dataset_imports_recover(*, grace_s: float = STAGING_GRACE_S) -> list[int]:
    """Queue again the RUNNING imports whose worker went silent (the claim restarts them; the
    heartbeat is renewed so that one is not queued again before it is stale again), and remove
    staging nobody owns: uploads of no queued or running import and attempt folders of no
    running attempt, once older than `grace_s`. Returns the ids queued again."""
    stale = timezone.now() - timedelta(seconds=settings.WORKER_STALE_S)
    requeued: list[int] = []
    with transaction.atomic():
        lost = DatasetImport.objects.select_for_update(skip_locked=True).filter(
            status=DatasetImport.Status.RUNNING
        )
        for job in lost.filter(heartbeat_at__lt=stale) | lost.filter(heartbeat_at__isnull=True):
            # No owner now (the claim restarts it); a fresh mark so it is not queued again
            # before it is stale again.
            DatasetImport.objects.filter(pk=job.pk).update(worker="", heartbeat_at=timezone.now())
            enqueue_on_commit(task_names.DATASET_IMPORT, import_id=job.pk)
            requeued.append(job.pk)
    _staging_sweep(grace_s)
    return requeued


def _staging_sweep(grace_s: float) -> None:
    cutoff = time.time() - grace_s
    pending = DatasetImport.objects.filter(
        status__in=[DatasetImport.Status.QUEUED, DatasetImport.Status.RUNNING]
    )
    owned = set(pending.values_list("staged_path", flat=True))
    root = Path(settings.SEQUESTERED_ROOT)
    uploads = root / "incoming" / "uploads"
    if uploads.is_dir():
        for upload in uploads.iterdir():
            relative = str(upload.relative_to(root))
            if relative not in owned and upload.lstat().st_mtime < cutoff:
                upload.unlink(missing_ok=True)
    imports = _imports_root()
    if imports.is_dir():
        running = {
            f"{pk}-a{n}"
            for pk, n in pending.filter(status=DatasetImport.Status.RUNNING).values_list(
                "pk", "attempts"
            )
        }
        for folder in imports.iterdir():
            if folder.name not in running and folder.lstat().st_mtime < cutoff:
                _attempt_remove(folder)
