"""The client's offline signature check: the service's Ed25519 signature of the document hash
that a PDF's metadata names, literal or hex strings, compressed or not."""

import base64
import zlib

from blindspot_client.verify import signature_check
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DOCUMENT = "ab" * 32


def _pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _pdf(document: str, signature: str, *, compressed: bool) -> bytes:
    info = f"<< /blindspotdocumentsha256 ({document}) /blindspotservicesignature ({signature}) >>"
    if not compressed:
        return b"%PDF-1.7\n1 0 obj\n" + info.encode() + b"\nendobj\n%%EOF\n"
    body = zlib.compress(info.encode())
    return b"%PDF-1.7\n1 0 obj\n<< /Filter /FlateDecode >>\nstream\n" + body + b"\nendstream\n"


def test_the_services_signature_verifies_and_anything_else_does_not():
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signature = base64.b64encode(key.sign(DOCUMENT.encode())).decode()
    for compressed in (False, True):
        good = _pdf(DOCUMENT, signature, compressed=compressed)
        assert signature_check(good, _pem(key)).ok
        assert signature_check(good, _pem(key)).document_sha256 == DOCUMENT
        assert not signature_check(good, _pem(other)).ok
        changed = _pdf("cd" * 32, signature, compressed=compressed)
        assert not signature_check(changed, _pem(key)).ok
    unsigned = signature_check(b"%PDF-1.7\n%%EOF\n", _pem(key))
    assert not unsigned.ok and "no service signature" in unsigned.detail
