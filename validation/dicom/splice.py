"""De-identify a DICOM file by splicing its bytes: kept elements are copied as read, the profile's
replacements are encoded directly, and only sequences go through pydicom.

Ingest must cost little more than reading and decoding a file. pydicom's writer costs ~30-50 us per
element, and a de-identification through the dataset (decode each touched value, replace it, write
the file) cost twice as much as reading and decoding the file. Here the decisions are exactly
`deidentify`'s (`action_for`, `raw_is_empty`, `dummy_value`, `replacement_uid`, the same marks);
only the encoding differs, and the tests hold the two paths to the same parsed result on every
pydicom test file and on synthetic cohorts.

Anything unusual (deflated or big-endian syntax, elements that do not tile the file, an
incomplete file meta group, a value that is not plain ASCII where one is expected) makes
`splice_deidentified` return None, and the caller falls back to the dataset path, which is
always right.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from validation.dicom.deidentify import (
    action_for,
    deidentify_element,
    dummy_value,
    mark_deidentified,
    replacement_uid,
)

PREAMBLE = b"\x00" * 128 + b"DICM"
# Explicit VR elements with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_HEADER_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
_UNDEFINED = 0xFFFFFFFF
_SOP_INSTANCE_UID = 0x00080018
_MEDIA_SOP_INSTANCE_UID = 0x00020003
# The meta elements pydicom's conformant writer would add when missing: their absence means the
# dataset path must write the meta group.
_META_REQUIRED = (0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013)
_BINARY_NUMBERS = {"US": "<H", "SS": "<h", "UL": "<I", "SL": "<i", "UV": "<Q", "SV": "<q"}
_BINARY_FLOATS = {"FL": "<f", "FD": "<d"}


@dataclass(frozen=True)
class ReadSnapshot:
    """The bytes a dataset was parsed from and its top-level raw elements as parsed (before
    anything decoded them): decisions are taken on these, whatever was read since."""

    data: bytes
    raw: dict
    implicit: bool
    little: bool


def snapshot(ds: Dataset, data: bytes) -> ReadSnapshot:
    implicit, little = ds.original_encoding
    return ReadSnapshot(data=data, raw=dict(ds._dict), implicit=bool(implicit), little=bool(little))


class _NotSpliceable(Exception):
    """This file needs the dataset path."""


def splice_deidentified(ds: Dataset, snap: ReadSnapshot, uid_secret: bytes) -> bytes | None:
    """The Part-10 bytes `deidentify(ds)` followed by a conformant write would give (same
    elements, same values), or None when this file is not a case for splicing. Only top-level
    sequences are de-identified in `ds` itself; nothing else in it changes."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or syntax == DeflatedExplicitVRLittleEndian or not snap.little:
        return None
    if (syntax.is_implicit_VR, syntax.is_little_endian) != (snap.implicit, snap.little):
        return None
    spans = _spans(snap)
    if spans is None:
        return None
    try:
        new_sop_uid = _new_sop_instance_uid(snap, uid_secret)
        dataset_start = min(start for _raw, start, _end in spans.values())
        meta = _meta_group(snap.data, dataset_start, new_sop_uid, uid_secret)
        body = _dataset_bytes(ds, snap, spans, uid_secret)
    except _NotSpliceable:
        return None
    return b"".join((PREAMBLE, meta, body))


def _dataset_bytes(ds: Dataset, snap: ReadSnapshot, spans: dict, secret: bytes) -> bytes:
    """Tags are plain ints here: pydicom's tag type compares in Python, which made dictionary
    lookups a fifth of the cost."""
    marks = _mark_elements(snap.implicit)
    view = memoryview(snap.data)
    parts = []
    for tag in sorted({int(t) for t in snap.raw} | marks.keys()):
        if tag in marks:
            parts.append(marks[tag])
        elif tag & 0xFFFF == 0x0000:
            continue  # group lengths are retired, and wrong once elements go
        elif tag in spans:
            parts.append(_raw_element_bytes(ds, snap.implicit, tag, spans[tag], secret, view))
        else:  # decoded while reading (Specific Character Set)
            parts.append(_through_pydicom(ds, Tag(tag), secret))
    return b"".join(parts)


def _raw_element_bytes(
    ds: Dataset, implicit: bool, tag: int, span: tuple, secret: bytes, view: memoryview
) -> bytes | memoryview:
    raw, start, end = span
    vr = raw.VR or _dictionary_vr(tag)
    if vr == "SQ" or raw.length == _UNDEFINED:
        return _through_pydicom(ds, Tag(tag), secret)
    action = _action(tag, vr)
    if action is None or (action != "X" and _is_blank(raw.value)):
        return view[start:end]  # no copy: the pixel data is most of the file
    if action == "X":
        return b""
    if action == "U":
        value = _mapped_uids(raw.value, secret)
    else:
        value = b"" if action == "Z" else _encoded_dummy(vr)
    return _header(tag, vr, len(value), implicit) + value


@lru_cache(maxsize=8192)
def _action(tag: int, vr: str) -> str | None:
    """The profile's decision for a (tag, VR): the same for every file, asked ~60 times a file."""
    return action_for(Tag(tag), vr)


def _through_pydicom(ds: Dataset, tag, secret: bytes) -> bytes:
    """Sequences (and elements decoded while reading): de-identified in the dataset as
    `deidentify` does, then encoded by pydicom."""
    deidentify_element(ds, tag, secret, Counter())
    if tag not in ds:
        return b""
    fp = DicomBytesIO()
    implicit_vr, little_endian = ds.original_encoding
    assert implicit_vr is not None and little_endian is not None  # read from a file: known
    fp.is_implicit_VR, fp.is_little_endian = implicit_vr, little_endian
    write_data_element(fp, ds[tag], ds.get("SpecificCharacterSet", "ISO_IR 6"))
    return fp.getvalue()


