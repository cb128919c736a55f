"""Warm model runners, one per (worker process, package): a model loads once and serves every
batch and stage of every run of that package in this process. A daemon thread closes runners
left idle for RUNNER_IDLE_SECONDS. The pool also knows the device this worker's models run on
(from the runners it started), which the worker's heartbeat reports."""

import atexit
import threading
import time
from pathlib import Path

from django.conf import settings

from validation.models import ModelPackage
from validation.packaging import read_package
from validation.runner.client import ModelRunner
from validation.storage import media_path, model_cache_path, package_relpath

_runners: dict[str, ModelRunner] = {}
_last_used: dict[str, float] = {}
# _lock guards the two dicts and is only ever held for a moment: the worker's heartbeat reads
# them (`runners_warm`) and must not wait for a model to load. _starting serialises cold starts,
# which can take minutes for a large model on a GPU.
_lock = threading.Lock()
_starting = threading.Lock()
_reaper: threading.Thread | None = None
# What the last runner started in this process reported of its device ("cuda", "NVIDIA H100").
_device: dict[str, str] = {}


def _model_file(package: ModelPackage) -> Path:
    """The package's model file, extracted once (by content hash) for the runner to read."""
    target = model_cache_path(package.sha256, package.model_format)
    if not target.exists():
        _manifest, model_bytes = read_package(
            media_path(package_relpath(package.sha256)),
            max_archive_bytes=settings.PACKAGE_MAX_BYTES,
            max_total_bytes=settings.PACKAGE_MAX_UNPACKED_BYTES,
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o755)  # the sandboxed worker runs as an unprivileged uid
        tmp = target.with_suffix(".partial")
        tmp.write_bytes(model_bytes)
        tmp.chmod(0o444)
        tmp.replace(target)
    return target


def runner_new(model_path: Path) -> ModelRunner:
    """A runner configured from this worker's settings (not started): the one place where the
    device, precision, threads, timeouts, limits and sandbox policy of model processes are
    decided."""
    return ModelRunner(
        model_path,
        threads=settings.RUNNER_THREADS,
        batch_timeout_s=settings.RUNNER_BATCH_TIMEOUT_S,
        allow_unsandboxed=settings.RUNNER_ALLOW_UNSANDBOXED,
        memory_limit_bytes=settings.RUNNER_MEMORY_LIMIT_BYTES,
        cpu_limit_s=settings.RUNNER_CPU_LIMIT_S,
        device=settings.RUNNER_DEVICE,
        amp=settings.RUNNER_AMP,
    )


def runner_for(package: ModelPackage) -> ModelRunner:
    """A started runner holding this package's model; started on first use (a cold start)."""
    with _lock:
        _reaper_ensure()
        _last_used[package.sha256] = time.monotonic()
        runner = _runners.get(package.sha256)
    if runner is not None and runner.running:
        return runner
    with _starting:
        with _lock:
            runner = _runners.get(package.sha256)
        if runner is not None and runner.running:  # started by another thread meanwhile
            return runner
        runner = runner_new(_model_file(package))
        runner.start()
        with _lock:
            _runners[package.sha256] = runner
            _last_used[package.sha256] = time.monotonic()
            _device.update(
                device=str(runner.info.get("device", "")),
                device_name=str(runner.info.get("device_name", "")),
            )
        return runner


def runner_discard(package: ModelPackage) -> None:
    with _lock:
        runner = _runners.pop(package.sha256, None)
        _last_used.pop(package.sha256, None)
    if runner is not None:
        runner.close()


def runner_kill(package: ModelPackage) -> int | None:
    """Kill this package's warm runner now, from any thread, without starting one: the thread
    using it gets "crash" and discards it. Returns the killed process's pid, if any."""
    with _lock:
        runner = _runners.get(package.sha256)
    if runner is None or not runner.running:
        return None
    runner.kill()
    return runner.pid


def runner_pid(package: ModelPackage) -> int | None:
    """The pid of this package's warm runner, if one is running."""
    with _lock:
        runner = _runners.get(package.sha256)
    return runner.pid if runner is not None and runner.running else None


def runners_reap_idle(max_idle_s: float | None = None) -> list[str]:
    """Close the runners unused for `max_idle_s` (default: the setting); return their SHA-256s."""
    limit = settings.RUNNER_IDLE_SECONDS if max_idle_s is None else max_idle_s
    now = time.monotonic()
    with _lock:
        stale = [sha for sha, used in _last_used.items() if now - used >= limit]
        closing = [_runners.pop(sha) for sha in stale if sha in _runners]
        for sha in stale:
            _last_used.pop(sha, None)
    for runner in closing:
        runner.close()
    return stale


def _reaper_ensure() -> None:
    """Start the reaper thread once per process (called with _lock held)."""
    global _reaper
    if _reaper is not None and _reaper.is_alive():
        return

    def loop() -> None:
        while True:
            time.sleep(max(1.0, min(settings.RUNNER_IDLE_SECONDS / 2, 30.0)))
            runners_reap_idle()

    _reaper = threading.Thread(target=loop, name="runner-reaper", daemon=True)
    _reaper.start()


def runners_warm() -> list[str]:
    with _lock:
        return [sha for sha, runner in _runners.items() if runner.running]


def worker_device() -> dict[str, str]:
    """The device of this worker's models, as its runners reported it: {"device", "device_name"}
    (empty strings until a runner has started). Never waits for a cold start."""
    with _lock:
        return {"device": _device.get("device", ""), "device_name": _device.get("device_name", "")}


@atexit.register
def runners_close_all() -> None:
    with _lock:
        runners = list(_runners.values())
        _runners.clear()
        _last_used.clear()
    for runner in runners:
        runner.close()


def runner_is_sandboxed(runner: ModelRunner) -> bool:
    isolation = runner.isolation or ""
    return bool(isolation) and not isolation.startswith("none")
