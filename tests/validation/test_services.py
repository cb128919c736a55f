"""Services: happy path, refusals and audit events, on real files (real DICOM, real packages)."""

import io
import tarfile
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import CharField

from audit.immutability import ImmutableRecordError
from audit.models import AuditAction, AuditEvent
from audit.selectors import audit_events_for
from tests.factories import (
    PackageFactory,
    approved_package,
    protocol_document,
)
from tests.support.packages import repacked
from validation import tasks
from validation.dicom.merkle import merkle_root
from validation.errors import ApplicationError, PermissionDenied
from validation.models import Case, DatasetVersion, ModelPackage, Protocol
from validation.services.datasets import dataset_create, dataset_grant, dataset_version_import
from validation.services.packages import package_review, package_submit
from validation.services.protocols import (
    protocol_create,
    protocol_lock,
    protocol_version_create,
)
from validation.services.runs import run_start
from validation.storage import package_staging_path

pytestmark = pytest.mark.django_db

PROTOCOL = protocol_document(min_cell_size=5, max_runs_per_vendor=1)


def _stored_files(root: Path) -> list[Path]:
    return [p for p in Path(root).rglob("*") if p.is_file()] if Path(root).exists() else []


# --- packages ----------------------------------------------------------------------------------


@pytest.mark.sandbox
def test_package_submit_stores_content_addressed_and_audits(
    world, package_file, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with open(package_file, "rb") as fh:
            package = package_submit(actor=world.vendor_user, upload=fh)
        # The smoke test waits for the commit (a task on the `gpu` queue): nothing stored yet.
        assert package.status == "testing" and _stored_files(settings.MEDIA_ROOT) == []
        assert [p.name for p in _stored_files(settings.PACKAGE_STAGING_ROOT)] == [
            f"{package.pk}.tar"
        ]
    package.refresh_from_db()
    assert package.vendor == world.vendor_a and package.status == "submitted"
    assert _stored_files(settings.PACKAGE_STAGING_ROOT) == []
    stored = _stored_files(settings.MEDIA_ROOT)
    assert [p.name for p in stored] == [f"{package.sha256}.tar"]
    assert stored[0].read_bytes() == package_file.read_bytes()
    assert [e.action for e in audit_events_for(package)] == [AuditAction.PACKAGE_SUBMITTED]


def test_package_resubmission_is_a_conflict(world, package_file):
    approved_package(world, package_file)  # already stored (the smoke test is tested above)
    with open(package_file, "rb") as fh, pytest.raises(ApplicationError) as exc:
        package_submit(actor=world.vendor_user, upload=fh)
    assert exc.value.status_code == 409


def _tar(members: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.mark.parametrize(
    ("upload", "reason"),
    [
        (io.BytesIO(b"not an archive at all"), "archive"),
        (_tar({"../manifest.json": b"{}", "model.pt2": b"x"}), ".."),
        (_tar({"model.pt2": b"x"}), "manifest"),
    ],
)
def test_package_rejections_leave_nothing_and_are_audited(world, settings, upload, reason):
    with pytest.raises(ApplicationError, match="Package rejected") as exc:
        package_submit(actor=world.vendor_user, upload=upload)
    assert reason in exc.value.message.lower() or reason in str(exc.value.errors).lower()
    assert _stored_files(settings.MEDIA_ROOT) == []
    assert _stored_files(settings.PACKAGE_STAGING_ROOT) == []
    assert not ModelPackage.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.PACKAGE_REJECTED_AT_INTAKE).count() == 1


def test_a_package_in_testing_is_a_duplicate_and_a_refused_one_is_not(
    world, package_file, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        with open(package_file, "rb") as fh:
            first = package_submit(actor=world.vendor_user, upload=fh)
    assert first.status == ModelPackage.Status.TESTING and len(queued) == 1
    with open(package_file, "rb") as fh, pytest.raises(ApplicationError) as exc:
        package_submit(actor=world.vendor_user, upload=fh)
    assert exc.value.status_code == 409
    # Its staged bytes lost (a disk replaced, a cleanup gone wrong): refused, not testing forever.
    package_staging_path(first.pk).unlink()
    tasks.package_smoke_test(package_id=first.pk)
    first.refresh_from_db()
    assert first.status == ModelPackage.Status.REFUSED and first.refusal_category == "lost"
    assert "submit it again" in first.refusal_reasons[0]
    # A refused package blocks neither its bytes nor its version: the vendor submits again.
    with django_capture_on_commit_callbacks(execute=False), open(package_file, "rb") as fh:
        again = package_submit(actor=world.vendor_user, upload=fh)
    assert again.status == ModelPackage.Status.TESTING and again.sha256 == first.sha256
    assert package_staging_path(again.pk).is_file()


def test_a_package_whose_smoke_test_keeps_losing_its_worker_is_refused(
    world, package_file, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False), open(package_file, "rb") as fh:
        package = package_submit(actor=world.vendor_user, upload=fh)
    # What deliveries that claimed it and then lost their worker leave behind (acks late: each
    # came back to the queue).
    ModelPackage.objects.filter(pk=package.pk).update(
        smoke_attempts=settings.PACKAGE_SMOKE_MAX_ATTEMPTS
    )
    with django_capture_on_commit_callbacks(execute=True):
        tasks.package_smoke_test(package_id=package.pk)
    package.refresh_from_db()
    assert package.status == ModelPackage.Status.REFUSED
    assert package.refusal_category == "worker-lost"
    assert _stored_files(settings.PACKAGE_STAGING_ROOT) == []
    assert _stored_files(settings.MEDIA_ROOT) == []
    event = AuditEvent.objects.get(action=AuditAction.PACKAGE_REJECTED_AT_INTAKE)
    assert event.target_id == str(package.pk) and event.payload["category"] == "worker-lost"


@pytest.mark.sandbox
def test_the_smoke_test_task_resumes_after_a_lost_worker_and_runs_once(
    world, package_file, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False), open(package_file, "rb") as fh:
        package = package_submit(actor=world.vendor_user, upload=fh)
    ModelPackage.objects.filter(pk=package.pk).update(smoke_attempts=1)  # a delivery was lost
    for _delivery in range(2):  # re-delivered, then delivered once more: decided once
        with django_capture_on_commit_callbacks(execute=True):
            tasks.package_smoke_test(package_id=package.pk)
    package.refresh_from_db()
    assert package.status == ModelPackage.Status.SUBMITTED and package.smoke_attempts == 2
    assert [e.action for e in audit_events_for(package)] == [AuditAction.PACKAGE_SUBMITTED]
    assert [p.name for p in _stored_files(settings.MEDIA_ROOT)] == [f"{package.sha256}.tar"]
    assert _stored_files(settings.PACKAGE_STAGING_ROOT) == []


def test_manifest_strings_that_land_in_columns_have_the_columns_limits():
    from validation.packaging import MANIFEST_SCHEMA, default_manifest, manifest_errors

    for field in ("name", "version"):
        column = ModelPackage._meta.get_field(field)
        assert isinstance(column, CharField)
        limit = column.max_length
        assert limit is not None
        assert MANIFEST_SCHEMA["properties"][field]["maxLength"] == limit, field
        manifest = default_manifest(name="x", version="1", gradcam_target_layer="b")
        assert manifest_errors({**manifest, field: "v" * limit}) == []
        for length in sorted({limit + 1, 100, 201} - set(range(limit + 1))):
            errors = manifest_errors({**manifest, field: "v" * length})
            assert len(errors) == 1 and errors[0].startswith(f"{field}: "), errors
            assert f"more than the {limit} allowed" in errors[0]


def test_package_over_the_size_limit_is_rejected(world, settings, package_file):
    settings.PACKAGE_MAX_BYTES = 1000
    with open(package_file, "rb") as fh, pytest.raises(ApplicationError, match="larger than"):
        package_submit(actor=world.vendor_user, upload=fh)
    assert _stored_files(settings.MEDIA_ROOT) == []


def test_only_vendor_members_submit(world, package_file):
    with open(package_file, "rb") as fh, pytest.raises(PermissionDenied):
        package_submit(actor=world.steward, upload=fh)


def test_package_review(world):
    package = PackageFactory.create(vendor=world.vendor_a)
    with pytest.raises(PermissionDenied):
        package_review(actor=world.vendor_user, package=package, approve=True)
    with pytest.raises(ApplicationError, match="reason"):
        package_review(actor=world.reviewer, package=package, approve=False)
    package = package_review(actor=world.reviewer, package=package, approve=True)
    assert package.status == "approved" and package.reviewed_by == world.reviewer
    assert audit_events_for(package)[-1].action == AuditAction.PACKAGE_APPROVED
    with pytest.raises(ApplicationError, match="already"):
        package_review(actor=world.reviewer, package=package, approve=True)


# --- datasets ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_dataset_import_seals_with_merkle_root(world, cohort, settings):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    version = dataset_version_import(actor=world.steward, dataset=dataset, source=cohort)
    assert version.status == DatasetVersion.Status.SEALED and version.version == 1
    cases = list(Case.objects.filter(dataset_version=version))
    assert len(cases) == 16
    assert version.merkle_root == merkle_root([(c.case_id, c.file_sha256, c.label) for c in cases])
    first = cases[0]
    assert {"sex", "age", "manufacturer", "model", "institution", "race"} <= set(first.attributes)
    stored = Path(settings.SEQUESTERED_ROOT) / first.file_path
    assert stored.is_file()
    assert (
        not Path(settings.SEQUESTERED_ROOT)
        .resolve()
        .is_relative_to(Path(settings.MEDIA_ROOT).resolve())
    )
    actions = [e.action for e in audit_events_for(version)]
    assert actions == [AuditAction.DATASET_VERSION_IMPORTED, AuditAction.DATASET_VERSION_SEALED]
    version.modality = "CT"
    with pytest.raises(ImmutableRecordError):
        version.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE validation_datasetversion SET merkle_root = 'x' WHERE id = %s", [version.pk]
            )


def test_dataset_import_reports_every_csv_problem_by_line(world, cohort, tmp_path, settings):
    bad = tmp_path / "manifest.csv"
    lines = cohort.read_text().splitlines()
    header, rows = lines[0], lines[1:4]
    broken = [
        rows[0],
        rows[0],
        rows[1].replace(",0,", ",7,").replace(",1,", ",7,"),
        rows[2].replace("dicom/", "missing/"),
    ]
    bad.write_text("\n".join([header, *broken]) + "\n")
    (tmp_path / "dicom").symlink_to(cohort.parent / "dicom")
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    with pytest.raises(ApplicationError) as exc:
        dataset_version_import(actor=world.steward, dataset=dataset, source=bad)
    errors = "\n".join(exc.value.errors)
    assert "line 3: duplicate case_id" in errors
    assert "line 4: label must be 0 or 1" in errors
    assert "line 5: file" in errors and "does not exist" in errors
    assert not DatasetVersion.objects.exists()
    assert _stored_files(settings.SEQUESTERED_ROOT) == []


def test_dataset_import_rejects_unknown_columns(world, tmp_path):
    bad = tmp_path / "manifest.csv"
    bad.write_text("case_id,file,label,ssn\n")
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    with pytest.raises(ApplicationError) as exc:
        dataset_version_import(actor=world.steward, dataset=dataset, source=bad)
    assert exc.value.errors == ["line 1: unknown column 'ssn'"]


def test_unreadable_files_are_kept_with_their_reason(world, cohort, tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "broken.dcm").write_bytes(b"DICM but not really" * 10)
    (folder / "manifest.csv").write_text("case_id,file,label\nX1,broken.dcm,1\n")
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Broken")
    version = dataset_version_import(
        actor=world.steward, dataset=dataset, source=folder / "manifest.csv"
    )
    case = version.cases.get()
    assert case.read_error and "DICOM" in case.read_error


def test_other_partners_cannot_import(world, cohort):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    with pytest.raises(PermissionDenied):
        dataset_version_import(actor=world.other_steward, dataset=dataset, source=cohort)


# --- protocols ---------------------------------------------------------------------------------


def test_protocol_lists_every_schema_violation(world):
    with pytest.raises(ApplicationError) as exc:
        protocol_create(
            actor=world.reviewer,
            name="P",
            document={
                **PROTOCOL,
                "min_cell_size": 0,
                "operating_point": {"source": "youden-on-test"},
            },
        )
    paths = [e["path"] for e in exc.value.errors]
    assert paths == ["document.min_cell_size", "document.operating_point.source"]


@pytest.mark.integration
def test_protocol_lock_freezes_it(world):
    protocol = protocol_create(actor=world.reviewer, name="P", document=PROTOCOL)
    assert protocol.document["required_signatures"] == ["reviewed", "approved"]
    protocol = protocol_lock(actor=world.reviewer, protocol=protocol)
    assert len(protocol.sha256) == 64 and protocol.locked_at
    assert audit_events_for(protocol)[-1].action == AuditAction.PROTOCOL_LOCKED
    protocol.document = {**protocol.document, "min_cell_size": 1}
    with pytest.raises(ImmutableRecordError):
        protocol.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE validation_protocol SET document = '{}' WHERE id = %s", [protocol.pk]
            )
    second = protocol_create(actor=world.reviewer, name="P", document=PROTOCOL)
    assert second.version == 2 and Protocol.objects.get(pk=protocol.pk).is_locked