def _is_blank(value: bytes | None) -> bool:
    """`raw_is_empty` on the bytes: nothing but padding and value separators."""
    return not value or not value.strip(b"\x00 \\")


def _mapped_uids(value: bytes, secret: bytes) -> bytes:
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        raise _NotSpliceable from None
    mapped = "\\".join(
        replacement_uid(v, secret) if v.strip("\x00 ") else ""
        for v in text.rstrip("\x00 ").split("\\")
    )
    encoded = mapped.encode("ascii")
    return encoded + b"\x00" if len(encoded) % 2 else encoded


def _encoded_dummy(vr: str) -> bytes:
    value = dummy_value(vr)
    if isinstance(value, str):
        encoded = value.encode("ascii")
        return encoded + b" " if len(encoded) % 2 else encoded
    if vr in _BINARY_NUMBERS:
        return struct.pack(_BINARY_NUMBERS[vr], value)
    if vr in _BINARY_FLOATS:
        return struct.pack(_BINARY_FLOATS[vr], value)
    if vr in ("IS", "DS"):
        return b"0 "
    if value in (b"", None, ""):
        return b""
    raise _NotSpliceable


def _header(tag: int, vr: str, length: int, implicit: bool) -> bytes:
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        return struct.pack("<HHI", group, element, length)
    if vr in _LONG_HEADER_VRS:
        return struct.pack("<HH2s2xI", group, element, vr.encode("ascii"), length)
    if length > 0xFFFF:
        raise _NotSpliceable
    return struct.pack("<HH2sH", group, element, vr.encode("ascii"), length)


def _dictionary_vr(tag) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _new_sop_instance_uid(snap: ReadSnapshot, secret: bytes) -> bytes | None:
    """The mapped SOP Instance UID the meta group must repeat, or None to map the meta's own."""
    raw = snap.raw.get(Tag(_SOP_INSTANCE_UID))
    value = raw.value if isinstance(raw, RawDataElement) else None
    if value is None or _is_blank(value):
        return None
    if b"\\" in value:
        raise _NotSpliceable  # multi-valued: let pydicom's dataset path decide
    return _mapped_uids(value, secret)


def _meta_group(data: bytes, dataset_start: int, new_sop_uid: bytes | None, secret: bytes) -> bytes:
    """The file meta group (always explicit VR little endian) as read, with a new group length
    and the Media Storage SOP Instance UID that names the de-identified instance."""
    if data[128:132] != b"DICM":
        raise _NotSpliceable
    elements, end = _meta_elements(data)
    if end > dataset_start or any(tag not in elements for tag in _META_REQUIRED):
        raise _NotSpliceable
    parts = []
    for tag, (vr, value, start, stop) in sorted(elements.items()):
        if tag == 0x00020000:
            continue
        if not value.strip(b"\x00 "):
            raise _NotSpliceable  # pydicom's conformant writer would fill it in
        if tag == _MEDIA_SOP_INSTANCE_UID:
            value = new_sop_uid or _mapped_uids(value, secret)
            parts.append(_header(tag, vr, len(value), False) + value)
        else:
            parts.append(data[start:stop])
    group = b"".join(parts)
    return struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(group)) + group


def _meta_elements(data: bytes) -> tuple[dict, int]:
    elements: dict[int, tuple[str, bytes, int, int]] = {}
    pos = 132
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4 : pos + 6].decode("ascii", "replace")
        if vr in _LONG_HEADER_VRS:
            (length,), header = struct.unpack_from("<I", data, pos + 8), 12
        else:
            (length,), header = struct.unpack_from("<H", data, pos + 6), 8
        end = pos + header + length
        if length == _UNDEFINED or end > len(data):
            raise _NotSpliceable
        elements[(group << 16) | element] = (vr, data[pos + header : end], pos, end)
        pos = end
    return elements, pos


@cache
def _mark_elements(implicit: bool) -> dict:
    """The elements that say the file was de-identified, encoded once per VR encoding."""
    marked = Dataset()
    mark_deidentified(marked)
    encoded = {}
    for elem in marked:
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = implicit, True
        write_data_element(fp, elem)
        encoded[int(elem.tag)] = fp.getvalue()
    return encoded


def _spans(snap: ReadSnapshot) -> dict | None:
    """tag (int) -> (raw element, start, end) of each top-level element in `data`, or None when
    they do not tile the dataset exactly (then splicing could copy the wrong bytes)."""
    items = []
    for tag, raw in snap.raw.items():
        if not isinstance(raw, RawDataElement):
            continue  # decoded while reading (Specific Character Set): encoded again
        if raw.value_tell is None or raw.is_implicit_VR != snap.implicit:
            return None  # e.g. a dataset encoded otherwise than its transfer syntax says
        long_header = not snap.implicit and raw.VR in _LONG_HEADER_VRS
        items.append((raw.value_tell - (12 if long_header else 8), tag, raw))
    if not items:
        return None
    items.sort()
    spans = {}
    for i, (start, tag, raw) in enumerate(items):
        end = items[i + 1][0] if i + 1 < len(items) else len(snap.data)
        if raw.length != _UNDEFINED and raw.value_tell + raw.length != end:
            return None
        spans[int(tag)] = (raw, start, end)
    return spans
