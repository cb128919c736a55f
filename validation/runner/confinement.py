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
import os
import resource
from dataclasses import dataclass
from typing import Any

GIB = 1024**3
MIB = 1024**2

# RLIMIT_DATA counts what torch and pytorch-grad-cam map at import (~1.0-1.1 GiB) and a .pt2's
# weights about 2.4 times while loading (file, tensors, unflatten's copy): a ViT-B/16 (330 MiB)
# peaked at 1.85-2.0 GiB, too close to 2 GiB (docs/PACKAGE_FORMAT.md, "Models no one here wrote").
DEFAULT_MEMORY_LIMIT_BYTES = 3 * GIB
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


MEASURED_RLIMITS = (
    "RLIMIT_NPROC",
    "RLIMIT_DATA",
    "RLIMIT_AS",
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_NOFILE",
    "RLIMIT_CORE",
)


def nproc_holds() -> bool:
    """Whether the kernel holds this process to RLIMIT_NPROC, tried for real: with the soft limit
    lowered to 1 for a moment (this process alone is one task) a new thread must fail (EAGAIN).
    A process of host root is exempt, so this is False in a sandbox that maps to host root.
    Call before `install_seccomp` (which denies setting limits); the soft limit is restored."""
    import threading

    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    resource.setrlimit(resource.RLIMIT_NPROC, (1, hard))
    try:
        thread = threading.Thread(target=lambda: None, daemon=True)
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread": clone failed with EAGAIN
            return True
        thread.join()
        return False
    finally:
        resource.setrlimit(resource.RLIMIT_NPROC, (soft, hard))


def measure(*, nproc_holds: bool | None) -> dict[str, Any]:
    """What this process is held to, read back from the kernel (not what was asked for):
    ``rlimits`` name -> [soft, hard] (None: unlimited), ``cpu_used_s`` (RLIMIT_CPU counts from
    process start), ``seccomp`` (the mode in /proc/self/status: 2 is a filter), ``no_new_privs``,
    ``uid``/``gid`` (as seen inside) and ``nproc_holds`` (see `nproc_holds`; None: not tried)."""

    def value(limit: int) -> int | None:
        return None if limit == resource.RLIM_INFINITY else int(limit)

    rlimits = {}
    for name in MEASURED_RLIMITS:
        soft, hard = resource.getrlimit(getattr(resource, name))
        rlimits[name] = [value(soft), value(hard)]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    status = _proc_status()
    return {
        "rlimits": rlimits,
        "cpu_used_s": round(usage.ru_utime + usage.ru_stime, 3),
        "seccomp": _int(status.get("Seccomp")),
        "no_new_privs": _int(status.get("NoNewPrivs")) == 1,
        "uid": os.getuid(),
        "gid": os.getgid(),
        "nproc_holds": nproc_holds,
    }


def memory_used(*, reset_peak: bool = False) -> dict[str, int | None]:
    """This process's memory as the kernel counts it, in bytes: ``peak_rss`` (VmHWM, the
    resident high-water mark), ``rss`` (VmRSS) and ``data`` (VmData, what RLIMIT_DATA bounds).
    With `reset_peak`, the high-water mark then starts again from the current RSS (clear_refs
    5), so the next reading is the peak of what ran in between; None when /proc refuses it."""
    status = _proc_status()

    def kib(field: str) -> int | None:
        value = _int(status.get(field))
        return None if value is None else value * 1024

    used = {"peak_rss": kib("VmHWM"), "rss": kib("VmRSS"), "data": kib("VmData")}
    if reset_peak:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            used["peak_rss"] = None
    return used


def _proc_status() -> dict[str, str]:
    try:
        with open("/proc/self/status") as handle:
            return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)
    except OSError:
        return {}


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).split()[0])
    except (ValueError, IndexError):
        return None


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


def describe_measured(measured: Any) -> str:
    """Report text for what a worker measured on itself at start (`measure`)."""
    if not isinstance(measured, dict) or not isinstance(measured.get("rlimits"), dict):
        return "limits not measured"
    shown = []
    cpu_used = measured.get("cpu_used_s")
    for name, pair in measured["rlimits"].items():
        short = str(name).removeprefix("RLIMIT_")
        soft = pair[0] if isinstance(pair, list | tuple) and pair else None
        if not isinstance(soft, int):
            shown.append(f"{short} unlimited")
        elif short in ("DATA", "AS", "FSIZE"):
            shown.append(f"{short} {_size(soft)}")
        elif short == "CPU" and isinstance(cpu_used, int | float):
            shown.append(f"CPU {max(0, int(soft - cpu_used))} s from the model load on")
        else:
            shown.append(f"{short} {soft}")
        if short == "NPROC" and isinstance(soft, int):
            holds = measured.get("nproc_holds")
            if holds is True:
                shown[-1] += " (holds: a thread past it failed)"
            elif holds is False:
                shown[-1] += " NOT ENFORCED (the kernel exempts host root)"
    seccomp = measured.get("seccomp")
    filtered = "seccomp filter active" if seccomp == 2 else f"NO seccomp filter (mode {seccomp})"
    privs = "no_new_privs" if measured.get("no_new_privs") else "new privileges possible"
    return f"rlimits {', '.join(shown)}; {filtered}, {privs}"


def describe(confinement: Any) -> str:
    """Report text for the `confinement` dict a worker returns in its ping answer: the limits it
    measured on itself inside the sandbox where it reports them, else what it set."""
    if not isinstance(confinement, dict):
        return "worker confinement unknown (no rlimits or seccomp reported)"
    measured = confinement.get("measured")
    if isinstance(measured, dict):
        return _describe_with_measurement(confinement, measured)
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


def _describe_with_measurement(confinement: dict, measured: dict) -> str:
    text = f"worker, measured inside at start: {describe_measured(measured)}"
    denied = confinement.get("seccomp")
    if measured.get("seccomp") == 2 and isinstance(denied, list) and denied:
        text += "; seccomp denies " + ", ".join(map(str, denied)) + " (EPERM)"
    elif confinement.get("seccomp_error"):
        text += f" ({confinement['seccomp_error']})"
    return text


def _size(value: int) -> str:
    if value >= GIB and value % GIB == 0:
        return f"{value // GIB} GiB"
    if value >= MIB and value % MIB == 0:
        return f"{value // MIB} MiB"
    return f"{value} bytes"
