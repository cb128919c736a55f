"""DICOM PS3.15 Annex E basic profile: the table, the reject check and in-place de-identification.

Pure pydicom (no database); the last test runs the module over pydicom's own test files, which
cover odd transfer syntaxes, sequences, DICOMDIRs, SR and RT objects.
"""

import copy
import io
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.datadict import dictionary_has_tag, dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from validation.dicom.basic_profile import BASIC_PROFILE
from validation.dicom.deidentify import (
    PROFILE_NAME,
    deidentify,
    encode_file,
    identifying_elements,
)

SECRET = b"partner-ingest-test-secret"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1001"
SERIES_UID = "1.2.826.0.1.3680043.8.498.1002"
SOP_UID = "1.2.826.0.1.3680043.8.498.1003"
PRIOR_SOP_UID = "1.2.826.0.1.3680043.8.498.1004"
PIXELS = (np.arange(64, dtype=np.uint16) * 61).reshape(8, 8)


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def make_dataset(sop_uid: str = SOP_UID) -> Dataset:
    """A small CT with the identifying attributes a partner file typically carries."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.Modality = "CT"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-0012345"
    ds.PatientBirthDate = "19610412"
    ds.PatientSex = "F"
    ds.PatientAge = "063Y"
    ds.InstitutionName = "St. Example Hospital"
    ds.ReferringPhysicianName = "Smith^John"
    ds.StationName = "CT-ROOM-3"
    ds.StudyDate = "20240501"
    ds.StudyTime = "101500"
    ds.SeriesDate = "20240501"
    ds.ContentDate = "20240501"
    ds.AccessionNumber = "ACC778899"
    ds.Manufacturer = "ACME Imaging"
    ds.ReferencedImageSequence = Sequence(
        [_item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=PRIOR_SOP_UID)]
    )
    ds.RequestAttributesSequence = Sequence(
        [_item(ScheduledProcedureStepID="SPS1", ScheduledPerformingPhysicianName="Roe^Rita")]
    )
    # Not in the table itself, so it is kept and its items are de-identified element by element.
    ds.ReferencedRequestSequence = Sequence(
        [
            _item(
                StudyInstanceUID=STUDY_UID,
                AccessionNumber="ACC778899",
                RequestingPhysician="Who^Doctor",
            )
        ]
    )
    block = ds.private_block(0x0009, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "patient-home-address")
    ds.add_new(0x50000010, "US", 2)  # Curve group: Number of Points (retired)
    ds.add_new(0x60000010, "US", 8)  # Overlay Rows: kept
    ds.add_new(0x60003000, "OW", b"\x00" * 8)  # Overlay Data: removed
    ds.add_new(0x60004000, "LT", "burned-in name")  # Overlay Comments: removed
    ds.Rows, ds.Columns = PIXELS.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -1024
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.PixelData = PIXELS.tobytes()
    return ds


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return tag


# --- the table ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "action"),
    [
        ("PatientName", "Z"),
        ("PatientID", "Z/D"),  # Z before 2024b
        ("PatientBirthDate", "Z"),
        ("PatientSex", "Z"),
        ("PatientAge", "X"),
        ("PatientBirthTime", "X"),
        ("OtherPatientIDs", "X"),
        ("InstitutionName", "X/Z/D"),
        ("InstitutionAddress", "X"),
        ("ReferringPhysicianName", "Z"),
        ("AccessionNumber", "Z"),
        ("StudyDate", "Z"),
        ("SeriesDate", "X/D"),
        ("ContentDate", "Z/D"),
        ("AcquisitionDate", "X/Z"),
        ("StudyID", "Z"),
        ("StudyInstanceUID", "U"),
        ("SeriesInstanceUID", "U"),
        ("SOPInstanceUID", "U"),
        ("FrameOfReferenceUID", "U"),
        ("MediaStorageSOPInstanceUID", "U"),
        ("ReferencedSOPInstanceUID", "U"),
        ("ReferencedImageSequence", "X/Z/U*"),
        ("SourceImageSequence", "X/Z/U*"),
        ("ReferencedStudySequence", "X/Z"),
        ("RequestAttributesSequence", "X"),
        ("ContentSequence", "D"),
    ],
)
def test_table_entries_match_the_standard(keyword, action):
    assert BASIC_PROFILE[_tag(keyword)] == action


def test_table_is_the_2024b_basic_profile_column():
    assert len(BASIC_PROFILE) == 617
    assert set(BASIC_PROFILE.values()) == {
        "X",
        "Z",
        "D",
        "U",
        "X/Z",
        "X/D",
        "Z/D",
        "X/Z/D",
        "X/Z/U*",
    }
    unknown = [f"{tag:08X}" for tag in BASIC_PROFILE if not dictionary_has_tag(tag)]
    assert unknown == []
    # Every U row is a UID; nothing that is needed to decode pixels or to know what the object
    # is appears in the table.
    assert {dictionary_VR(tag) for tag, action in BASIC_PROFILE.items() if action == "U"} == {"UI"}
    kept = [
        "SOPClassUID",
        "Modality",
        "Manufacturer",
        "Rows",
        "Columns",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PixelData",
        "RescaleSlope",
        "RescaleIntercept",
        "WindowCenter",
        "WindowWidth",
        "TransferSyntaxUID",
    ]
    assert [k for k in kept if _tag(k) in BASIC_PROFILE] == []


def test_profile_name_fits_the_method_attribute_when_split():
    ds = make_dataset()
    deidentify(ds, uid_secret=SECRET)
    assert " ".join(ds.DeidentificationMethod) == PROFILE_NAME
    assert all(len(value) <= 64 for value in ds.DeidentificationMethod)


# --- identifying_elements -----------------------------------------------------------------------


def test_identifying_elements_lists_what_the_profile_changes():
    found = identifying_elements(make_dataset())
    for expected in [
        "(0008,0020) StudyDate",
        "(0008,0021) SeriesDate",
        "(0008,0023) ContentDate",
        "(0008,0050) AccessionNumber",
        "(0008,0080) InstitutionName",
        "(0008,0090) ReferringPhysicianName",
        "(0008,1010) StationName",
        "(0009,0010) private",
        "(0009,1001) private",
        "(0010,0010) PatientName",
        "(0010,0020) PatientID",
        "(0010,0030) PatientBirthDate",
        "(0010,0040) PatientSex",
        "(0010,1010) PatientAge",
        "(0032,1032) RequestingPhysician",  # nested in Referenced Request Sequence
        "(0040,0006) ScheduledPerformingPhysicianName",  # nested in Request Attributes Sequence
        "(0040,0275) RequestAttributesSequence",
        "(5000,0010) NumberOfPoints",
        "(6000,3000) OverlayData",
        "(6000,4000) OverlayComments",
    ]:
        assert expected in found
    assert found == sorted(set(found))
    assert found.count("(0008,0050) AccessionNumber") == 1  # top level and nested: one entry
    assert not [entry for entry in found if "UID" in entry]
    for kept in ["Manufacturer", "Modality", "OverlayRows", "Rows", "PixelData"]:
        assert not [entry for entry in found if entry.endswith(f" {kept}")]


def test_identifying_elements_ignores_empty_values():
    ds = Dataset()
    ds.PatientName = ""
    ds.StudyDate = ""
    ds.OtherPatientIDsSequence = Sequence()
    ds.Manufacturer = "ACME"
    assert identifying_elements(ds) == []


# --- deidentify ---------------------------------------------------------------------------------


@pytest.fixture
def deidentified() -> tuple[Dataset, dict[str, int]]:
    ds = make_dataset()
    counts = deidentify(ds, uid_secret=SECRET)
    return ds, counts


def test_names_ids_and_dates_follow_their_actions(deidentified):
    ds, _ = deidentified
    assert ds.PatientName == ""  # Z
    assert ds.PatientID == "ANONYMIZED"  # Z/D -> D
    assert ds.PatientBirthDate == ""  # Z
    assert ds.PatientSex == ""  # Z
    assert "PatientAge" not in ds  # X
    assert ds.InstitutionName == "ANONYMIZED"  # X/Z/D -> D
    assert ds.ReferringPhysicianName == ""  # Z
    assert ds.StationName == "ANONYMIZED"  # X/Z/D -> D, SH
    assert ds.AccessionNumber == ""  # Z
    assert ds.StudyDate == "" and ds.StudyTime == ""  # Z
    assert ds.SeriesDate == "19000101"  # X/D -> D
    assert ds.ContentDate == "19000101"  # Z/D -> D
    assert ds.Manufacturer == "ACME Imaging"  # not in the table
    assert "RequestAttributesSequence" not in ds  # X, with its nested name
    nested = ds.ReferencedRequestSequence[0]
    assert "RequestingPhysician" not in nested and nested.AccessionNumber == ""


def test_private_curve_and_overlay_data_removed(deidentified):
    ds, _ = deidentified
    assert not [elem for elem in ds if elem.tag.is_private]
    assert 0x50000010 not in ds
    assert 0x60003000 not in ds and 0x60004000 not in ds
    assert ds[0x60000010].value == 8  # Overlay Rows is not in the table


def test_uids_replaced_with_valid_keyed_uids(deidentified):
    ds, _ = deidentified
    new = [ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID]
    assert len(set(new)) == 3
    for uid in new:
        assert uid.startswith("2.25.") and len(uid) <= 64 and UID(uid).is_valid
    assert STUDY_UID not in new and SOP_UID not in new
    assert ds.SOPClassUID == CTImageStorage  # a class UID identifies nobody
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    # Same input UID, same output: nested references still point at the same study.
    assert ds.ReferencedRequestSequence[0].StudyInstanceUID == ds.StudyInstanceUID


def test_uid_mapping_is_consistent_across_files_and_keyed_by_the_secret():
    prior = make_dataset(sop_uid=PRIOR_SOP_UID)
    current = make_dataset()
    deidentify(prior, uid_secret=SECRET)
    deidentify(current, uid_secret=SECRET)
    assert current.StudyInstanceUID == prior.StudyInstanceUID
    assert current.SOPInstanceUID != prior.SOPInstanceUID
    # X/Z/U*: the reference is kept and points at the prior image's new UID.
    reference = current.ReferencedImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == prior.SOPInstanceUID
    assert reference.ReferencedSOPClassUID == CTImageStorage

    other = make_dataset()
    deidentify(other, uid_secret=b"another-partner-secret")
    assert other.StudyInstanceUID != current.StudyInstanceUID
    assert other.SOPInstanceUID != current.SOPInstanceUID


def test_empty_values_stay_empty_and_sequences_lose_their_items():
    ds = Dataset()
    ds.ContentDate = ""  # Z/D: no dummy invented for a value the source left empty
    ds.ContentSequence = Sequence([_item(PersonName="Doe^Jane")])  # D on a sequence
    ds.InstitutionCodeSequence = Sequence([_item(CodeValue="X1")])  # X/Z/D on a sequence
    counts = deidentify(ds, uid_secret=SECRET)
    assert ds.ContentDate == ""
    assert len(ds.ContentSequence) == 0 and len(ds.InstitutionCodeSequence) == 0
    assert counts == {"removed": 0, "emptied": 0, "dummied": 2, "uids_replaced": 0}
    assert identifying_elements(ds) == []


def test_empty_secret_is_refused():
    with pytest.raises(ValueError, match="uid_secret"):
        deidentify(make_dataset(), uid_secret=b"")


def test_pixels_and_pixel_module_unchanged(deidentified):
    ds, _ = deidentified
    original = make_dataset()
    np.testing.assert_array_equal(ds.pixel_array, PIXELS)
    assert ds.PixelData == original.PixelData
    for keyword in [
        "Rows",
        "Columns",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "RescaleSlope",
        "RescaleIntercept",
        "WindowCenter",
        "WindowWidth",
    ]:
        assert ds[keyword].value == original[keyword].value, keyword


def test_counts_per_action(deidentified):
    _, counts = deidentified
    assert set(counts) == {"removed", "emptied", "dummied", "uids_replaced"}
    # Removed: PatientAge, RequestAttributesSequence, RequestingPhysician (nested), private
    # creator + element, curve element, overlay data and comments.
    assert counts["removed"] == 8
    # Emptied: PatientName, PatientBirthDate, PatientSex, ReferringPhysicianName, StudyDate,
    # StudyTime, AccessionNumber, nested AccessionNumber.
    assert counts["emptied"] == 8
    # Dummied: PatientID, InstitutionName, StationName, SeriesDate, ContentDate.
    assert counts["dummied"] == 5
    # Study, series, SOP instance, nested study, referenced SOP instance, file meta.
    assert counts["uids_replaced"] == 6


def test_marks_the_dataset_as_deidentified(deidentified):
    ds, _ = deidentified
    assert ds.PatientIdentityRemoved == "YES"
    (code,) = ds.DeidentificationMethodCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
        "113100",
        "DCM",
        "Basic Application Confidentiality Profile",
    )


def test_result_is_a_valid_file_with_nothing_left_to_report(deidentified):
    ds, _ = deidentified
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no value written by the profile violates its VR
        ds.save_as(buf, enforce_file_format=True)
    buf.seek(0)
    back = pydicom.dcmread(buf)
    assert identifying_elements(back) == []
    assert back.PatientIdentityRemoved == "YES"
    assert back.SOPInstanceUID == ds.SOPInstanceUID
    assert back.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    np.testing.assert_array_equal(back.pixel_array, PIXELS)


def test_deidentifying_twice_changes_nothing_identifying(deidentified):
    ds, _ = deidentified
    again = copy.deepcopy(ds)
    deidentify(again, uid_secret=SECRET)
    assert identifying_elements(again) == []
    assert again.PatientID == ds.PatientID and again.PixelData == ds.PixelData


# --- pydicom's test files -----------------------------------------------------------------------


def _parseable_testdata() -> list[tuple[str, Dataset]]:
    parsed: list[tuple[str, Dataset]] = []
    for path in get_testdata_files():
        try:
            ds = pydicom.dcmread(path, force=False)
        except (InvalidDicomError, IsADirectoryError, OSError):
            continue
        parsed.append((path, ds))
    return parsed


@pytest.mark.filterwarnings("ignore::UserWarning")  # the files carry deliberately odd values
def test_every_pydicom_test_file_deidentifies_cleanly():
    parsed = _parseable_testdata()
    assert len(parsed) > 100
    failures = []
    for path, ds in parsed:
        if not ds.get("SOPClassUID") or not ds.get("SOPInstanceUID"):
            # Not a storable Part-10 object (ingest records it as such); still de-identifiable.
            deidentify(ds, uid_secret=SECRET)
            assert identifying_elements(ds) == [], path
            continue
        try:
            deidentify(ds, uid_secret=SECRET)
            back = pydicom.dcmread(io.BytesIO(encode_file(ds)))
            left = identifying_elements(ds) + identifying_elements(back)
        except Exception as exc:  # collect every failure, then report them all
            failures.append(f"{path}: {exc!r}")
            continue
        if left:
            failures.append(f"{path}: still identifying {left}")
        if ds.get("PatientIdentityRemoved") != "YES":
            failures.append(f"{path}: not marked")
    assert failures == []
