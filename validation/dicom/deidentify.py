"""DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile for pydicom 3 datasets.

Partner datasets arrive with whatever the acquiring site left in the headers. Before a file is
stored for validation, ingest either rejects it (`identifying_elements`, the 'reject' identity
policy) or de-identifies it in place (`deidentify`). Pure pydicom: no Django, no torch, so the
ingest worker and the tests share exactly this code.

The table itself, the "Basic Prof." column of DICOM PS3.15 **2024b** Table E.1-1 with its
source, is data in `validation.dicom.basic_profile`. The table rows that are not single tags are
handled here: Private Attributes (odd groups), Curve Data (50xx,xxxx), Overlay Data (60xx,3000)
and Overlay Comments (60xx,4000), all action X. No row of that column uses K or C (those appear
only in the options' columns), so the profile here never cleans text.

Edition notes: in 2024b Patient ID is Z/D (Z in earlier editions) and Institution Name is X/Z/D.

Actions (PS3.15 E.1.1): X remove, Z zero-length value, D non-empty dummy of the VR, U replace the
UID consistently, and compounds "X unless Z or D is needed for IOD conformance". Because this
module does not know which IOD a partner file claims, a compound resolves to its most conservative
conformant choice: the rightmost letter (X/Z -> Z, X/D and Z/D and X/Z/D -> D). X/Z/U* (Referenced
Image Sequence, Source Image Sequence) keeps the sequence and replaces the instance UIDs inside it
(the "*" in the standard: "replacement of contained instance UIDs"), so links to the source
images survive with the same mapped UIDs as the images themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import struct
from collections import Counter

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from validation.dicom.basic_profile import BASIC_PROFILE

PROFILE_NAME = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile"

# De-identification Method (0012,0063) is LO: at most 64 characters a value, but the name has 68.
# Two values of the multi-valued LO keep the file valid; joined with a space they are the name.
_METHOD_VALUES = ("DICOM PS3.15 Annex E", "Basic Application Level Confidentiality Profile")

# PS3.16 CID 7050: the code that says which profile was applied.
_METHOD_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

# Effective action of each compound (see the module docstring); X/Z/U* depends on the VR.
_COMPOUND = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D"}
_KEEP_AND_RECURSE = "K"

# Table rows that name a group range rather than a tag.
_CURVE_GROUPS = range(0x5000, 0x5100)  # Curve Data (50xx,xxxx)
_OVERLAY_GROUPS = range(0x6000, 0x6100)
_OVERLAY_REMOVED = frozenset({0x3000, 0x4000})  # Overlay Data, Overlay Comments

# Dummies for D. Dates and times are the earliest valid values (obviously not real); text says so.
_DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR: dict[str, object] = {
    "PN": "ANONYMOUS",
    "DA": "19000101",
    "TM": "000000.00",
    "DT": "19000101000000.00",
    "AS": "000Y",
}
# Text VRs where "ANONYMIZED" is a valid value, with their maximum length (None: no practical max).
_TEXT_MAX_LEN: dict[str, int | None] = {
    "AE": 16,
    "SH": 16,
    "LO": 64,
    "ST": 1024,
    "LT": 10240,
    "UC": None,
    "UT": None,
}
_NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "IS", "DS"})
_BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})

_COUNT_KEYS = ("removed", "emptied", "dummied", "uids_replaced")


# --- public API ---------------------------------------------------------------------------------


def identifying_elements(ds: pydicom.Dataset) -> list[str]:
    """Elements a file carries (non-empty value) that the basic profile would remove, blank or
    replace, except UIDs (action U / X/Z/U*), as readable strings like "(0010,0010) PatientName",
    plus one entry per private element "(0009,0010) private". Recurses into sequences (report the
    nested element). Sorted, de-duplicated. Used by the 'reject' identity policy.

    A value that already equals the dummy `deidentify` writes for D is not reported: otherwise a
    file this module de-identified would be rejected by its own check.
    """
    found: set[str] = set()
    _collect_identifying(ds, found)
    return sorted(found)


def deidentify(ds: pydicom.Dataset, *, uid_secret: bytes) -> dict[str, int]:
    """Apply the basic profile in place, recursively in sequences; return counts per action
    {"removed": n, "emptied": n, "dummied": n, "uids_replaced": n}.

    UIDs are replaced by "2.25." + the first 128 bits of HMAC-SHA256(uid_secret, uid): the same
    secret maps a UID to the same new UID in every file (study/series/reference links survive),
    and without the secret the mapping cannot be reversed or re-computed from a guessed UID.
    Pixel data and the attributes needed to decode it are not in the table and are never touched.
    Afterwards the dataset says so: Patient Identity Removed "YES", De-identification Method and
    its code sequence (DCM 113100).
    """
    if not uid_secret:
        raise ValueError("uid_secret must be non-empty: without it the UID mapping is reversible")
    counts: Counter[str] = Counter({key: 0 for key in _COUNT_KEYS})
    _deidentify_dataset(ds, uid_secret, counts)
    _sync_file_meta(ds, uid_secret, counts)
    mark_deidentified(ds)
    return {key: counts[key] for key in _COUNT_KEYS}


# --- actions ------------------------------------------------------------------------------------


def _table_action(tag: BaseTag) -> str | None:
    """The profile's action for a tag as the table writes it, or None when the profile keeps it."""
    if tag.is_private:
        return "X"
    if tag.group in _CURVE_GROUPS:
        return "X"
    if tag.group in _OVERLAY_GROUPS and tag.element in _OVERLAY_REMOVED:
        return "X"
    return BASIC_PROFILE.get(int(tag))


