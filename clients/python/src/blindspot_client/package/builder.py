"""The vendor-side builder: export a PyTorch module and write a package archive."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blindspot_client.package.gradcam_layer import activation_shape_problem
from blindspot_client.package.manifest import (
    MANIFEST_NAME,
    MODEL_NAME,
    ONNX_MODEL_NAME,
    manifest_errors,
)

if TYPE_CHECKING:  # torch is imported when a package is built, never by intake.
    import torch
    from torch import nn

MAX_BATCH = 1024


def export_model(
    model: nn.Module, example_input: torch.Tensor, *, max_batch: int = MAX_BATCH
) -> torch.export.ExportedProgram:
    """`torch.export` the model in eval mode with a dynamic batch dimension (1..max_batch)."""
    import torch

    model.eval()
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    return torch.export.export(model, (example_input,), dynamic_shapes=({0: batch},))


def build_package(
    *,
    model: nn.Module,
    example_input: torch.Tensor,
    manifest: dict[str, Any],
    out_path: Path,
    model_format: str = "pt2",
) -> Path:
    """Export `model` and write a package (`manifest.json` + `model.pt2`, or `model.onnx` with
    `model_format="onnx"`) to `out_path`.

    Checks what the vendor can check locally before uploading: the manifest is valid, the example
    input has the declared shape, the Grad-CAM layer exists and outputs 4-D activations on the
    example input (`gradcam_layer`; tokens when the manifest declares a `gradcam_reshape` that
    fits them), and the output has the column the
    manifest names. The archive is reproducible at the tar level (sorted members, mtime 0, uid and
    gid 0, no owner names, gzip mtime 0). Raises `ValueError` on any of those problems.
    """
    import torch

    _check_inputs(model, example_input, manifest, model_format)
    program = export_model(model, example_input)
    with torch.no_grad():
        output = program.module()(example_input)
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        raise ValueError("the model must return one tensor of shape (N, K)")
    if manifest["output"]["positive_index"] >= output.shape[1]:
        raise ValueError("output/positive_index is outside the model's output columns")

    if model_format == "onnx":
        model_member, model_bytes = ONNX_MODEL_NAME, _onnx_bytes(program)
    else:
        pt2 = io.BytesIO()
        torch.export.save(program, pt2)
        model_member, model_bytes = MODEL_NAME, pt2.getvalue()
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    members = sorted({MANIFEST_NAME: manifest_bytes, model_member: model_bytes}.items())

    return _write_reproducible_tar(Path(out_path), members)


def _check_inputs(
    model: nn.Module, example_input: torch.Tensor, manifest: dict[str, Any], model_format: str
) -> None:
    """What can be checked before exporting: format, manifest, example shape, Grad-CAM layer."""
    if model_format not in ("pt2", "onnx"):
        raise ValueError(f"model_format must be 'pt2' or 'onnx', got {model_format!r}")
    errors = manifest_errors(manifest, model_format=model_format)
    if errors:
        raise ValueError("invalid manifest: " + "; ".join(errors))
    spec = manifest["input"]
    expected = (spec["channels"], spec["height"], spec["width"])
    if example_input.ndim != 4 or tuple(example_input.shape[1:]) != expected:
        raise ValueError(f"example_input must have shape (N, {', '.join(map(str, expected))})")
    if example_input.shape[0] < 2:
        # A batch of one would let torch.export specialise the batch dimension to 1.
        raise ValueError("example_input needs a batch of at least 2")
    if manifest.get("gradcam_target_layer") is not None:
        _check_gradcam_layer(
            model,
            example_input,
            manifest["gradcam_target_layer"],
            manifest.get("gradcam_reshape"),
        )


def _check_gradcam_layer(
    model: nn.Module,
    example_input: torch.Tensor,
    name: str,
    reshape: dict[str, Any] | None = None,
) -> None:
    """The layer exists and, on the example input, outputs 4-D activations, or tokens that the
    declared `reshape` fits (`gradcam_layer`)."""
    import torch

    try:
        layer = model.get_submodule(name)
    except AttributeError as exc:
        raise ValueError(f"gradcam_target_layer: {exc}") from None
    shapes: list[tuple[int, ...] | None] = []

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        shapes.append(tuple(output.shape) if isinstance(output, torch.Tensor) else None)

    hook = layer.register_forward_hook(record)
    try:
        with torch.no_grad():
            model.eval()(example_input)
    finally:
        hook.remove()
    if not shapes:
        raise ValueError(f"gradcam_target_layer: {name!r} is not called by the model's forward")
    problem = activation_shape_problem(name, shapes[0], reshape)
    if problem is not None:
        raise ValueError(f"gradcam_target_layer: {problem}")


def _write_reproducible_tar(out_path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A gzipped USTAR archive of `members`, the same bytes for the same members; written to a
    temporary file beside `out_path` and renamed into place."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".package-", dir=out_path.parent)
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
        ):
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp_name, out_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return out_path


def _onnx_bytes(program: torch.export.ExportedProgram) -> bytes:
    """One self-contained ONNX file from the exported program (dynamo exporter, dynamic batch)."""
    import torch

    onnx_program = torch.onnx.export(program, dynamo=True, external_data=False, verbose=False)
    if onnx_program is None:  # only the legacy exporter returns nothing
        raise RuntimeError("torch.onnx.export (dynamo) returned no program")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "model.onnx"
        onnx_program.save(str(target))
        return target.read_bytes()
