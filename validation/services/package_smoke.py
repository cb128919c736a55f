"""The smoke test every package passes at intake, in the sandboxed runner: the model loads, a
synthetic batch shaped by the manifest's input spec gives finite output of the declared width,
its activated scores lie in [0, 1], and the Grad-CAM target layer resolves.

The model is placed where the warm runners look for it (the runner cache, by SHA-256): an
accepted package starts warm; a rejected one leaves nothing behind."""

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from validation.errors import ApplicationError
from validation.runner.client import RunnerError
from validation.runner.scores import positive_scores
from validation.runner_pool import runner_new
from validation.storage import model_cache_path

SMOKE_BATCH = 8
# What a vendor reads when its model fails the smoke test: a category and a message built from
# the manifest and the category only. The runner's detail (the worker's stderr tail, traceback)
# names host paths and the sandbox's environment: it stays for the validation team.
SMOKE_FAILURE = {
    "load-failed": "the model could not be loaded by {loader}",
    "oom": "the model exceeded the runner's memory limit",
    "timeout": "the model did not answer a batch of 8 within the time limit",
    "crash": "the model process crashed",
    "bad-output": "the model's output does not match its manifest",
    "bad-input": "the model refused an input of the shape its manifest declares",
}
LOADERS = {"pt2": "torch.export", "onnx": "onnxruntime"}


class SmokeFailure(ApplicationError):
    """The package failed its smoke test. `category` and `reason` are safe for the vendor;
    `detail` is for the validation team only."""

    def __init__(self, category: str, reason: str, detail: str = "") -> None:
        super().__init__(f"Smoke test failed: {reason}.")
        self.category = category
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SmokeResult:
    load_seconds: float
    batch_seconds: float
    isolation: str


def package_smoke_test(
    *, sha256: str, manifest: dict, model_bytes: bytes, model_format: str
) -> SmokeResult:
    """Run the smoke test; raise SmokeFailure and remove the cached model if it fails (an
    ApplicationError with status 503 when no sandbox is available). The sandboxed runner is the
    only place the model is loaded."""
    model_path = model_cache_path(sha256, model_format)
    folder = model_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # the sandboxed worker runs as an unprivileged uid
    if not model_path.exists():
        partial = folder / f"{model_path.name}.partial"
        partial.write_bytes(model_bytes)
        partial.chmod(0o444)
        partial.replace(model_path)
    try:
        return _exercise(model_path, manifest, model_format)
    except ApplicationError:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _exercise(model_path: Path, manifest: dict, model_format: str) -> SmokeResult:
    spec, output = manifest["input"], manifest["output"]
    shape = (SMOKE_BATCH, spec["channels"], spec["height"], spec["width"])
    images = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    runner = runner_new(model_path)
    try:
        runner.start()
        began = time.perf_counter()
        logits = runner.predict(images)
        batch_seconds = time.perf_counter() - began
        _check_outputs(logits, output, expected_rows=SMOKE_BATCH)
        if manifest.get("gradcam_target_layer") is not None:  # ONNX packages have no Grad-CAM
            _logits, cams = runner.gradcam(
                images[:2],
                manifest["gradcam_target_layer"],
                output["positive_index"],
                reshape=manifest.get("gradcam_reshape"),
            )
            if not np.isfinite(cams).all():
                raise SmokeFailure("bad-output", "the Grad-CAM maps are not finite")
    except RunnerError as exc:
        if exc.category == "no-isolation":
            raise ApplicationError(
                "No sandbox is available to test the package; it was not "
                "accepted. The operators have been told.",
                status_code=503,
            ) from exc
        loader = LOADERS.get(model_format, model_format)
        reason = SMOKE_FAILURE.get(exc.category, "the model failed in the runner")
        reason = reason.format(loader=loader)
        category = exc.category if exc.category in SMOKE_FAILURE else "crash"
        if exc.category == "bad-input" and "Grad-CAM needs" in exc.detail:
            category = "bad-gradcam-layer"
            reason = exc.detail.splitlines()[0]  # the rule and the shape, about its own model
        elif exc.category == "bad-input" and "layer" in exc.detail:
            category = "bad-gradcam-layer"
            reason = (
                f"the Grad-CAM target layer {manifest['gradcam_target_layer']!r} "
                "does not resolve to a module of the model"
            )
        raise SmokeFailure(category, reason, exc.detail) from exc
    finally:
        runner.close()
    return SmokeResult(
        load_seconds=round(runner.load_seconds or 0.0, 3),
        batch_seconds=round(batch_seconds, 4),
        isolation=runner.isolation or "",
    )


def _check_outputs(logits: np.ndarray, output: dict, *, expected_rows: int) -> None:
    if logits.ndim != 2 or logits.shape[0] != expected_rows:
        raise SmokeFailure(
            "bad-output",
            f"the model returned shape {logits.shape}, expected ({expected_rows}, K)",
        )
    if not np.isfinite(logits).all():
        raise SmokeFailure("bad-output", "the model returned NaN or infinite values")
    columns, index = logits.shape[1], output["positive_index"]
    if index >= columns:
        raise SmokeFailure(
            "bad-output",
            f"the model has {columns} output column(s); the manifest's positive_index is {index}",
        )
    if output["activation"] == "softmax" and columns < 2:
        raise SmokeFailure("bad-output", "a softmax output needs at least 2 columns")
    scores = positive_scores(logits, activation=output["activation"], positive_index=index)
    if not ((scores >= 0) & (scores <= 1)).all():
        raise SmokeFailure("bad-output", "the activated scores are not all in [0, 1]")
