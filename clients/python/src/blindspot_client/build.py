"""`blindspot build`: every problem with the vendor's inputs at once, then the package.

The checks run in order but none stops the others: the manifest (each schema problem at its
path), the `--model` callable (importable, callable, returns an nn.Module), the weights file
(exists, a state dict that `torch.load(weights_only=True)` reads, fits the model: missing and
unexpected keys and shape mismatches named), the example batch, the Grad-CAM layer (exists,
4-D activations) and the output (one (N, K) tensor with the manifest's positive column). Only
when all pass is the model exported (`blindspot_client.package.builder.build_package`)."""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blindspot_client.package.gradcam_layer import activation_shape_problem
from blindspot_client.package.manifest import manifest_errors

TORCH_MISSING = (
    "torch is not installed: building a package exports your model with torch.export. "
    "Install the client with its build extra: pip install 'blindspot-client[build]' "
    "(from a checkout: pip install './clients/python[build]')"
)
MAX_LISTED_KEYS = 8


@dataclass
class BuildRequest:
    model: str
    manifest: Path
    out: Path
    weights: Path | None = None
    example_batch: int = 2
    model_format: str = "pt2"
    paths: list[Path] = field(default_factory=list)
    # The version this package succeeds (the manifest's `supersedes`, set or replaced).
    supersedes: str | None = None


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def read_manifest(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"manifest: cannot read {path}: {exc.strerror or exc}")
        return None
    except ValueError as exc:
        problems.append(f"manifest: {path} is not valid JSON: {exc}")
        return None
    if not isinstance(manifest, dict):
        problems.append(f"manifest: {path} must hold a JSON object")
        return None
    return manifest


