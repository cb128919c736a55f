"""A one-line progress bar on stderr (redrawn in place on a terminal, a few lines otherwise)."""

from __future__ import annotations

import sys
from typing import TextIO

WIDTH = 30


def bar(done: float, total: float, width: int = WIDTH) -> str:
    share = 0.0 if total <= 0 else min(1.0, max(0.0, done / total))
    filled = round(share * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {share * 100:5.1f}%"


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


class Bar:
    """`update(done, total, label)` draws; `close()` ends the line. Off a terminal it prints
    only at each tenth of the way, so a log stays short."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last_tenth = -1
        self._drawn = False

    def update(self, done: float, total: float, label: str = "") -> None:
        line = f"{bar(done, total)} {label}".rstrip()
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self._drawn = True
        else:
            tenth = int(10 * done / total) if total > 0 else 0
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = False
