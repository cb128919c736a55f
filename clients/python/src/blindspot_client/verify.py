"""The offline half of `blindspot report verify`: an issued report's PDF carries, in its
metadata, the hash of its canonical document (`blindspotdocumentsha256`) and the service's
Ed25519 signature of that hash (`blindspotservicesignature`). With the service's public key
(`/api/v1/signing-key/`) anyone can check that the service signed the hash the PDF names.
That alone does not prove the PDF's bytes are the issued ones: the server's verify answer
(does its SHA-256 match an issued report's?) does. Needs `cryptography` (the `verify` extra)."""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

DOCUMENT_KEY = b"blindspotdocumentsha256"
SIGNATURE_KEY = b"blindspotservicesignature"
MAX_STREAM = 16 * 2**20
MAX_INFLATED = 16 * 2**20


@dataclass
class OfflineCheck:
    ok: bool
    detail: str
    document_sha256: str = ""


def _sections(data: bytes) -> Iterator[bytes]:
    """The file's bytes, then each Flate stream inflated (WeasyPrint keeps the info dictionary
    in a compressed object stream), each at most MAX_INFLATED bytes."""
    yield data
    for match in re.finditer(rb"stream\r?\n", data):
        inflater = zlib.decompressobj()
        try:
            yield inflater.decompress(data[match.end() : match.end() + MAX_STREAM], MAX_INFLATED)
        except zlib.error:
            continue


def _pdf_string(data: bytes, key: bytes) -> str | None:
    """The value of `/key` in a PDF's info dictionary: a literal or hex string."""
    pattern = re.compile(rb"/" + key + rb"\s*(\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>)")
    match = next((m for m in map(pattern.search, _sections(data)) if m is not None), None)
    if match is None:
        return None
    token = match.group(1)
    if token.startswith(b"<"):
        raw = binascii.unhexlify(re.sub(rb"\s", b"", token[1:-1]))
    else:
        raw = re.sub(rb"\\(.)", rb"\1", token[1:-1])
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", "replace")
    return raw.decode("latin-1")


def signature_check(pdf: bytes, public_key_pem: str) -> OfflineCheck:
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:
        return OfflineCheck(
            False, "cryptography is not installed (pip install './clients/python[verify]')"
        )
    document = _pdf_string(pdf, DOCUMENT_KEY)
    signature = _pdf_string(pdf, SIGNATURE_KEY)
    if not document or not signature:
        return OfflineCheck(False, "the PDF carries no service signature in its metadata")
    key = load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        return OfflineCheck(False, "the service's key is not an Ed25519 key")
    try:
        key.verify(base64.b64decode(signature, validate=True), document.encode("ascii"))
    except (InvalidSignature, ValueError, binascii.Error, UnicodeEncodeError):
        return OfflineCheck(False, "the signature in the PDF does not verify", document)
    return OfflineCheck(
        True, f"the service's Ed25519 signature of document {document[:16]}… verifies", document
    )
