"""What a Grad-CAM target layer must produce, said once for the builder and the sandboxed worker.

Grad-CAM weights a layer's feature maps by their pooled gradients, so the layer must output
4-D activations (N, C, H, W). A token model's layers (a ViT's ``encoder_layer_11.ln_1``: (N, T, D))
are refused with the shape found; name a layer that still has a spatial grid (the patch
embedding's convolution, or a convolutional stage). Plain Python: no torch, so the worker and
the builder share it without the one importing the other.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_SHAPE_TEXT = 80


def activation_shape_problem(layer: str, shape: Sequence[int] | None) -> str | None:
    """None when `shape` suits Grad-CAM, else the refusal naming `layer` and what it produced
    (`shape` None: the layer did not output one tensor)."""
    if shape is not None and len(shape) == 4:
        return None
    found = "no single tensor" if shape is None else f"activations of shape {tuple(shape)}"
    found = found[:MAX_SHAPE_TEXT]
    name = layer[:MAX_SHAPE_TEXT]
    return (
        f"the Grad-CAM target layer {name!r} produces {found}; Grad-CAM needs 4-D activations "
        "(N, C, H, W) from a layer with a spatial grid (a convolutional layer; for a token "
        "model such as a ViT, the patch embedding's convolution, not a token layer)"
    )
