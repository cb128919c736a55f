"""What the model worker does to itself before it loads a vendor model: rlimits and seccomp.

Runs inside the sandbox (see `sandbox`), in the worker process, after its own trusted imports
(torch) and before `torch.export.load`, so everything the vendor's file can make the process do is
bounded by:

- rlimits (hard and soft, so the model cannot raise them again): ``RLIMIT_DATA`` (the memory cap;
  ``RLIMIT_AS`` is unusable because importing this torch needs several GiB of address space),
  ``RLIMIT_CPU`` (counted from the moment the limits are set, so start-up does not eat into it; the
  soft limit sends SIGXCPU, the hard limit a few seconds later SIGKILL), ``RLIMIT_NOFILE``,
  ``RLIMIT_FSIZE`` (not 0: torch needs a usable temporary directory), ``RLIMIT_NPROC`` (counts
  threads, so it leaves room for the torch and OpenMP pools; not enforced for host root, i.e. in
  the ``unshare`` fallback run as root) and ``RLIMIT_CORE`` 0.
- a seccomp filter (libseccomp through ``pyseccomp``) that makes `DENIED_SYSCALLS` fail with EPERM:
  no sockets of any family, no exec, no ptrace, no new namespaces or mounts, no io_uring, no
  raising rlimits, no kernel modules. It sets no_new_privs, and a syscall from a foreign ABI
  (i386, x32) kills the process.

`install_seccomp` raises `ConfinementUnavailable` when pyseccomp or libseccomp is missing; the
worker then refuses to serve unless the operator allowed an unsandboxed runner.
"""

from __future__ import annotations

import errno
import math
import resource
from dataclasses import dataclass
from typing import Any

GIB = 1024**3
MIB = 1024**2

DEFAULT_MEMORY_LIMIT_BYTES = 2 * GIB  # FIELD-NOTES: 1.25 GiB ran resnet18; torchvision needs ~1.5
DEFAULT_CPU_LIMIT_S = 4 * 3600  # CPU seconds over the worker's warm life (all threads together)
DEFAULT_OPEN_FILES = 256
DEFAULT_FILE_SIZE_BYTES = 16 * MIB
MIN_PROCESSES = 32  # threads count too: 3 broke libgomp, 8 was fine for one torch thread
CPU_KILL_GRACE_S = 5

# Each fails with EPERM. socket/socketpair: every address family (torch needs none of them);
# execve/execveat: no programs, so no shell either; the rest close routes around the namespaces.
DENIED_SYSCALLS = (
    "socket",
    "socketpair",
    "execve",
    "execveat",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "keyctl",
    "add_key",
    "request_key",
    # What root could still do in the `unshare` fallback (no user namespace there):
    "setrlimit",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
)
# prlimit64 is how glibc reads limits too: only setting one (new_limit != NULL) is denied.
DENIED_WITH_ARGS = ("prlimit64 with a new limit",)


class ConfinementUnavailable(RuntimeError):
    """The worker cannot confine itself as asked (no pyseccomp or no libseccomp here)."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES
    cpu_seconds: float | None = DEFAULT_CPU_LIMIT_S
    open_files: int = DEFAULT_OPEN_FILES
    file_size_bytes: int = DEFAULT_FILE_SIZE_BYTES
    processes: int = MIN_PROCESSES  # 0: leave RLIMIT_NPROC alone

    @classmethod
    def for_threads(
        cls,
        threads: int,
        *,
        memory_bytes: int | None,
        cpu_seconds: float | None,
        limit_processes: bool = True,
    ) -> Limits:
        return cls(
            memory_bytes=DEFAULT_MEMORY_LIMIT_BYTES if memory_bytes is None else int(memory_bytes),
            cpu_seconds=cpu_seconds,
            processes=max(MIN_PROCESSES, 4 * threads + 16) if limit_processes else 0,
        )


def apply_rlimits(limits: Limits) -> dict[str, int | None]:
    """Set the limits on this process (soft = hard); returns what was set, for the report."""
    applied: dict[str, int | None] = {}

    def set_limit(name: str, value: int, hard: int | None = None) -> None:
        resource.setrlimit(getattr(resource, name), (value, value if hard is None else hard))
        applied[name] = value

    set_limit("RLIMIT_CORE", 0)
    set_limit("RLIMIT_DATA", limits.memory_bytes)
    set_limit("RLIMIT_NOFILE", limits.open_files)
    set_limit("RLIMIT_FSIZE", limits.file_size_bytes)
    if limits.processes:
        set_limit("RLIMIT_NPROC", limits.processes)
    if limits.cpu_seconds is not None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = math.ceil(usage.ru_utime + usage.ru_stime + limits.cpu_seconds)
        set_limit("RLIMIT_CPU", soft, soft + CPU_KILL_GRACE_S)
        applied["RLIMIT_CPU"] = math.ceil(limits.cpu_seconds)  # report the budget, not the total
    else:
        applied["RLIMIT_CPU"] = None
    return applied


def install_seccomp() -> list[str]:
    """Load the deny-list filter into this process (irreversible); returns the denied syscalls."""
    try:
        # Imported here: pyseccomp finds libseccomp by running ldconfig, which needs execve.
        import pyseccomp
    except (ImportError, OSError) as exc:  # no module, or no libseccomp.so for it to load
        raise ConfinementUnavailable(f"seccomp unavailable: {exc}") from None
    try:
        syscall_filter = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
        for name in DENIED_SYSCALLS:
            syscall_filter.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
        syscall_filter.add_rule(
            pyseccomp.ERRNO(errno.EPERM), "prlimit64", pyseccomp.Arg(2, pyseccomp.NE, 0)
        )
        syscall_filter.load()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfinementUnavailable(f"seccomp filter failed to load: {exc}") from None
    return [*DENIED_SYSCALLS, *DENIED_WITH_ARGS]


def describe(confinement: Any) -> str:
    """Report text for the `confinement` dict a worker returns in its ping answer."""
    if not isinstance(confinement, dict):
        return "worker confinement unknown (no rlimits or seccomp reported)"
    rlimits = confinement.get("rlimits")
    parts = []
    if isinstance(rlimits, dict):
        shown = []
        for name, value in rlimits.items():
            short = str(name).removeprefix("RLIMIT_")
            if value is None:
                shown.append(f"{short} unlimited")
            elif short in ("DATA", "FSIZE"):
                shown.append(f"{short} {_size(value)}")
            elif short == "CPU":
                shown.append(f"CPU {value} s from the model load on")
            else:
                shown.append(f"{short} {value}")
        parts.append("rlimits " + ", ".join(shown))
    else:
        parts.append("no rlimits")
    denied = confinement.get("seccomp")
    if isinstance(denied, list) and denied:
        parts.append("seccomp denies " + ", ".join(map(str, denied)) + " (EPERM)")
    else:
        reason = confinement.get("seccomp_error") or "not installed"
        parts.append(f"NO seccomp filter ({reason})")
    return "worker: " + "; ".join(parts)


def _size(value: int) -> str:
    if value >= GIB and value % GIB == 0:
        return f"{value // GIB} GiB"
    if value >= MIB and value % MIB == 0:
        return f"{value // MIB} MiB"
    return f"{value} bytes"