def test_vendors_cannot_write_protocols(world):
    with pytest.raises(PermissionDenied):
        protocol_create(actor=world.vendor_user, name="P", document=PROTOCOL)


def test_only_the_team_locks_a_protocol_even_one_already_locked(world):
    protocol = protocol_lock(
        actor=world.reviewer,
        protocol=protocol_create(actor=world.reviewer, name="P", document=PROTOCOL),
    )
    for user in (world.vendor_user, world.auditor):
        with pytest.raises(PermissionDenied):
            protocol_lock(actor=user, protocol=protocol)
    assert protocol_lock(actor=world.qa, protocol=protocol).sha256 == protocol.sha256


def test_a_new_version_takes_its_base_name_and_the_next_number(world):
    first = protocol_create(actor=world.reviewer, name="P", document=PROTOCOL)
    protocol_create(actor=world.reviewer, name="P", document=PROTOCOL)
    third = protocol_version_create(actor=world.qa, base=first, document=PROTOCOL)
    assert (third.name, third.version, third.is_locked) == ("P", 3, False)
    with pytest.raises(PermissionDenied):
        protocol_version_create(actor=world.steward, base=first, document=PROTOCOL)


# --- run start ---------------------------------------------------------------------------------


@pytest.fixture
def sealed(world, cohort):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    return dataset_version_import(actor=world.steward, dataset=dataset, source=cohort)


