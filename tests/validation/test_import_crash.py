"""Crash safety of dataset imports on the real stack: Redis as the broker, PostgreSQL, two
Celery worker processes. The worker importing an uploaded archive is SIGKILLed (with its
process group) in the middle of the import; the survivor's heartbeat finds the import's own
heartbeat stale, queues it again, and the re-delivered task restarts it: the import ends done
with one sealed version of every case, the upload and every staging folder are gone, and the
store holds exactly the packs that the version's cases refer to."""

import io
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.support.run_on_workers import wait_for, worker_env
from tests.support.worker_fleet import WorkerFleet
from validation.models import Case, DatasetImport, DatasetVersion
from validation.services.dataset_imports import dataset_import_request
from validation.services.datasets import dataset_create
from validation.synthetic.cohort import generate_cohort

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

CASES = 600


def _upload(folder: Path) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder))
    return SimpleUploadedFile("cohort.zip", buffer.getvalue())


def _imports_state() -> str:
    fields = ("pk", "status", "attempts", "worker", "files_done")
    return f"imports {list(DatasetImport.objects.values_list(*fields))}"


def test_an_import_whose_worker_is_killed_restarts_and_leaves_nothing_behind(
    world,
    tmp_path,
    settings,
    broker,
    dispatch_via,
):
    manifest = generate_cohort(tmp_path / "cohort", cases=CASES, seed=5, prevalence=0.5)
    upload = _upload(manifest.parent)
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    root = Path(settings.SEQUESTERED_ROOT)

    with WorkerFleet(
        worker_env(
            settings,
            broker,
            BLINDSPOT_DATASET_IMPORT_WORKERS="1",  # slow enough to be caught mid-import
            BLINDSPOT_WORKER_HEARTBEAT_S="1",
            BLINDSPOT_WORKER_STALE_S="8",
        ),
        log_dir=tmp_path / "logs",
    ) as fleet:
        workers = [fleet.start("w1"), fleet.start("w2")]
        fleet.wait_ready(workers)
        dispatch_via(broker)
        job = dataset_import_request(actor=world.steward, dataset=dataset, upload=upload)
        staged = root / job.staged_path
        assert staged.is_file()

        def mid_import():
            row = DatasetImport.objects.get(pk=job.pk)
            running = row.status == DatasetImport.Status.RUNNING
            return row if running and 0 < row.files_done < CASES else None

        victim_row = wait_for(mid_import, 180, "the import mid-way", fleet, 0.05, _imports_state)
        victim = victim_row.worker
        assert victim in workers and victim_row.attempts == 1
        assert (root / "incoming" / "imports" / f"{job.pk}-a1").is_dir()
        fleet.kill(victim)
        survivor = next(w for w in workers if w != victim)

        wait_for(
            lambda: DatasetImport.objects.filter(
                pk=job.pk, status__in=["done", "refused"]
            ).exists(),
            300,
            "the import to finish",
            fleet,
            interval=0.5,
            state=_imports_state,
        )
        log = fleet.log(survivor)

    job.refresh_from_db()
    assert job.status == DatasetImport.Status.DONE, (job.message, log)
    assert job.attempts == 2 and job.worker == survivor
    assert job.files_done == job.files_total == CASES
    version = DatasetVersion.objects.get()
    assert job.version == version and version.status == DatasetVersion.Status.SEALED
    assert Case.objects.filter(dataset_version=version).count() == CASES

    assert not staged.exists() and job.staged_path == ""
    assert list((root / "incoming" / "uploads").iterdir()) == []
    assert list((root / "incoming" / "imports").iterdir()) == []
    assert sorted(p.name for p in (root / "incoming").iterdir()) == ["imports", "uploads"]
    packs = {p.name for p in (root / "packs").iterdir()}
    cases = Case.objects.filter(dataset_version=version).exclude(file_path="")
    assert packs == {c.file_path.split("/")[1] for c in cases}  # no orphan of the dead attempt
    for case in cases[:50]:
        end = (case.file_offset or 0) + (case.file_length or 0)
        assert case.file_length and (root / case.file_path).stat().st_size >= end
