"""Warm model runners, one per (worker process, package): a model loads once and serves every
batch and stage of every run of that package in this process."""

import atexit
import threading
from pathlib import Path

from django.conf import settings

from validation.models import ModelPackage
from validation.packaging import read_package
from validation.runner.client import ModelRunner
from validation.storage import media_path, package_relpath

_runners: dict[str, ModelRunner] = {}
_lock = threading.Lock()


def _model_file(package: ModelPackage) -> Path:
    """The package's model file, extracted once (by content hash) for the runner to read."""
    suffix = "onnx" if package.model_format == "onnx" else "pt2"
    target = Path(settings.RUNNER_CACHE_ROOT) / package.sha256 / f"model.{suffix}"
    if not target.exists():
        _manifest, model_bytes = read_package(
            media_path(package_relpath(package.sha256)),
            max_archive_bytes=settings.PACKAGE_MAX_BYTES,
            max_total_bytes=settings.PACKAGE_MAX_UNPACKED_BYTES,
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".partial")
        tmp.write_bytes(model_bytes)
        tmp.chmod(0o444)
        tmp.replace(target)
    return target


def runner_for(package: ModelPackage) -> ModelRunner:
    """A started runner holding this package's model; started on first use (a cold start)."""
    with _lock:
        runner = _runners.get(package.sha256)
        if runner is not None and runner.running:
            return runner
        runner = ModelRunner(
            _model_file(package),
            threads=settings.RUNNER_THREADS,
            batch_timeout_s=settings.RUNNER_BATCH_TIMEOUT_S,
            allow_unsandboxed=settings.RUNNER_ALLOW_UNSANDBOXED,
        )
        runner.start()
        _runners[package.sha256] = runner
        return runner


def runner_discard(package: ModelPackage) -> None:
    with _lock:
        runner = _runners.pop(package.sha256, None)
    if runner is not None:
        runner.close()


@atexit.register
def runners_close_all() -> None:
    with _lock:
        runners = list(_runners.values())
        _runners.clear()
    for runner in runners:
        runner.close()


def runner_is_sandboxed(runner: ModelRunner) -> bool:
    return bool(runner.isolation) and not runner.isolation.startswith("none")
