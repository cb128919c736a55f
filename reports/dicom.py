"""The issued report as a DICOM Encapsulated PDF object (PS3.3 A.45.1), and reading one back.

The object is made from the issued PDF's exact bytes and the report's frozen identifiers only,
so the same report always gives the same bytes: UIDs are name-based UUIDs under `2.25` (PS3.5
B.2; Blindspot holds no registered OID root), dates and times are the issue time in UTC, and
the implementation class UID and version name are Blindspot's, not pydicom's (a pydicom upgrade
must not change an issued object). There is no patient: the report is about a dataset version,
so the Patient module carries a fixed convention (docs/API.md, "The report as DICOM") and no
case's identifier is ever copied in.
"""

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
PDF_MIME_TYPE = "application/pdf"
# Name-based (SHA-1, RFC 9562 version 5) UUIDs in this namespace become `2.25.<int>` UIDs.
UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://blindspot.invalid/dicom/uid")
PATIENT_NAME = "BLINDSPOT^VALIDATION"
IMPLEMENTATION_VERSION_NAME = "BLINDSPOT_1"
# Private block (PS3.5 7.8): the report's identifiers, which no standard attribute holds.
PRIVATE_GROUP = 0x0011
PRIVATE_CREATOR = "BLINDSPOT REPORT 1"
PRIVATE_ELEMENTS = {  # element offset -> (keyword, VR)
    0x01: ("reference", "LO"),
    0x02: ("version", "IS"),
    0x03: ("document_sha256", "LO"),
    0x04: ("pdf_sha256", "LO"),
    0x05: ("service_signature", "LT"),
}


def uid(*parts: str) -> UID:
    """A deterministic UID: `2.25.` and the integer of a name-based UUID of `parts`."""
    return UID(f"2.25.{uuid.uuid5(UID_NAMESPACE, '|'.join(parts)).int}")


IMPLEMENTATION_CLASS_UID = uid("implementation", IMPLEMENTATION_VERSION_NAME)


@dataclass(frozen=True)
class ReportIdentity:
    """What the object says about the report, all frozen at issue."""

    reference: str  # e.g. R-000012
    version: int
    document_sha256: str
    pdf_sha256: str
    service_signature: str
    issued_at: datetime
    dataset_version_id: int
    merkle_root: str
    software_version: str  # Blindspot's version, as the issued document records it


def dicom_make(*, pdf: bytes, identity: ReportIdentity) -> bytes:
    """The Encapsulated PDF object for a report: Patient, General Study, Encapsulated
    Document Series, General Equipment, SC Equipment, Encapsulated Document and SOP Common
    modules, Explicit VR Little Endian, in a Part 10 file."""
    i = identity
    issued = i.issued_at.astimezone(UTC)
    date, time = issued.strftime("%Y%m%d"), issued.strftime("%H%M%S")
    sop_instance = uid("instance", i.document_sha256, i.pdf_sha256)

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8; every value written here is ASCII
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = sop_instance
    ds.TimezoneOffsetFromUTC = "+0000"
    # General Study: one study per validation run, so every version of its report shares it.
    ds.StudyDate, ds.StudyTime = date, time
    ds.AccessionNumber = i.reference
    ds.Modality = "DOC"
    ds.ConversionType = "WSD"  # SC Equipment: made on a workstation
    ds.Manufacturer = "Blindspot"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = f"Blindspot validation {i.reference}"
    ds.SeriesDescription = f"{i.reference} version {i.version} validation report"
    ds.ManufacturerModelName = "Blindspot validation service"
    # Patient: no patient. The report is about a dataset version (docs/API.md).
    ds.PatientName = PATIENT_NAME
    ds.PatientID = f"BLINDSPOT-DSV{i.dataset_version_id}-{i.merkle_root[:16]}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "No patient: a validation report about a dataset version"
    ds.SoftwareVersions = i.software_version or "unknown"
    ds.StudyInstanceUID = uid("study", i.reference)
    ds.SeriesInstanceUID = uid("series", i.reference, str(i.version), i.document_sha256)
    ds.StudyID = i.reference
    ds.SeriesNumber = i.version
    ds.InstanceNumber = 1
    ds.BurnedInAnnotation = "NO"  # nothing in the PDF identifies a patient
    ds.RecognizableVisualFeatures = "NO"
    ds.ConceptNameCodeSequence = []
    ds.DocumentTitle = f"Blindspot validation report {i.reference} version {i.version}"
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionDateTime = issued.strftime("%Y%m%d%H%M%S+0000")
    ds.MIMETypeOfEncapsulatedDocument = PDF_MIME_TYPE
    ds.EncapsulatedDocument = pdf  # pydicom pads an odd length with one NUL
    ds.EncapsulatedDocumentLength = len(pdf)
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    values = {
        "reference": i.reference,
        "version": str(i.version),
        "document_sha256": i.document_sha256,
        "pdf_sha256": i.pdf_sha256,
        "service_signature": i.service_signature,
    }
    for offset, (keyword, vr) in PRIVATE_ELEMENTS.items():
        block.add_new(offset, vr, values[keyword])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ENCAPSULATED_PDF_STORAGE)
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