def _keys(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = len(keys) - MAX_LISTED_KEYS
    return shown + (f" and {more} more" if more > 0 else "")


def load_model(spec: str, paths: list[Path], problems: list[str]) -> Any:
    """The nn.Module `module:callable` returns, or None with the reason in `problems`."""
    from torch import nn

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        problems.append(f"model: --model must look like 'package.module:callable', got {spec!r}")
        return None
    for path in reversed(paths):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the vendor's module may fail in any way while importing
        hint = "" if paths else " (add your code's folder with --path)"
        problems.append(f"model: cannot import {module_name!r}: {type(exc).__name__}: {exc}{hint}")
        return None
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            problems.append(f"model: {module_name!r} has no attribute {attribute!r}")
            return None
        target = getattr(target, part)
    if not callable(target):
        problems.append(f"model: {spec} is a {type(target).__name__}, not a callable")
        return None
    try:
        model = target()
    except Exception as exc:
        problems.append(f"model: calling {spec}() failed: {type(exc).__name__}: {exc}")
        return None
    if not isinstance(model, nn.Module):
        problems.append(f"model: {spec}() returned a {type(model).__name__}, not a torch nn.Module")
        return None
    return model


def load_weights(model: Any, weights: Path, problems: list[str]) -> None:  # noqa: C901
    import torch

    if not weights.is_file():
        problems.append(f"weights: {weights} does not exist or is not a file")
        return
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        problems.append(
            f"weights: cannot read {weights} as a state dict (torch.load, weights_only): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
        return
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        problems.append(f"weights: {weights} holds a {type(state).__name__}, not a state dict")
        return
    if model is None:
        return
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs the model's {tuple(own[k].shape)}"
        for k in own
        if k in state
        and hasattr(state[k], "shape")
        and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing:
        problems.append(f"weights: missing keys the model needs: {_keys(missing)}")
    if unexpected:
        problems.append(f"weights: unexpected keys the model does not have: {_keys(unexpected)}")
    if mismatched:
        problems.append(f"weights: shapes do not fit: {_keys(mismatched)}")
    if not (missing or unexpected or mismatched):
        try:
            model.load_state_dict(state)
        except Exception as exc:
            problems.append(f"weights: the model refused them: {exc}")


def example_batch(manifest: dict[str, Any] | None, batch: int, problems: list[str]) -> Any:
    import torch

    if batch < 2:
        # A batch of one would let torch.export specialise the batch dimension to 1.
        problems.append("example-batch: give at least 2 (the batch dimension must stay dynamic)")
    spec: Any = (manifest or {}).get("input")
    try:
        shape = (max(batch, 2), int(spec["channels"]), int(spec["height"]), int(spec["width"]))
    except (TypeError, KeyError, ValueError):
        return None  # the manifest's own problems say why
    if min(shape) < 1:
        return None
    return torch.randn(*shape)


def model_problems(model: Any, example: Any, manifest: dict[str, Any]) -> list[str]:
    """The Grad-CAM layer and the output, from one forward pass of `model` on `example`."""
    import torch

    problems: list[str] = []
    layer_name = manifest.get("gradcam_target_layer")
    shapes: list[tuple[int, ...] | None] = []
    hook = None
    if isinstance(layer_name, str):
        try:
            layer = model.get_submodule(layer_name)
        except AttributeError as exc:
            problems.append(f"gradcam_target_layer: the model has no layer {layer_name!r} ({exc})")
        else:

            def record(module: Any, inputs: Any, output: Any) -> None:
                shapes.append(tuple(output.shape) if isinstance(output, torch.Tensor) else None)

            hook = layer.register_forward_hook(record)
    try:
        with torch.no_grad():
            output = model.eval()(example)
    except Exception as exc:
        problems.append(
            f"model: the forward pass on a batch of shape {tuple(example.shape)} failed: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
        return problems
    finally:
        if hook is not None:
            hook.remove()
    if hook is not None:
        if not shapes:
            problems.append(
                f"gradcam_target_layer: {layer_name!r} is not called by the model's forward"
            )
        else:
            problem = activation_shape_problem(
                str(layer_name), shapes[0], manifest.get("gradcam_reshape")
            )
            if problem is not None:
                problems.append(f"gradcam_target_layer: {problem}")
    problems += output_problems(output, manifest)
    return problems


def output_problems(output: Any, manifest: dict[str, Any]) -> list[str]:
    import torch

    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        found = (
            f"a tensor of shape {tuple(output.shape)}"
            if isinstance(output, torch.Tensor)
            else f"a {type(output).__name__}"
        )
        return [f"output: the model must return one tensor of shape (N, K); it returned {found}"]
    out = manifest.get("output") or {}
    index = out.get("positive_index")
    if isinstance(index, int) and index >= output.shape[1]:
        return [
            f"output/positive_index: {index} is outside the model's {output.shape[1]} output "
            "column(s)"
        ]
    if out.get("activation") == "softmax" and output.shape[1] < 2:
        return ["output/activation: softmax needs at least two output columns"]
    return []


def build(request: BuildRequest) -> tuple[Path | None, list[str]]:
    """(the package, []) or (None, every problem found)."""
    problems: list[str] = []
    if request.model_format not in ("pt2", "onnx"):
        problems.append(f"format: must be pt2 or onnx, got {request.model_format!r}")
    manifest = read_manifest(request.manifest, problems)
    if manifest is not None and request.supersedes is not None:
        manifest["supersedes"] = request.supersedes
    if manifest is not None:
        problems += [
            f"manifest: {e}" for e in manifest_errors(manifest, model_format=request.model_format)
        ]
    if not have_torch():
        return None, [*problems, TORCH_MISSING]
    model = load_model(request.model, request.paths, problems)
    if request.weights is not None:
        load_weights(model, request.weights, problems)
    example = example_batch(manifest, request.example_batch, problems)
    if model is not None and example is not None and manifest is not None:
        problems += model_problems(model, example, manifest)
    if problems:
        return None, problems
    from blindspot_client.package.builder import build_package

    assert manifest is not None and model is not None
    try:
        out = build_package(
            model=model,
            example_input=example,
            manifest=manifest,
            out_path=request.out,
            model_format=request.model_format,
        )
    except Exception as exc:  # torch.export's own refusals (data-dependent control flow ...)
        return None, [f"export: {type(exc).__name__}: {exc}"]
    return out, []
