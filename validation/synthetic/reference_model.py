"""The reference "vendor" model used by the demo, the tests and the benchmarks.

`TinyLesionNet` is a deliberately small CNN for one-channel 64x64 radiograph crops that emits one
logit per image (positive-class score = sigmoid(logit)). Its convolutional blocks are named
(`block1`..`block3`) so that a manifest can point Grad-CAM at a dotted path; `block3` is the last
convolutional block and the intended target layer.

Plain torch/numpy, no Django: this module plays the vendor's side, so nothing here may assume it
runs inside Blindspot. The platform itself never imports a vendor's class: it only ever loads the
exported program, and only inside the sandboxed runner (`validation.runner`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from validation.packaging import export_model

GRADCAM_TARGET_LAYER = "block3"
INPUT_SHAPE = (1, 64, 64)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class TinyLesionNet(nn.Module):
    """Three conv blocks (64 -> 32 -> 16 px), global average pooling, one linear logit."""

    def __init__(self, widths: tuple[int, int, int] = (8, 16, 32)) -> None:
        super().__init__()
        self.block1 = _conv_block(INPUT_SHAPE[0], widths[0])
        self.block2 = _conv_block(widths[0], widths[1])
        self.block3 = _conv_block(widths[1], widths[2])
        self.head = nn.Linear(widths[2], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.block1(x), 2)
        x = F.max_pool2d(self.block2(x), 2)
        x = self.block3(x)
        return self.head(x.mean(dim=(2, 3)))


def train_reference_model(
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 4,
    seed: int = 0,
    threads: int = 2,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
) -> nn.Module:
    """Train a `TinyLesionNet` on (N, 1, 64, 64) float32 images and 0/1 labels, in eval mode.

    Deterministic for a given seed and thread count (seeded init and shuffling, CPU only). The
    global torch thread count is restored afterwards so callers are not surprised.
    """
    if x.ndim != 4 or tuple(x.shape[1:]) != INPUT_SHAPE:
        raise ValueError(f"expected images of shape (N, {', '.join(map(str, INPUT_SHAPE))})")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError("x and y must be non-empty and of the same length")

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = TinyLesionNet()
        optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
        loss_fn = nn.BCEWithLogitsLoss()
        images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        labels = torch.from_numpy(np.asarray(y)).float().reshape(-1, 1)

        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(images), batch_size):
                idx = order[start : start + batch_size]
                optimiser.zero_grad(set_to_none=True)
                loss = loss_fn(model(images[idx]), labels[idx])
                loss.backward()
                optimiser.step()
        return model.eval()
    finally:
        torch.set_num_threads(previous_threads)


def export_program(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """Export `model` (put in eval mode) with a dynamic batch dimension of 1..1024."""
    return export_model(model, example)