class NotAReportObject(ValueError):
    """The bytes are DICOM, but not an Encapsulated PDF object this service could have made."""


@dataclass(frozen=True)
class ReadObject:
    pdf: bytes
    claimed: dict[str, str]  # the private block's identifiers, as the object states them


def looks_like_dicom(data: bytes) -> bool:
    """A Part 10 file: 128-byte preamble, then `DICM`."""
    return data[128:132] == b"DICM"


def dicom_read(data: bytes) -> ReadObject:
    """Parse a Part 10 object (the caller bounds its size) and return its encapsulated PDF,
    exactly as encapsulated, with the identifiers it claims. Raises NotAReportObject with the
    reason for anything else: not DICOM, another SOP class, another MIME type, no document."""
    try:
        ds = dcmread(io.BytesIO(data))
        sop_class = str(ds.get("SOPClassUID", ""))
        mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "")).strip()
        document = ds.get("EncapsulatedDocument")
        length = ds.get("EncapsulatedDocumentLength")
        claimed = _claimed(ds)
    except (InvalidDicomError, ValueError, TypeError, KeyError, EOFError, OSError) as exc:
        raise NotAReportObject(f"it does not parse as DICOM ({type(exc).__name__})") from exc
    except Exception as exc:  # a damaged object is data: any parse failure is a refusal
        raise NotAReportObject(f"it does not parse as DICOM ({type(exc).__name__})") from exc
    if sop_class != ENCAPSULATED_PDF_STORAGE:
        raise NotAReportObject(
            f"its SOP class is {sop_class or 'missing'}, not Encapsulated PDF Storage "
            f"({ENCAPSULATED_PDF_STORAGE})"
        )
    if mime != PDF_MIME_TYPE:
        raise NotAReportObject(f"its encapsulated document is {mime or 'untyped'}, not a PDF")
    if not document:
        raise NotAReportObject("it encapsulates no document")
    pdf = bytes(document)
    if isinstance(length, int) and 0 <= length <= len(pdf):
        pdf = pdf[:length]
    elif pdf.endswith(b"\0"):
        pdf = pdf[:-1]  # the NUL that pads an odd length
    return ReadObject(pdf=pdf, claimed=claimed)


def _claimed(ds: Dataset) -> dict[str, str]:
    try:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    except KeyError:
        return {}
    claimed = {}
    for offset, (keyword, _vr) in PRIVATE_ELEMENTS.items():
        if offset in block:
            claimed[keyword] = str(block[offset].value)
    return claimed


def dicom_differences(expected: bytes, actual: bytes) -> list[str]:
    """The attributes (keywords, or tags for private ones) whose values differ between two
    objects, file meta included; an empty list when only the encoding differs."""
    a, b = dcmread(io.BytesIO(expected)), dcmread(io.BytesIO(actual))
    names = []
    for left, right in ((a.file_meta, b.file_meta), (a, b)):
        tags = sorted(set(left.keys()) | set(right.keys()))
        for tag in tags:
            x, y = left.get(tag), right.get(tag)
            if x is None or y is None or x.value != y.value:
                element = x if x is not None else y
                names.append(element.keyword or str(element.tag))
    return names
