"""The service's Ed25519 key: it signs the hash of every issued report."""

import base64
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@lru_cache(maxsize=1)
def _private_key() -> Ed25519PrivateKey:
    path = Path(settings.SIGNING_KEY_PATH)
    if not path.exists():
        if not settings.SIGNING_KEY_AUTOCREATE:
            raise ImproperlyConfigured(f"The service signing key {path} does not exist.")
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{path} is not an Ed25519 private key.")
    return key


def public_key_pem() -> str:
    return (
        _private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def public_key_fingerprint() -> str:
    raw = (
        _private_key()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return "SHA256:" + hashlib.sha256(raw).hexdigest()


def sign_digest(hex_digest: str) -> str:
    return base64.b64encode(_private_key().sign(hex_digest.encode("ascii"))).decode()


def verify_digest(hex_digest: str, signature_b64: str, public_pem: str | None = None) -> bool:
    key = (
        serialization.load_pem_public_key(public_pem.encode())
        if public_pem
        else _private_key().public_key()
    )
    assert isinstance(key, Ed25519PublicKey)
    try:
        key.verify(base64.b64decode(signature_b64), hex_digest.encode("ascii"))
    except (InvalidSignature, ValueError):
        return False
    return True