def test_run_start_refusals(world, sealed, django_capture_on_commit_callbacks):
    package = PackageFactory.create(vendor=world.vendor_a)
    protocol = protocol_create(actor=world.reviewer, name="P", document=PROTOCOL)
    kwargs = {"package": package, "dataset_version": sealed, "protocol": protocol}
    with pytest.raises(PermissionDenied):
        run_start(actor=world.vendor_user, **kwargs)
    with pytest.raises(ApplicationError, match="not been approved"):
        run_start(actor=world.reviewer, **kwargs)
    kwargs["package"] = package_review(actor=world.reviewer, package=package, approve=True)
    with pytest.raises(ApplicationError, match="not granted"):
        run_start(actor=world.reviewer, **kwargs)
    dataset_grant(actor=world.steward, dataset_version=sealed, vendor=world.vendor_a)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        run = run_start(actor=world.reviewer, **kwargs)
    assert len(queued) == 1  # inference queued only after commit
    assert run.cases_total == 16 and Protocol.objects.get(pk=protocol.pk).is_locked
    assert [e.action for e in audit_events_for(run)] == [AuditAction.RUN_QUEUED]
    assert audit_events_for(sealed)[-1].action == AuditAction.DATASET_USED
    with pytest.raises(ApplicationError, match="allows 1"):
        run_start(actor=world.reviewer, **kwargs)


