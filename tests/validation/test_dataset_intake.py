"""Partner dataset intake: sources (folder, CSV, zip, tar.gz), DICOM codecs on pydicom's own test
files, the identity policy, ROI masks, and nothing stored when an import is refused."""

import csv
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from PIL import Image
from pydicom.data import get_testdata_files

from audit.models import AuditAction, AuditEvent
from validation.dicom.deidentify import identifying_elements
from validation.dicom.pixels import PHOTOMETRIC_SUPPORTED
from validation.errors import ApplicationError
from validation.models import Case, Dataset, DatasetVersion
from validation.services.datasets import dataset_create, dataset_version_import
from validation.storage import SequesteredDataError, case_dicom_bytes


def _stored_files(root) -> list[Path]:
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _dataset(world, name="Chest", **kwargs) -> Dataset:
    return dataset_create(actor=world.steward, partner=world.partner_a, name=name, **kwargs)


def _copy_cohort(cohort: Path, dest: Path) -> Path:
    shutil.copytree(cohort.parent, dest)
    return dest


def _rewrite_manifest(folder: Path, edit) -> None:
    path = folder / "manifest.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    fieldnames = list(rows[0])
    rows, fieldnames = edit(rows, fieldnames)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


# --- sources ------------------------------------------------------------------------------------


@pytest.mark.integration  # also on PostgreSQL: the cases are inserted with raw executemany
@pytest.mark.parametrize("kind", ["folder", "zip", "tar.gz"])
def test_a_folder_and_its_archives_import_to_the_same_sealed_version(
    world, cohort, tmp_path, settings, kind
):
    folder = _copy_cohort(cohort, tmp_path / "cohort")
    if kind == "zip":
        source = tmp_path / "upload.bin"  # detected by content, not by name
        with zipfile.ZipFile(source, "w") as zf:
            for path in sorted(folder.rglob("*")):
                zf.write(path, Path("cohort") / path.relative_to(folder))
    elif kind == "tar.gz":
        source = tmp_path / "cohort.tar.gz"
        with tarfile.open(source, "w:gz") as tf:
            tf.add(folder, arcname=".")
    else:
        source = folder
    dataset = _dataset(world)
    reference = dataset_version_import(actor=world.steward, dataset=dataset, source=cohort)
    version = dataset_version_import(actor=world.steward, dataset=dataset, source=source)
    assert version.status == DatasetVersion.Status.SEALED and version.version == 2
    # Same cases, labels and (deterministically de-identified) files: the same Merkle root.
    assert version.merkle_root == reference.merkle_root
    assert version.cases.count() == 16 and not version.cases.exclude(read_error="").exists()
    assert version.import_seconds is not None and version.import_seconds > 0
    # Every field round-trips: JSON attributes and ROI, pack offsets, hashes.
    for case, ref in zip(version.cases.all(), reference.cases.all(), strict=True):
        assert (case.case_id, case.label, case.roi, case.attributes) == (
            ref.case_id,
            ref.label,
            ref.roi,
            ref.attributes,
        )
        assert case.file_length is not None  # packed on import
        assert case.attributes["sex"] in {"F", "M"} and case.file_length > 0
        assert case.file_offset is not None and len(case.file_sha256) == 64
    # Staging is private and temporary: nothing is left under incoming/.
    assert _stored_files(Path(settings.SEQUESTERED_ROOT) / "incoming") == []


def test_a_hostile_archive_is_refused_audited_and_nothing_is_stored(world, tmp_path, settings):
    source = tmp_path / "evil.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("manifest.csv", "case_id,file,label\nA,a.dcm,1\n")
        zf.writestr("../escape.dcm", b"x")
    dataset = _dataset(world)
    with pytest.raises(ApplicationError, match=r"refused.*\.\."):
        dataset_version_import(actor=world.steward, dataset=dataset, source=source)
    assert _stored_files(settings.SEQUESTERED_ROOT) == []
    assert not (tmp_path / "escape.dcm").exists()
    event = AuditEvent.objects.filter(action=AuditAction.DATASET_IMPORT_REFUSED).get()
    assert "refused" in event.payload["reason"]


