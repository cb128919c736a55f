"""How the model worker is isolated: a command prefix plus a description for the report.

Modes, strongest first (`detect_sandbox` picks the first that works here, probing it for real,
because a container's seccomp profile often blocks user namespaces even where the binary exists):

- ``bwrap``: bubblewrap with every namespace unshared (user, network, PIDs, IPC, UTS, cgroup), run
  as uid/gid 65534 with no capabilities and no further user namespaces. The root is an empty
  tmpfs holding only read-only binds of `/usr`, the `/lib*`, `/bin`, `/sbin` links (or binds),
  `/etc/ld.so.cache`, the running Python installation (`sys.prefix` and `sys.base_prefix`) and
  whatever the caller passes in ``ro_binds`` (the runner passes the worker code and the model
  file only). A private ``/tmp`` (a 64 MiB tmpfs, mounted before any bind under ``/tmp``, so a
  checkout under ``/tmp`` still works), a minimal ``/dev`` and a fresh ``/proc``; the environment
  is cleared and set explicitly; a new session; the sandbox dies with its parent. Everything else
  on the host (partner images, the database, keys, the rest of the checkout) does not exist
  inside. Note: run by root, uid 65534 inside maps to root outside, so the protection is the
  mount namespace (nothing writable, nothing else visible) and the missing capabilities, not
  file permissions.
- ``unshare``: a private network namespace only (``unshare --net``; an unprivileged caller adds
  ``--map-root-user``). Keeps the model off the network, nothing more: the host file system is
  visible and, run as root, writable.
- ``none``: no isolation. `ModelRunner` refuses it unless the operator explicitly allows it, and
  then every affected report must say so.

In every mode the worker itself then sets rlimits and loads a seccomp deny-list before it reads
the model (see `confinement`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

PROBE_TIMEOUT_S = 10.0


class Sandbox:
    """A way to start the worker. `isolated` is False only for `NoSandbox`."""

    mode = "none"
    isolated = False

    @property
    def description(self) -> str:
        raise NotImplementedError

    def command_prefix(
        self, ro_binds: Sequence[Path] = (), env: Mapping[str, str] | None = None
    ) -> list[str]:
        """Arguments to put before the worker command; `ro_binds` must be readable inside.

        `env`, where given, is the complete environment inside (a sandbox that clears the
        environment sets it itself; the others rely on the caller's `Popen(env=...)`).
        """
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
            f"bwrap: uid/gid {SANDBOX_UID} without capabilities, all namespaces unshared "
            "(no network), empty root with read-only binds of only /usr, /lib*, "
            "/etc/ld.so.cache, the Python installation, the runner code and the model file; "
            f"private /tmp ({TMP_SIZE_BYTES // 2**20} MiB tmpfs), minimal /dev and /proc, "
            "cleared environment, dies with its parent"
        )

    def command_prefix(
        self, ro_binds: Sequence[Path] = (), env: Mapping[str, str] | None = None
    ) -> list[str]:
        prefix = [self.executable, *_BWRAP_BASE, "--clearenv"]
        for key, value in {**(env or {}), **_BWRAP_ENV}.items():
            prefix += ["--setenv", key, value]
        prefix += _system_mounts()
        # After --tmpfs /tmp (in _system_mounts), parents before children: a bind under /tmp
        # placed before the tmpfs, or a parent bound after its child, would hide it.
        for path in sorted(_dedupe([*_python_installation(), *ro_binds]), key=_depth):
            prefix += ["--ro-bind", str(path), str(path)]
        # The root tmpfs (with the folders bwrap made for the binds) read-only; /tmp stays writable.
        return [*prefix, "--remount-ro", "/", "--chdir", "/", "--"]


class UnshareSandbox(Sandbox):
    mode = "unshare"
    isolated = True

    def __init__(self, executable: str = "unshare") -> None:
        self.executable = executable

    @property
    def description(self) -> str:
        return "unshare: private network namespace only (no network access)"

    def command_prefix(
        self, ro_binds: Sequence[Path] = (), env: Mapping[str, str] | None = None
    ) -> list[str]:
        if os.geteuid() == 0:
            return [self.executable, "--net", "--"]
        return [self.executable, "--net", "--map-root-user", "--"]


class NoSandbox(Sandbox):
    @property
    def description(self) -> str:
        return "none: the model runs without isolation (sandbox disabled by the operator)"

    def command_prefix(
        self, ro_binds: Sequence[Path] = (), env: Mapping[str, str] | None = None
    ) -> list[str]:
        return []


SANDBOX_UID = 65534  # nobody / nogroup
TMP_SIZE_BYTES = 64 * 1024 * 1024

_BWRAP_BASE = (
    "--unshare-all",
    "--unshare-user",  # explicit (not "-try"): needed for --uid and --disable-userns
    "--disable-userns",
    "--uid",
    str(SANDBOX_UID),
    "--gid",
    str(SANDBOX_UID),
    "--cap-drop",
    "ALL",
    "--die-with-parent",
    "--new-session",
)

_BWRAP_ENV = {"HOME": "/tmp", "TMPDIR": "/tmp"}  # noqa: S108 - the sandbox's private tmpfs

# Bound read-only where they are directories, recreated where they are symlinks (merged /usr).
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc/ld.so.cache (and /sbin/ldconfig) let pyseccomp find libseccomp inside.
_SYSTEM_FILES = ("/etc/ld.so.cache",)


def _system_mounts() -> list[str]:
    args: list[str] = []
    for name in _SYSTEM_DIRS:
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    for name in _SYSTEM_FILES:
        if os.path.isfile(name):
            args += ["--ro-bind", name, name]
    args += [
        "--size",
        str(TMP_SIZE_BYTES),
        "--tmpfs",
        "/tmp",  # noqa: S108 - a fresh tmpfs mounted inside the sandbox, not the host's /tmp
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    return args


def _python_installation() -> list[Path]:
    """The running interpreter's prefixes: a venv and the installation its python links to."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return [Path(p) for p in sorted(prefixes) if p and Path(p).resolve() != Path("/")]


def _depth(path: Path) -> int:
    return len(path.parts)


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
    """Absolute paths, once each; a path through a symlink is bound both as named and resolved."""
    seen: list[Path] = []
    for path in paths:
        absolute = Path(os.path.abspath(path))
        for candidate in (absolute, absolute.resolve()):
            if candidate not in seen:
                seen.append(candidate)
    return seen
