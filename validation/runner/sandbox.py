"""How the model worker is isolated: a command prefix plus a description for the report.

Modes, strongest first (`detect_sandbox` picks the first that works here, probing it for real,
because a container's seccomp profile often blocks user namespaces even where the binary exists):

- ``bwrap``: bubblewrap with every namespace unshared (no network, own PIDs, IPC, UTS), the host
  root bound read-only, a private ``/tmp``, a minimal ``/dev`` and a new session; the sandbox dies
  with its parent.
- ``unshare``: a private network namespace only (``unshare --net``; an unprivileged caller adds
  ``--map-root-user``). Keeps the model off the network, nothing more.
- ``none``: no isolation. `ModelRunner` refuses it unless the operator explicitly allows it, and
  then every affected report must say so.

Still to come (tracked separately): an unprivileged uid, rlimits (data, CPU, files, file size,
processes, core) and a seccomp deny-list for sockets and exec. They belong in `command_prefix`
(or a small pre-exec shim it names), so the runner will not need to change.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

PROBE_TIMEOUT_S = 10.0


class Sandbox:
    """A way to start the worker. `isolated` is False only for `NoSandbox`."""

    mode = "none"
    isolated = False

    @property
    def description(self) -> str:
        raise NotImplementedError

    def command_prefix(self, ro_binds: Sequence[Path] = ()) -> list[str]:
        """Arguments to put before the worker command; `ro_binds` must be readable inside."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.description}>"


class BwrapSandbox(Sandbox):
    mode = "bwrap"
    isolated = True

    def __init__(self, executable: str = "bwrap") -> None:
        self.executable = executable

    @property
    def description(self) -> str:
        return (
            "bwrap: all namespaces unshared (no network), read-only root, private /tmp, "
            "minimal /dev, dies with its parent"
        )

    def command_prefix(self, ro_binds: Sequence[Path] = ()) -> list[str]:
        prefix = [self.executable, *_BWRAP_BASE]
        # --tmpfs /tmp comes first in _BWRAP_BASE: a bind under /tmp placed before it is hidden.
        for path in _dedupe(ro_binds):
            prefix += ["--ro-bind", str(path), str(path)]
        return [*prefix, "--chdir", "/", "--"]


class UnshareSandbox(Sandbox):
    mode = "unshare"
    isolated = True

    def __init__(self, executable: str = "unshare") -> None:
        self.executable = executable

    @property
    def description(self) -> str:
        return "unshare: private network namespace only (no network access)"

    def command_prefix(self, ro_binds: Sequence[Path] = ()) -> list[str]:
        if os.geteuid() == 0:
            return [self.executable, "--net", "--"]
        return [self.executable, "--net", "--map-root-user", "--"]


class NoSandbox(Sandbox):
    @property
    def description(self) -> str:
        return "none: the model runs without isolation (sandbox disabled by the operator)"

    def command_prefix(self, ro_binds: Sequence[Path] = ()) -> list[str]:
        return []


_BWRAP_BASE = (
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--ro-bind",
    "/",
    "/",
    "--tmpfs",
    "/tmp",  # noqa: S108 - a fresh tmpfs mounted inside the sandbox, not the host's /tmp
    "--dev",
    "/dev",
    "--proc",
    "/proc",
)


def detect_sandbox(*, modes: Sequence[str] = ("bwrap", "unshare")) -> Sandbox:
    """The strongest working sandbox among `modes`, or `NoSandbox` when none works here."""
    for mode in modes:
        if mode == "bwrap":
            executable = shutil.which("bwrap")
            if executable and _probe(tuple(BwrapSandbox(executable).command_prefix())):
                return BwrapSandbox(executable)
        elif mode == "unshare":
            executable = shutil.which("unshare")
            if executable and _probe(tuple(UnshareSandbox(executable).command_prefix())):
                return UnshareSandbox(executable)
        else:
            raise ValueError(f"unknown sandbox mode {mode!r}")
    return NoSandbox()


@functools.lru_cache(maxsize=8)
def _probe(prefix: tuple[str, ...]) -> bool:
    """Whether `prefix` can run a trivial program; remembered for the life of the process."""
    true = shutil.which("true") or "/bin/true"
    try:
        completed = subprocess.run(
            [*prefix, true],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=PROBE_TIMEOUT_S,
            env={"PATH": os.defpath},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return completed.returncode == 0


def _dedupe(paths: Sequence[Path]) -> list[Path]:
    seen: list[Path] = []
    for path in paths:
        resolved = Path(path).resolve()
        if resolved not in seen:
            seen.append(resolved)
    return seen
