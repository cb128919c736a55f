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
  inside. Run by root, bwrap's uid 65534 inside would map to host root, which the kernel exempts
  from RLIMIT_NPROC (a model forked 64 children under a limit of 32), so a root service starts
  it through `launch_prefix`: an outer bwrap (root, mount namespace only) makes the binds
  reachable for `HOST_UID` (a 0755 tmpfs over each ancestor that uid cannot traverse, e.g.
  /root, with the bind sources bound back in), then ``setpriv`` drops to host uid/gid
  `HOST_UID` with no groups and the inner bwrap runs unprivileged. The sandbox's processes then
  belong to an ordinary host uid and the worker's RLIMIT_NPROC holds; the kernel counts it per
  user namespace (measured on 6.18: two concurrent sandboxes each reached their own limit), so
  runners do not share one count. With ``gpu=True`` (a runner that may use CUDA) and NVIDIA
  device nodes on the host, those nodes are bound into the minimal ``/dev`` (CUDA opens them
  read-write) and driver libraries that live outside ``/usr`` are bound read-only; the model can
  then drive the GPU (that is the point) but still sees no other device and nothing else of the
  host.
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
import glob
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

PROBE_TIMEOUT_S = 10.0
# The unprivileged host uid (and gid) a root service enters the sandbox as. Not one per runner:
# the kernel counts RLIMIT_NPROC per user namespace, and each sandbox has its own.
HOST_UID = 65534


class Sandbox:
    """A way to start the worker. `isolated` is False only for `NoSandbox`."""

    mode = "none"
    isolated = False

    @property
    def description(self) -> str:
        raise NotImplementedError

    def describe(self, *, gpu: bool = False) -> str:
        """`description` for a worker started with `command_prefix(gpu=gpu)`."""
        return self.description

    def launch_prefix(
        self,
        ro_binds: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
        *,
        gpu: bool = False,
    ) -> list[str]:
        """What to start the worker with: `command_prefix`, wrapped where the sandbox needs more
        to hold as the user this service runs as (see `BwrapSandbox.launch_prefix`)."""
        return self.command_prefix(ro_binds, env, gpu=gpu)

    def command_prefix(
        self,
        ro_binds: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
        *,
        gpu: bool = False,
    ) -> list[str]:
        """Arguments to put before the worker command; `ro_binds` must be readable inside.

        `env`, where given, is the complete environment inside (a sandbox that clears the
        environment sets it itself; the others rely on the caller's `Popen(env=...)`). `gpu`:
        the worker may use CUDA, so the GPU must be reachable inside (only `BwrapSandbox` hides
        the host's /dev in the first place).
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.description}>"


class BwrapSandbox(Sandbox):
    mode = "bwrap"
    isolated = True

    def __init__(self, executable: str = "bwrap", host_uid: int = HOST_UID) -> None:
        self.executable = executable
        self.host_uid = host_uid

    @property
    def drops_uid(self) -> bool:
        """Whether the sandbox is entered as `host_uid` (the service runs as root)."""
        return os.geteuid() == 0

    @property
    def description(self) -> str:
        entered = (
            f"entered as host uid/gid {self.host_uid} (the service runs as root), "
            if self.drops_uid
            else ""
        )
        return (
            f"bwrap: uid/gid {SANDBOX_UID} without capabilities, {entered}"
            "all namespaces unshared "
            "(no network), empty root with read-only binds of only /usr, /lib*, "
            "/etc/ld.so.cache, the Python installation, the runner code and the model file; "
            f"private /tmp ({TMP_SIZE_BYTES // 2**20} MiB tmpfs), minimal /dev and /proc, "
            "cleared environment, dies with its parent"
        )

    def describe(self, *, gpu: bool = False) -> str:
        nodes = _gpu_device_nodes() if gpu else []
        if not nodes:
            return self.description
        return f"{self.description}; GPU device nodes bound read-write: {', '.join(nodes)}"

    def command_prefix(
        self,
        ro_binds: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
        *,
        gpu: bool = False,
    ) -> list[str]:
        nodes = _gpu_device_nodes() if gpu else []
        libraries = _gpu_library_dirs() if nodes else []
        environment = {**(env or {}), **_BWRAP_ENV}
        if libraries:
            # --clearenv drops the host's LD_LIBRARY_PATH; without it libcuda.so is not found.
            environment["LD_LIBRARY_PATH"] = ":".join(libraries)
        prefix = [self.executable, *_BWRAP_BASE, "--clearenv"]
        for key, value in environment.items():
            prefix += ["--setenv", key, value]
        prefix += _system_mounts()
        for node in nodes:  # after --dev /dev (in _system_mounts), which would hide them
            prefix += ["--dev-bind", node, node]
        outside_usr = [Path(d) for d in libraries if not Path(d).resolve().is_relative_to("/usr")]
        # After --tmpfs /tmp (in _system_mounts), parents before children: a bind under /tmp
        # placed before the tmpfs, or a parent bound after its child, would hide it.
        binds = _dedupe([*_python_installation(), *outside_usr, *ro_binds])
        for path in sorted(binds, key=_depth):
            prefix += ["--ro-bind", str(path), str(path)]
        # The root tmpfs (with the folders bwrap made for the binds) read-only; /tmp stays writable.
        return [*prefix, "--remount-ro", "/", "--chdir", "/", "--"]

    def launch_prefix(
        self,
        ro_binds: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
        *,
        gpu: bool = False,
    ) -> list[str]:
        """`command_prefix`; run by root, behind an outer bwrap that makes every bind source
        reachable for `host_uid` and ``setpriv``, which drops to it (see the module docstring)."""
        inner = self.command_prefix(ro_binds, env, gpu=gpu)
        if not self.drops_uid:
            return inner
        outer = [self.executable, "--dev-bind", "/", "/", "--die-with-parent"]
        sources = _reachable_targets(_bound_sources(inner), self.host_uid)
        for hidden in _untraversable(sources, self.host_uid):
            outer += ["--perms", "0755", "--tmpfs", str(hidden)]
            for source in sorted((s for s in sources if s.is_relative_to(hidden)), key=_depth):
                for parent in reversed(source.parents):
                    if parent.is_relative_to(hidden) and parent != hidden:
                        outer += ["--perms", "0755", "--dir", str(parent)]
                outer += ["--ro-bind", str(source), str(source)]
        uid = str(self.host_uid)
        drop = [_setpriv(), f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        return [*outer, "--", *drop, *inner]


class UnshareSandbox(Sandbox):
    mode = "unshare"
    isolated = True

    def __init__(self, executable: str = "unshare") -> None:
        self.executable = executable

    @property
    def description(self) -> str:
        return "unshare: private network namespace only (no network access)"

    def command_prefix(
        self,
        ro_binds: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
        *,
        gpu: bool = False,
    ) -> list[str]:
        if os.geteuid() == 0:
            return [self.executable, "--net", "--"]
        return [self.executable, "--net", "--map-root-user", "--"]


class NoSandbox(Sandbox):
    @property
    def description(self) -> str:
        return "none: the model runs without isolation (sandbox disabled by the operator)"

    def command_prefix(
        self,
        ro_binds: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
        *,
        gpu: bool = False,
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


# What CUDA opens: the control node, one node per GPU, unified memory and, with MIG, the
# capability nodes. Not nvidia-modeset (displays only).
_GPU_NODE = re.compile(r"nvidia(ctl|\d+|-uvm|-uvm-tools|-caps)")
# Where container runtimes put the driver's user-space libraries (libcuda.so) when not in the
# dynamic loader's cache; the host's LD_LIBRARY_PATH is searched too.
_GPU_LIBRARY_DIRS = ("/usr/local/nvidia/lib64", "/usr/local/nvidia/lib")


def _gpu_device_nodes() -> list[str]:
    """The host's NVIDIA device nodes a CUDA worker needs; none on a host without a GPU."""
    return sorted(
        path for path in glob.glob("/dev/nvidia*") if _GPU_NODE.fullmatch(os.path.basename(path))
    )