def test_an_archive_without_a_manifest_says_where_it_looked(world, tmp_path):
    source = tmp_path / "nomanifest.tar"
    with tarfile.open(source, "w") as tf:
        info = tarfile.TarInfo("a.dcm")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ApplicationError, match="manifest"):
        dataset_version_import(actor=world.steward, dataset=_dataset(world), source=source)


# --- DICOM codecs: pydicom's own test files -----------------------------------------------------


def _expected_readable(path: str) -> bool:
    """Independently of the ingest code: pydicom (with the codec plugins installed) parses and
    decodes it, and it is an image kind the pipeline supports (single-frame grayscale)."""
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception:
        return False
    return (
        str(ds.get("PhotometricInterpretation", "")) in PHOTOMETRIC_SUPPORTED
        and int(ds.get("SamplesPerPixel", 1) or 1) == 1
        and int(ds.get("NumberOfFrames", 1) or 1) == 1
        and pixels.ndim == 2
        and np.isfinite(pixels).all()
    )


@pytest.fixture(scope="module")
def pydicom_testdata(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pydicom-testdata")
    files = sorted(
        p for p in get_testdata_files() if Path(p).is_file() and not p.endswith((".json", ".py"))
    )
    with (folder / "manifest.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "file", "label"])
        for i, path in enumerate(files):
            name = f"f{i:03d}_{Path(path).name}"
            shutil.copy(path, folder / name)
            writer.writerow([name, name, i % 2])
    return folder


def test_every_decodable_pydicom_test_file_is_ingested_and_broken_ones_have_a_reason(
    world, pydicom_testdata, settings
):
    version = dataset_version_import(
        actor=world.steward, dataset=_dataset(world), source=pydicom_testdata, workers=2
    )
    cases = {c.case_id: c for c in version.cases.all()}
    expected = {name for name in cases if _expected_readable(str(pydicom_testdata / name))}
    ingested = {name for name, c in cases.items() if not c.read_error}
    assert ingested == expected
    assert len(ingested) >= 50  # 53 with pydicom 3.0.2: every single-frame grayscale one
    syntaxes = {
        str(
            pydicom.dcmread(pydicom_testdata / n, stop_before_pixels=True).file_meta.get(
                "TransferSyntaxUID", ""
            )
        )
        for n in ingested
    }
    # The decoders the plugins add: JPEG Extended 12-bit (libjpeg), JPEG-LS
    # lossless and near-lossless, JPEG 2000 lossless and lossy (openjpeg), RLE. pydicom's JPEG
    # baseline and lossless samples are colour, which the grayscale pipeline records as unsupported.
    for uid in (
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.5",
    ):
        assert uid in syntaxes, uid
    unreadable = [c for c in cases.values() if c.read_error]
    assert unreadable and all(len(c.read_error) > 8 for c in unreadable)
    assert all(c.file_path == "" for c in unreadable)  # never stored
    reasons = " | ".join(c.read_error for c in unreadable)
    assert "not a DICOM Part-10 file" in reasons or "could not parse" in reasons
    assert "could not be decoded" in reasons  # deliberately broken pixel data
    assert "multi-frame" in reasons and "photometric" in reasons  # recorded, not dropped
    for case in cases.values():
        if not case.read_error:
            stored = pydicom.dcmread(io.BytesIO(case_dicom_bytes(case)))
            assert identifying_elements(stored) == []
            assert stored.PatientIdentityRemoved == "YES"


# --- identity -----------------------------------------------------------------------------------


def test_deidentify_policy_stores_clean_files_and_keeps_attributes_taken_before(
    world, cohort, settings
):
    version = dataset_version_import(actor=world.steward, dataset=_dataset(world), source=cohort)
    case = version.cases.order_by("case_id").first()
    assert case is not None  # the cohort has cases
    original = pydicom.dcmread(cohort.parent / "dicom" / f"{case.case_id}.dcm")
    assert identifying_elements(original)  # the cohort carries institution, dates, names
    stored = pydicom.dcmread(io.BytesIO(case_dicom_bytes(case)))
    assert identifying_elements(stored) == []
    assert stored.get("InstitutionName") != original.InstitutionName  # X/Z/D in PS3.15 2024b
    assert stored.PatientName != original.PatientName
    assert stored.StudyInstanceUID != original.StudyInstanceUID
    assert stored.StudyInstanceUID.startswith("2.25.")
    assert np.array_equal(stored.pixel_array, original.pixel_array)
    assert case.source_sha256 != case.file_sha256
    assert case.attributes["institution"] == str(original.InstitutionName)
    assert case.attributes["sex"] == original.PatientSex
    assert version.identity_policy == "deidentify"


def test_reject_policy_records_each_identifying_tag_and_stores_nothing(world, cohort, settings):
    dataset = _dataset(world, identity_policy=Dataset.IdentityPolicy.REJECT)
    version = dataset_version_import(actor=world.steward, dataset=dataset, source=cohort)
    cases = list(version.cases.all())
    assert len(cases) == 16 and all(c.file_path == "" for c in cases)
    reason = cases[0].read_error
    assert reason.startswith("identifying elements present (policy: reject)")
    assert "(0008,0080) InstitutionName" in reason and "(0010,0010) PatientName" in reason
    assert _stored_files(Path(settings.SEQUESTERED_ROOT) / "packs") == []


def test_reject_policy_accepts_files_already_de_identified(world, cohort, tmp_path, settings):
    clean = dataset_version_import(actor=world.steward, dataset=_dataset(world), source=cohort)
    folder = tmp_path / "clean"
    (folder / "dicom").mkdir(parents=True)
    shutil.copy(cohort, folder / "manifest.csv")
    for case in clean.cases.all():
        (folder / "dicom" / f"{case.case_id}.dcm").write_bytes(case_dicom_bytes(case))
    strict = _dataset(world, "Strict", identity_policy=Dataset.IdentityPolicy.REJECT)
    version = dataset_version_import(actor=world.steward, dataset=strict, source=folder)
    assert not version.cases.exclude(read_error="").exists()
    # Under 'reject' the stored file is the partner's own file, byte for byte.
    assert all(c.file_sha256 == c.source_sha256 for c in version.cases.all())


# --- reference standard: ROI boxes and masks ----------------------------------------------------


def test_roi_masks_png_and_npy_are_stored_and_give_the_box(world, cohort, tmp_path, settings):
    folder = _copy_cohort(cohort, tmp_path / "c")
    size = pydicom.dcmread(next((folder / "dicom").glob("*.dcm"))).Rows
    mask = np.zeros((size, size), np.uint8)
    mask[10:20, 30:45] = 255

    def edit(rows, fieldnames):
        for i, row in enumerate(rows[:2]):
            for c in ("roi_x0", "roi_y0", "roi_x1", "roi_y1"):
                row[c] = ""
            name = f"mask{i}.png" if i == 0 else f"mask{i}.npy"
            row["roi_mask"] = name
        return rows, [*fieldnames, "roi_mask"]

    # every cohort image of one site has the same size; use cases on that size only
    _rewrite_manifest(folder, edit)
    rows = list(csv.DictReader((folder / "manifest.csv").open()))
    for row in rows[:2]:
        rows_n = pydicom.dcmread(folder / row["file"]).Rows
        cols_n = pydicom.dcmread(folder / row["file"]).Columns
        m = np.zeros((rows_n, cols_n), np.uint8)
        m[10:20, 30:45] = 255
        if row["roi_mask"].endswith(".png"):
            Image.fromarray(m).save(folder / row["roi_mask"])
        else:
            np.save(folder / row["roi_mask"], m > 0)
    version = dataset_version_import(actor=world.steward, dataset=_dataset(world), source=folder)
    for row in rows[:2]:
        case = version.cases.get(case_id=row["case_id"])
        assert case.roi == [30.0, 10.0, 45.0, 20.0]
        stored = np.load(Path(settings.SEQUESTERED_ROOT) / case.mask_path, allow_pickle=False)
        assert stored.dtype == np.uint8 and stored.sum() == 150 and len(case.mask_sha256) == 64
    assert size > 0


def test_malformed_rois_are_refused_by_line_with_nothing_stored(world, cohort, tmp_path, settings):
    folder = _copy_cohort(cohort, tmp_path / "c")
    np.save(folder / "wrong.npy", np.ones((3, 3), np.uint8))
    np.save(folder / "empty.npy", np.zeros((8, 8), np.uint8))
    (folder / "pickle.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")

    def edit(rows, fieldnames):
        for row in rows:
            for c in ("roi_x0", "roi_y0", "roi_x1", "roi_y1"):
                row[c] = ""
            row["roi_mask"] = ""
        rows[0]["roi_mask"] = "wrong.npy"
        rows[1].update(roi_x0="0", roi_y0="0", roi_x1="5000", roi_y1="10")
        rows[2]["roi_mask"] = "empty.npy"
        rows[3]["roi_mask"] = "pickle.npy"
        rows[4].update(roi_x0="5", roi_y0="5", roi_x1="2", roi_y1="9")
        rows[5]["roi_mask"] = "missing.png"
        return rows, [*fieldnames, "roi_mask"]

    _rewrite_manifest(folder, edit)
    dataset = _dataset(world)
    with pytest.raises(ApplicationError) as caught:
        dataset_version_import(actor=world.steward, dataset=dataset, source=folder)
    text = "\n".join(caught.value.errors)
    assert "line 4: roi_mask 'empty.npy' has no foreground pixel" in text
    assert "line 5: roi_mask 'pickle.npy': not a readable .npy array" in text
    assert "line 6: ROI box (5.0, 5.0, 2.0, 9.0) is empty or negative" in text
    assert "line 7: roi_mask 'missing.png' does not exist" in text
    assert _stored_files(settings.SEQUESTERED_ROOT) == []

    # The row-level checks passed for lines 2-3 only after decoding, so fix the others and see
    # the image-size checks report by line too.
    def fix(rows, fieldnames):
        for row in rows[2:6]:
            for c in ("roi_x0", "roi_y0", "roi_x1", "roi_y1", "roi_mask"):
                row[c] = ""
        return rows, fieldnames

    _rewrite_manifest(folder, fix)
    with pytest.raises(ApplicationError) as caught:
        dataset_version_import(actor=world.steward, dataset=dataset, source=folder)
    text = "\n".join(caught.value.errors)
    assert "line 2: roi_mask is 3x3 but the image is" in text
    assert "line 3: ROI box (0, 0, 5000, 10) lies outside the" in text
    assert _stored_files(settings.SEQUESTERED_ROOT) == []
    assert not DatasetVersion.objects.exists()


def test_a_csv_that_is_not_text_or_has_ragged_rows_is_refused_cleanly(world, tmp_path):
    (tmp_path / "a.dcm").write_bytes(b"x")
    bad = tmp_path / "manifest.csv"
    bad.write_bytes(b"case_id,file,label\nA,a.dcm,1,extra\n")
    with pytest.raises(ApplicationError) as caught:
        dataset_version_import(actor=world.steward, dataset=_dataset(world), source=bad)
    assert caught.value.errors == ["line 2: more fields than columns"]
    bad.write_bytes(b"case_id,file,label\n\xff\xfe,a.dcm,1\n")
    with pytest.raises(ApplicationError, match="not UTF-8"):
        dataset_version_import(actor=world.steward, dataset=_dataset(world, "B"), source=bad)


# --- integrity ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_cases_of_a_sealed_version_cannot_change_in_the_database(world, cohort):
    version = dataset_version_import(actor=world.steward, dataset=_dataset(world), source=cohort)
    case = version.cases.first()
    assert case is not None  # the cohort has cases
    for sql in (
        "UPDATE validation_case SET label = 1 - label WHERE id = %s",
        "DELETE FROM validation_case WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [case.pk])
    assert Case.objects.get(pk=case.pk).label == case.label


# --- the command --------------------------------------------------------------------------------


def test_import_dataset_command_imports_a_folder_and_reports_refusals(world, cohort, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_dataset",
        str(cohort.parent),
        partner="Partner A",
        dataset="Chest",
        steward="steward_a",
        create=True,
        stdout=out,
    )
    assert "Sealed Chest v1 (deidentify): 16 cases, 16 readable, 0 unreadable" in out.getvalue()
    assert "Merkle root " in out.getvalue()
    bad = tmp_path / "manifest.csv"
    bad.write_text("case_id,file,label\nA,nope.dcm,2\n")
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command(
            "import_dataset",
            str(bad),
            partner="Partner A",
            dataset="Chest",
            steward="steward_a",
            stdout=out,
            stderr=err,
        )
    assert "line 2: label must be 0 or 1" in err.getvalue()
    assert "line 2: file 'nope.dcm' does not exist" in err.getvalue()
    with pytest.raises(CommandError, match="pass --create"):
        call_command(
            "import_dataset", str(cohort), partner="Partner A", dataset="New", steward="steward_a"
        )


def test_stored_files_are_packed_read_only_and_checked_on_every_read(world, cohort, settings):
    version = dataset_version_import(actor=world.steward, dataset=_dataset(world), source=cohort)
    cases = list(version.cases.all())
    packs = {c.file_path for c in cases}
    assert 1 <= len(packs) <= 2 and all(p.startswith("packs/") for p in packs)
    for pack in packs:
        assert (Path(settings.SEQUESTERED_ROOT) / pack).stat().st_mode & 0o777 == 0o444
    spans: list[tuple[str, int, int]] = []
    for c in cases:
        assert c.file_offset is not None and c.file_length is not None  # packed on import
        spans.append((c.file_path, c.file_offset, c.file_offset + c.file_length))
    spans.sort()
    for (pack_a, _, end_a), (pack_b, start_b, _) in zip(spans, spans[1:], strict=False):
        assert pack_a != pack_b or end_a == start_b  # back to back, no overlap
    case = cases[0]
    pydicom.dcmread(io.BytesIO(case_dicom_bytes(case)))
    pack_file = Path(settings.SEQUESTERED_ROOT) / case.file_path
    pack_file.chmod(0o644)
    data = bytearray(pack_file.read_bytes())
    assert case.file_offset is not None and case.file_length is not None  # packed on import
    data[case.file_offset + case.file_length - 1] ^= 0xFF  # one pixel byte
    pack_file.write_bytes(bytes(data))
    with pytest.raises(SequesteredDataError, match="do not match the seal"):
        case_dicom_bytes(case)


def test_manifest_paths_that_leave_the_folder_or_are_links_are_refused(
    world, cohort, tmp_path, settings
):
    folder = _copy_cohort(cohort, tmp_path / "src")
    outside = tmp_path / "outside"
    outside.mkdir()
    first = sorted((folder / "dicom").glob("*.dcm"))[0]
    shutil.copy(first, outside / "elsewhere.dcm")
    (folder / "linked.dcm").symlink_to(outside / "elsewhere.dcm")  # a link to a file outside
    (folder / "linkdir").symlink_to(outside, target_is_directory=True)  # a folder outside

    def edit(rows, fieldnames):
        rows[0]["file"] = "linked.dcm"
        rows[1]["file"] = "linkdir/elsewhere.dcm"
        rows[2]["file"] = "../outside/elsewhere.dcm"
        rows[3]["file"] = "dicom/"
        return rows, fieldnames

    _rewrite_manifest(folder, edit)
    with pytest.raises(ApplicationError) as caught:
        dataset_version_import(actor=world.steward, dataset=_dataset(world), source=folder)
    text = "\n".join(caught.value.errors)
    assert "line 2: file 'linked.dcm' does not exist" in text
    assert (
        "line 3: file 'linkdir/elsewhere.dcm' must be a path inside the manifest's folder" in text
    )
    assert "line 4: file '../outside/elsewhere.dcm' must be a path inside" in text
    assert "line 5: file 'dicom/' must be a path inside" in text
    assert _stored_files(settings.SEQUESTERED_ROOT) == []