def test_package_intake_never_imports_torch():
    """The web process validates uploads without torch: loading model code is the runner's job."""
    import subprocess
    import sys

    code = (
        "import sys, validation.packaging, validation.dicom.pixels; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2]).returncode == 0
    )


# --- smoke test at intake (real sandboxed runner) ------------------------------------------------


@pytest.mark.sandbox
def test_accepted_package_records_smoke_timings_and_is_cached_warm(
    world, package_file, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), open(package_file, "rb") as fh:
        package = package_submit(actor=world.vendor_user, upload=fh)
    package.refresh_from_db()
    assert package.status == "submitted" and package.smoke_attempts == 1
    assert package.smoke_load_seconds is not None and package.smoke_batch_seconds is not None
    assert package.smoke_load_seconds > 0 and package.smoke_batch_seconds > 0
    assert (Path(settings.RUNNER_CACHE_ROOT) / package.sha256 / "model.pt2").is_file()
    payload = audit_events_for(package)[0].payload
    assert payload["smoke"]["isolation"].startswith("bwrap")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"gradcam_target_layer": "block9"}, "Grad-CAM target layer 'block9' does not resolve"),
        ({"output__positive_index": 3}, "1 output column(s); the manifest's positive_index is 3"),
        ({"input__height": 65}, "refused an input of the shape its manifest declares"),
    ],
)
@pytest.mark.sandbox
def test_smoke_test_failures_reject_and_leave_nothing(
    world, package_file, settings, tmp_path, changes, reason, django_capture_on_commit_callbacks
):
    bad = repacked(package_file, tmp_path / "bad.tar.gz", **changes)
    with django_capture_on_commit_callbacks(execute=True), open(bad, "rb") as fh:
        package = package_submit(actor=world.vendor_user, upload=fh)
    package.refresh_from_db()
    # Refused on the worker: the reasons are read from the package, nothing else is kept.
    assert package.status == ModelPackage.Status.REFUSED
    assert any(reason in r for r in package.refusal_reasons), package.refusal_reasons
    assert list(ModelPackage.objects.exclude(status="refused")) == []
    assert _stored_files(settings.PACKAGE_STAGING_ROOT) == []
    assert _stored_files(settings.MEDIA_ROOT) == []
    assert _stored_files(settings.RUNNER_CACHE_ROOT) == []
    assert AuditEvent.objects.filter(action=AuditAction.PACKAGE_REJECTED_AT_INTAKE).count() == 1
