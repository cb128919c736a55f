"""Canonical JSON of a report document: the bytes its hashes and signatures cover.

Sorted keys, no whitespace, UTF-8, floats rounded to a fixed number of significant digits and
-0.0 written as 0.0; NaN, infinities and non-JSON types are refused rather than guessed at.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping
from typing import Any

#: Top-level keys left out of the content hash: they are added after the hash is taken.
UNHASHED_KEYS = frozenset({"integrity", "signatures"})

_SIGNIFICANT_DIGITS = 10


def _canonical_value(value: Any, path: str) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"Non-finite number at {path}: {number!r}")
        number = float(f"{number:.{_SIGNIFICANT_DIGITS}g}")
        return 0.0 if number == 0 else number  # one spelling for -0.0 and 0.0
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"Non-string key at {path}: {key!r}")
            result[key] = _canonical_value(item, f"{path}.{key}")
        return result
    if isinstance(value, list | tuple):
        return [_canonical_value(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise ValueError(f"Unsupported type at {path}: {type(value).__name__}")


def canonical_json(document: dict) -> bytes:
    """UTF-8 canonical JSON: sorted keys, no whitespace, floats rounded to 10 significant digits.

    Raises ``ValueError`` for NaN or infinite numbers, non-string keys and non-JSON types.
    """
    canonical = _canonical_value(document, "$")
    text = json.dumps(
        canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def document_sha256(document: dict) -> str:
    """Hex SHA-256 of ``canonical_json(document)``."""
    return hashlib.sha256(canonical_json(document)).hexdigest()


def content_sha256(document: dict) -> str:
    """Hex SHA-256 of the document without its ``UNHASHED_KEYS`` (integrity and signatures)."""
    return document_sha256({k: v for k, v in document.items() if k not in UNHASHED_KEYS})
