"""The spliced de-identification writer gives what `deidentify` + a conformant write give."""

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset

from validation.dicom.deidentify import deidentify, encode_file, identifying_elements
from validation.dicom.pixels import DicomReadError, parse_dicom
from validation.dicom.splice import snapshot, splice_deidentified
from validation.synthetic.cohort import generate_cohort

SECRET = b"splice-test-secret"


def _both(data: bytes) -> tuple[bytes | None, bytes]:
    """(spliced, reference) for one file's bytes."""
    ds = parse_dicom(data)
    spliced = splice_deidentified(ds, snapshot(ds, data), SECRET)
    reference = parse_dicom(data)
    deidentify(reference, uid_secret=SECRET)
    return spliced, encode_file(reference)


def _differences(a: Dataset, b: Dataset, where: str = "") -> list[str]:
    """Element-by-element differences (tags, VRs, values, nested items) between two datasets."""
    if set(a.keys()) != set(b.keys()):
        return [f"{where} tags {sorted(set(a.keys()) ^ set(b.keys()))}"]
    found = []
    for tag in sorted(a.keys()):
        x, y = a[tag], b[tag]
        if x.VR != y.VR:
            found.append(f"{where}{tag} VR {x.VR} != {y.VR}")
        elif x.VR == "SQ":
            if len(x.value) != len(y.value):
                found.append(f"{where}{tag} {len(x.value)} != {len(y.value)} items")
            for i, (p, q) in enumerate(zip(x.value, y.value, strict=False)):
                found += _differences(p, q, f"{where}{tag}[{i}]")
        elif x.value != y.value:
            found.append(f"{where}{tag} {x.value!r:.60} != {y.value!r:.60}")
    return found


def _testdata_bytes() -> list[tuple[str, bytes]]:
    files = []
    for path in get_testdata_files():
        if not Path(path).is_file() or path.endswith((".json", ".py")):
            continue
        data = Path(path).read_bytes()
        try:
            ds = parse_dicom(data)
        except DicomReadError:
            continue
        if ds.get("SOPClassUID") and ds.get("SOPInstanceUID"):
            files.append((Path(path).name, data))
    return files


@pytest.mark.filterwarnings("ignore::UserWarning")  # the files carry deliberately odd values
def test_spliced_files_equal_the_dataset_path_on_every_pydicom_test_file():
    files = _testdata_bytes()
    assert len(files) > 100
    spliced, differences = 0, []
    for name, data in files:
        fast, reference = _both(data)
        if fast is None:
            continue  # not a case for splicing: ingest takes the dataset path
        spliced += 1
        a, b = pydicom.dcmread(io.BytesIO(fast)), pydicom.dcmread(io.BytesIO(reference))
        differences += [f"{name}: {d}" for d in _differences(a.file_meta, b.file_meta, "meta")]
        differences += [f"{name}: {d}" for d in _differences(a, b)]
        assert identifying_elements(a) == [], name
        assert a.PatientIdentityRemoved == "YES", name
        assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID, name
    assert differences == []
    # Most files take the fast path (explicit and implicit VR, compressed and raw pixel data).
    assert spliced >= 0.75 * len(files)


def test_synthetic_cohort_files_splice_to_the_same_bytes(tmp_path):
    manifest = generate_cohort(tmp_path, cases=6, seed=3)
    for path in sorted((manifest.parent / "dicom").glob("*.dcm")):
        fast, reference = _both(path.read_bytes())
        assert fast is not None, path.name
        assert fast == reference, path.name


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_dataset_encoded_otherwise_than_its_syntax_says_takes_the_dataset_path():
    # Explicit VR declared, implicit VR found: offsets computed for one encoding would copy the
    # wrong bytes under the other.
    source = get_testdata_file("SC_rgb_jpeg.dcm")
    assert isinstance(source, str)  # the path of a file pydicom ships
    data = Path(source).read_bytes()
    ds = parse_dicom(data)
    assert splice_deidentified(ds, snapshot(ds, data), SECRET) is None


def test_uids_are_the_same_keyed_replacements_on_both_paths(tmp_path):
    manifest = generate_cohort(tmp_path, cases=1, seed=5)
    data = next((manifest.parent / "dicom").glob("*.dcm")).read_bytes()
    original = parse_dicom(data)
    fast, _ = _both(data)
    assert fast is not None  # a generated file takes the fast path
    out = pydicom.dcmread(io.BytesIO(fast))
    assert out.SOPInstanceUID != original.SOPInstanceUID
    assert out.SOPInstanceUID.startswith("2.25.")
    assert out.StudyInstanceUID != original.StudyInstanceUID
    assert out.SOPClassUID == original.SOPClassUID  # a class, not an instance: kept
    assert out.PixelData == original.PixelData
