"""A reader that refuses to go past a byte budget: the bomb guard of every untrusted archive
(packages and dataset archives alike)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any


class LimitedReader(io.RawIOBase):
    """Counts the (decompressed) bytes read and raises `error()` past `limit`; it never reads
    more than one byte beyond the budget.

    Put under tarfile, it also bounds tarfile's own reads of pax and GNU long-name headers,
    whose sizes come from the archive and which tarfile would otherwise read into memory whole.
    """

    def __init__(self, raw: Any, limit: int, error: Callable[[], Exception]) -> None:
        super().__init__()
        self._raw = raw
        self._limit = limit
        self._error = error
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(min(len(buffer), self._limit - self.count + 1))
        self.count += len(data)
        if self.count > self._limit:
            raise self._error()
        buffer[: len(data)] = data
        return len(data)
