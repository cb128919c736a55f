"""What a Grad-CAM target layer must produce, said once for the builder and the sandboxed worker.

Grad-CAM weights a layer's feature maps by their pooled gradients, so the layer must output
4-D activations (N, C, H, W). A token model's layer (a ViT's ``encoder_layer_11.ln_1``: (N, T, D))
qualifies only when the manifest declares how its tokens form a map (``gradcam_reshape``, as
pytorch-grad-cam's ``reshape_transform`` does in its ViT tutorial): drop the first
``skip_tokens`` (a class token), lay the remaining ``grid`` h x w tokens out row by row, channels
first, which needs T - skip_tokens = h * w. Plain Python: no torch, so the worker and the builder
share it without the one importing the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_SHAPE_TEXT = 80
# The manifest schema's limits on a declared reshape (`manifest.MANIFEST_SCHEMA`).
RESHAPE_LAYOUTS = ("tokens",)
MAX_GRID_SIDE = 256
MAX_SKIP_TOKENS = 16


def reshape_problem(reshape: Any) -> str | None:
    """None when `reshape` is a well-formed ``gradcam_reshape``, else what is wrong with it."""
    if not isinstance(reshape, Mapping) or set(reshape) - {"layout", "grid", "skip_tokens"}:
        return "gradcam_reshape must be an object with layout, grid and skip_tokens"
    if reshape.get("layout") not in RESHAPE_LAYOUTS:
        return f"gradcam_reshape.layout must be one of {', '.join(RESHAPE_LAYOUTS)}"
    grid = reshape.get("grid")
    if not (
        isinstance(grid, Sequence)
        and len(grid) == 2
        and all(_int_in(side, 1, MAX_GRID_SIDE) for side in grid)
    ):
        return f"gradcam_reshape.grid must be [height, width], each 1..{MAX_GRID_SIDE}"
    if not _int_in(reshape.get("skip_tokens", 0), 0, MAX_SKIP_TOKENS):
        return f"gradcam_reshape.skip_tokens must be 0..{MAX_SKIP_TOKENS}"
    return None


def activation_shape_problem(
    layer: str, shape: Sequence[int] | None, reshape: Mapping[str, Any] | None = None
) -> str | None:
    """None when `shape` suits Grad-CAM (with the declared token `reshape`, if any), else the
    refusal naming `layer`, what it produced and the rule (`shape` None: the layer did not output
    one tensor)."""
    found = "no single tensor" if shape is None else f"activations of shape {tuple(shape)}"
    found = found[:MAX_SHAPE_TEXT]
    name = layer[:MAX_SHAPE_TEXT]
    if reshape is not None:
        problem = reshape_problem(reshape)
        if problem is not None:
            return problem
        height, width = reshape["grid"]
        skip = reshape.get("skip_tokens", 0)
        if shape is not None and len(shape) == 3 and shape[1] - skip == height * width:
            return None
        return (
            f"the Grad-CAM target layer {name!r} produces {found}; with the declared "
            "gradcam_reshape, Grad-CAM needs tokens (N, T, D) with T - skip_tokens = grid "
            f"height * width (T - {skip} = {height} * {width}, so T = {height * width + skip})"
        )
    if shape is not None and len(shape) == 4:
        return None
    return (
        f"the Grad-CAM target layer {name!r} produces {found}; Grad-CAM needs 4-D activations "
        "(N, C, H, W) from a layer with a spatial grid (a convolutional layer), or, for a token "
        "model such as a ViT, tokens (N, T, D) with a gradcam_reshape declared in the manifest"
    )


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
