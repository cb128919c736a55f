"""`blindspot check`: what intake checks, on the vendor's machine, before an upload.

First the safe reader (`package.reader`: the archive's shape and limits, the model's format)
and the manifest's schema, as intake runs them; then a local smoke test like the service's
(its `validation/services/package_smoke.py`): load the program, a synthetic batch of the
manifest's input shape, the output's shape, finiteness and range after the declared
activation, and the Grad-CAM layer's activations. Loading a `.pt2` runs code: this is the
vendor's own file on the vendor's own machine; the service does the same only in a sandbox."""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blindspot_client.package.gradcam_layer import activation_shape_problem
from blindspot_client.package.manifest import manifest_errors
from blindspot_client.package.reader import PackageError, read_package_contents

SMOKE_BATCH = 8
TORCH_MISSING = (
    "torch is not installed: the local smoke test loads the model with torch.export. Install "
    "the client's build extra (pip install './clients/python[build]'), or skip it with --no-smoke"
)


@dataclass
class CheckResult:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    model_format: str = ""


def check_package(path: Path, *, smoke: bool = True) -> CheckResult:
    result = CheckResult()
    if not path.is_file():
        result.problems.append(f"package: {path} does not exist or is not a file")
        return result
    try:
        contents = read_package_contents(path)
    except PackageError as exc:
        result.problems.append(f"package: {exc}")
        return result
    result.manifest, result.model_format = contents.manifest, contents.model_format
    errors = manifest_errors(contents.manifest, model_format=contents.model_format)
    result.problems += [f"manifest: {e}" for e in errors]
    result.notes.append(
        f"archive: {contents.model_format} model, {len(contents.model_bytes)} bytes; manifest "
        f"{contents.manifest.get('name')!r} version {contents.manifest.get('version')!r}"
    )
    if errors or not smoke:
        return result
    result.problems += smoke_test(
        contents.manifest, contents.model_bytes, contents.model_format, result.notes
    )
    return result


def smoke_test(
    manifest: dict, model_bytes: bytes, model_format: str, notes: list[str]
) -> list[str]:
    try:
        import numpy as np
    except ImportError:
        return [f"smoke test: {TORCH_MISSING}"]

    spec, output = manifest["input"], manifest["output"]
    shape = (SMOKE_BATCH, spec["channels"], spec["height"], spec["width"])
    images = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    began = time.perf_counter()
    try:
        run, module = _loader(model_format, model_bytes)
    except ImportError as exc:
        return [f"smoke test: {exc}"]
    except Exception as exc:
        return [f"smoke test: the model could not be loaded: {type(exc).__name__}: {_first(exc)}"]
    loaded = time.perf_counter() - began
    problems: list[str] = []
    layer = manifest.get("gradcam_target_layer")
    shapes: list[Any] = []
    hook = _record_shapes(module, layer, shapes, problems)
    began = time.perf_counter()
    try:
        logits = run(images)
    except Exception as exc:
        return [
            *problems,
            f"smoke test: the model failed on a batch of shape {shape}: "
            f"{type(exc).__name__}: {_first(exc)}",
        ]
    finally:
        if hook is not None:
            hook.remove()
    batch = time.perf_counter() - began
    notes.append(f"smoke test: loaded in {loaded:.2f} s, a batch of {SMOKE_BATCH} in {batch:.3f} s")
    problems += output_problems(np.asarray(logits, dtype=np.float64), output)
    if hook is not None:
        found = tuple(shapes[0]) if shapes and shapes[0] is not None else None
        problem = activation_shape_problem(str(layer), found, manifest.get("gradcam_reshape"))
        if problem is not None:
            problems.append(f"gradcam_target_layer: {problem}")
        else:
            notes.append(f"Grad-CAM layer {layer!r}: activations of shape {found}")
    return problems


def _record_shapes(module: Any, layer: Any, shapes: list[Any], problems: list[str]) -> Any:
    """A forward hook on the Grad-CAM layer appending its output shapes to `shapes` (None when
    there is no torch module or no such layer, with the problem noted)."""
    if module is None or not isinstance(layer, str):
        return None
    try:
        target = module.get_submodule(layer)
    except AttributeError:
        problems.append(
            f"gradcam_target_layer: {layer!r} does not resolve to a module of the exported model"
        )
        return None
    return target.register_forward_hook(
        lambda _m, _i, out: shapes.append(getattr(out, "shape", None))
    )


def output_problems(logits: Any, output: dict) -> list[str]:
    import numpy as np

    if logits.ndim != 2 or logits.shape[0] != SMOKE_BATCH:
        return [f"output: the model returned shape {logits.shape}, expected ({SMOKE_BATCH}, K)"]
    if not np.isfinite(logits).all():
        return ["output: the model returned NaN or infinite values"]
    columns, index = logits.shape[1], output["positive_index"]
    if index >= columns:
        return [
            f"output/positive_index: the model has {columns} output column(s); the manifest's "
            f"positive_index is {index}"
        ]
    if output["activation"] == "softmax" and columns < 2:
        return ["output/activation: a softmax output needs at least 2 columns"]
    if output["activation"] == "softmax":
        shifted = logits - logits.max(axis=1, keepdims=True)
        scores = (np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True))[:, index]
    else:
        scores = np.array([1 / (1 + math.exp(-v)) for v in logits[:, index]])
    if not ((scores >= 0) & (scores <= 1)).all():
        return ["output: the scores after the declared activation are outside 0..1"]
    return []


def _loader(model_format: str, model_bytes: bytes) -> tuple[Any, Any]:
    """(a function from a float32 batch to numpy logits, the torch module or None)."""
    if model_format == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise ImportError(
                "onnxruntime is not installed: the local smoke test of an ONNX package needs it "
                "(pip install onnxruntime), or skip it with --no-smoke"
            ) from None
        session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return (lambda images: session.run(None, {name: images})[0]), None
    try:
        import torch
    except ImportError:
        raise ImportError(TORCH_MISSING) from None
    program = torch.export.load(io.BytesIO(model_bytes))
    module = torch.export.unflatten(program)

    def run(images: Any) -> Any:
        with torch.no_grad():
            out = module(torch.from_numpy(images))
        if isinstance(out, (tuple, list)) and len(out) == 1:
            out = out[0]
        return out.detach().float().numpy()

    return run, module


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""