def _element_action(elem: DataElement) -> str | None:
    """The single action (X, Z, D, U or K = keep and recurse) this module applies to `elem`."""
    return action_for(elem.tag, elem.VR)


def action_for(tag: BaseTag, vr: str) -> str | None:
    """The single action for a tag of this VR.

    A UI element never gets a dummy: D on a UID (Annotation Group UID) becomes the same consistent
    replacement as U, because one fixed dummy would make distinct UIDs in a file collide.
    """
    action = _table_action(tag)
    if action is None or action == "X":
        return action
    if vr == "UI" and (action in ("U", "X/Z/U*") or action.endswith("D")):
        return "U"
    if action == "X/Z/U*":
        return _KEEP_AND_RECURSE if vr == "SQ" else "Z"
    return _COMPOUND.get(action, action)


def _vr_of(ds: Dataset, tag: BaseTag) -> str:
    """The element's VR without decoding its value (implicit VR files: from the dictionary)."""
    vr = ds.get_item(tag).VR
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
    return vr


def _touched(ds: Dataset) -> list[BaseTag]:
    """Tags at this level that the profile acts on or that may hold items to visit.

    Decided from the tag and the raw element's VR, without decoding values: a file has ~60
    elements and the profile touches a handful, and pydicom then writes the untouched ones back
    as the raw bytes it read."""
    return [
        tag
        for tag in list(ds.keys())
        if tag.element == 0x0000 or _table_action(tag) is not None or _vr_of(ds, tag) == "SQ"
    ]


def raw_is_empty(ds: Dataset, tag: BaseTag, vr: str) -> bool:
    item = ds.get_item(tag)
    if isinstance(item, RawDataElement) and vr != "SQ":
        return item.length == 0 or (item.value is not None and not item.value.strip(b"\x00 \\"))
    return _is_empty(ds[tag])


def _deidentify_dataset(ds: Dataset, secret: bytes, counts: Counter[str]) -> None:
    """Apply the profile to one dataset level, then to every sequence item that remains.
    Removed, emptied and dummied elements are never decoded; only UIDs and sequences are."""
    for tag in _touched(ds):
        deidentify_element(ds, tag, secret, counts)


def deidentify_element(ds: Dataset, tag: BaseTag, secret: bytes, counts: Counter[str]) -> None:
    if tag.element == 0x0000:
        # Group lengths are retired and would be wrong once elements are removed.
        del ds[tag]
        return
    vr = _vr_of(ds, tag)
    action = action_for(tag, vr)
    if action == "X":
        del ds[tag]
        counts["removed"] += 1
    elif action in ("Z", "D", "U"):
        if raw_is_empty(ds, tag, vr):
            return  # identifies nobody; D would invent a value the source did not have
        if action == "U":
            elem = ds[tag]
            elem.value = _map_uid_value(elem.value, secret)
            counts["uids_replaced"] += 1
        else:
            value = _empty_value(vr) if action == "Z" else dummy_value(vr)
            ds[tag] = DataElement(tag, vr, value)
            counts["emptied" if action == "Z" else "dummied"] += 1
    elif vr == "SQ":
        for item in ds[tag].value or []:
            _deidentify_dataset(item, secret, counts)


def _empty_value(vr: str) -> object:
    """The zero-length value of a VR; a sequence becomes a sequence with no items."""
    return Sequence() if vr == "SQ" else empty_value_for_VR(vr)