def _gpu_library_dirs() -> list[str]:
    """Directories holding the driver's libcuda.so that the loader finds only by path."""
    candidates = [*_GPU_LIBRARY_DIRS, *os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)]
    found: list[str] = []
    for directory in candidates:
        if (
            os.path.isabs(directory)
            and directory not in found
            and glob.glob(os.path.join(glob.escape(directory), "libcuda.so*"))
        ):
            found.append(directory)
    return found


def _python_installation() -> list[Path]:
    """The running interpreter's prefixes: a venv and the installation its python links to."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return [Path(p) for p in sorted(prefixes) if p and Path(p).resolve() != Path("/")]


def _setpriv() -> str:
    return shutil.which("setpriv") or "/usr/bin/setpriv"


def _bound_sources(prefix: Sequence[str]) -> list[Path]:
    """The host paths a bwrap command binds (read-only or not; device nodes included)."""
    options = {"--ro-bind", "--bind", "--dev-bind"}
    return _dedupe([Path(prefix[i + 1]) for i, a in enumerate(prefix[:-1]) if a in options])


def _enterable(folder: Path, uid: int) -> bool:
    try:
        info = os.stat(folder)
    except OSError:
        return True  # nothing to make reachable; bwrap reports a missing source itself
    return bool(info.st_mode & (stat.S_IXUSR if info.st_uid == uid else stat.S_IXOTH))


def _reachable_targets(sources: Sequence[Path], uid: int) -> list[Path]:
    """`sources`, where a bound folder that `uid` cannot enter itself (a 0700 test folder holding
    a model or an interpreter) is replaced by its entries: the outer bwrap then lays a 0755
    tmpfs over that folder with the entries bound back, as for any folder on the way."""
    targets: list[Path] = []
    for source in sources:
        if source.is_dir() and not _enterable(source, uid):
            targets += sorted(source.iterdir())
        else:
            targets.append(source)
    return _dedupe(targets)


def _untraversable(sources: Sequence[Path], uid: int) -> list[Path]:
    """The outermost folders on the way to `sources` that `uid` (no groups) cannot enter."""
    found: list[Path] = []
    for source in sources:
        for folder in [*reversed(source.parents)]:
            if any(folder.is_relative_to(f) for f in found):
                break
            if not _enterable(folder, uid):
                found.append(folder)
                break
    return sorted(found, key=_depth)


def _depth(path: Path) -> int:
    return len(path.parts)


def detect_sandbox(*, modes: Sequence[str] = ("bwrap", "unshare")) -> Sandbox:
    """The strongest working sandbox among `modes`, or `NoSandbox` when none works here."""
    for mode in modes:
        if mode == "bwrap":
            executable = shutil.which("bwrap")
            if executable and _probe(tuple(BwrapSandbox(executable).launch_prefix())):
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