def dummy_value(vr: str) -> object:
    """A value valid for the VR that carries no information; zero-length where none exists.

    CS and UR have no neutral value ("ANONYMIZED" would be an invalid defined term), AT would
    point at a real tag, so those fall back to zero length, which is what Z would write.
    """
    if vr in _DUMMY_BY_VR:
        return _DUMMY_BY_VR[vr]
    if vr in _TEXT_MAX_LEN:
        max_len = _TEXT_MAX_LEN[vr]
        return _DUMMY_TEXT if max_len is None else _DUMMY_TEXT[:max_len]
    if vr in _NUMERIC_VRS:
        return 0
    if vr in _BINARY_VRS:
        return b""
    return _empty_value(vr)


def _is_dummy(elem: DataElement) -> bool:
    """Whether `elem` already holds the dummy `dummy_value` writes for its VR."""
    dummy = dummy_value(elem.VR)
    if isinstance(dummy, str):
        return str(elem.value) == dummy
    return elem.value == dummy


def _is_empty(elem: DataElement) -> bool:
    """Zero-length value: nothing in it can identify anybody."""
    if elem.VR == "SQ":
        return not elem.value
    return elem.is_empty


# --- UIDs ---------------------------------------------------------------------------------------


def replacement_uid(uid: str, secret: bytes) -> str:
    """Deterministic replacement UID under the 2.25 arc (UUID-derived, PS3.5 B.2): at most
    5 + 39 digits, no leading zeros, so always a valid UID of <= 64 characters."""
    digest = hmac.new(secret, uid.strip("\x00 ").encode("utf-8"), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _map_uid_value(value: object, secret: bytes) -> object:
    """Map a single or multi-valued UI value, keeping empty components empty."""
    if isinstance(value, MultiValue | list | tuple):
        return [replacement_uid(str(v), secret) if v else v for v in value]
    return replacement_uid(str(value), secret)


def _sync_file_meta(ds: Dataset, secret: bytes, counts: Counter[str]) -> None:
    """Media Storage SOP Instance UID (U in the table) must still equal the SOP Instance UID."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or "MediaStorageSOPInstanceUID" not in meta:
        return
    if "SOPInstanceUID" in ds and ds.SOPInstanceUID:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    elif meta.MediaStorageSOPInstanceUID:
        meta.MediaStorageSOPInstanceUID = replacement_uid(meta.MediaStorageSOPInstanceUID, secret)
    else:
        return
    counts["uids_replaced"] += 1


# --- reporting and marking ----------------------------------------------------------------------


def _collect_identifying(ds: Dataset, found: set[str]) -> None:
    """Add to `found` every element at this level and below that `deidentify` would change."""
    for tag in _touched(ds):
        if tag.element == 0x0000:
            continue
        elem = ds[tag]
        action = _element_action(elem)
        if action not in (None, "U", _KEEP_AND_RECURSE) and not _is_empty(elem):
            if not (action == "D" and _is_dummy(elem)):
                found.add(_describe(elem))
        if elem.VR == "SQ" and elem.value:
            for item in elem.value:
                _collect_identifying(item, found)


def _describe(elem: DataElement) -> str:
    """Readable `(gggg,eeee) Keyword`; odd groups say "private", their keywords mean nothing."""
    tag = elem.tag
    # Repeating groups (50xx, 60xx) only resolve through the dictionary lookup, not elem.keyword.
    label = "private" if tag.is_private else (elem.keyword or keyword_for_tag(tag) or "unknown")
    return f"({tag.group:04X},{tag.element:04X}) {label}"


def mark_deidentified(ds: Dataset) -> None:
    """Record in the file itself that, and how, it was de-identified (PS3.15 E.1.1 item 5)."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = list(_METHOD_VALUES)
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = _METHOD_CODE
    ds.DeidentificationMethodCodeSequence = Sequence([code])


def encode_file(ds: Dataset) -> bytes:
    """The Part-10 bytes of a de-identified dataset. Untouched elements are written back as the
    raw bytes that were read; where pydicom cannot re-encode a raw element as read (seen with a
    file whose declared and actual VR encodings differ), every element is decoded and the file
    written again from values."""
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=True)
    except (TypeError, ValueError, AttributeError, struct.error):
        for _elem in ds.iterall():  # decodes every raw element, nested ones included
            pass
        if not ds.file_meta.get("MediaStorageSOPClassUID") and ds.get("SOPClassUID"):
            ds.fix_meta_info(enforce_standard=False)  # fill the meta from the dataset itself
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
