"""Grad-CAM over an unflattened exported program. Imported only by the sandboxed worker.

`torch.export.unflatten` gives back a module tree on which forward hooks fire and gradients flow,
so pytorch-grad-cam works on it unchanged and matches the eager model exactly. Only the target
block's parameters require grad: the backward pass then stops at that block instead of running
to the input, which halves the cost (field notes: resnet18 went from 9 to 20-25 img/s) with the same
CAM. A target without parameters (a ReLU, a pooling layer) falls back to an input that requires
grad, because with nothing requiring grad the backward pass has nothing to differentiate.

On a GPU the forward pass runs under the worker's autocast (if any), and the target layer's output
is cast back to float32 for pytorch-grad-cam, which turns activations and gradients into numpy
arrays (numpy has no bfloat16, and float16 CAMs would be coarse).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from blindspot_client.package.gradcam_layer import activation_shape_problem
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn


class UnknownLayerError(LookupError):
    pass


class LayerShapeError(ValueError):
    """The target layer's output is not 4-D activations (`gradcam_layer`)."""


class GradCamExplainer:
    def __init__(
        self,
        module: nn.Module,
        *,
        device: torch.device | str = "cpu",
        autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        self._module = module
        self._device = torch.device(device)
        self._autocast = autocast
        self._prepared_path: str | None = None
        self._input_needs_grad = False

    def __call__(
        self, images: torch.Tensor, target_layer: str, target_index: int
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Return (model output (N, K) on the module's device, CAMs (N, H, W) float32 numpy
        scaled to 0..1 per image)."""
        layer = self._prepare(target_layer)
        # Before GradCAM's hooks: a token layer's (N, T, D) output stops the pass with the rule,
        # not a reshape error deep inside pytorch-grad-cam.
        shape_check = layer.register_forward_hook(_require_4d(target_layer))
        # Registered before GradCAM's own hooks, so they see (and differentiate) float32.
        as_float = layer.register_forward_hook(_float32_output)
        cam = GradCAM(model=self._module, target_layers=[layer])
        try:
            with torch.enable_grad(), self._autocast():
                images = images.to(self._device)
                if self._input_needs_grad:
                    images = images.clone().requires_grad_(True)
                targets = [ClassifierOutputTarget(target_index)] * len(images)
                maps = cam(input_tensor=images, targets=targets)
            outputs = cam.outputs.detach()
        finally:
            shape_check.remove()
            as_float.remove()
            cam.activations_and_grads.release()
            self._module.zero_grad(set_to_none=True)
        return outputs, np.asarray(maps, dtype=np.float32)

    def _prepare(self, target_layer: str) -> nn.Module:
        try:
            layer = self._module.get_submodule(target_layer)
        except AttributeError:
            raise UnknownLayerError(f"the model has no layer {target_layer!r}") from None
        if target_layer != self._prepared_path:
            for parameter in self._module.parameters():
                parameter.requires_grad_(False)
            own = list(layer.parameters())
            for parameter in own:
                parameter.requires_grad_(True)
            self._input_needs_grad = not own
            self._prepared_path = target_layer
        return layer


def _require_4d(target_layer: str) -> Callable[[nn.Module, Any, Any], None]:
    def check(module: nn.Module, inputs: Any, output: Any) -> None:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else None
        problem = activation_shape_problem(target_layer, shape)
        if problem is not None:
            raise LayerShapeError(problem)

    return check


def _float32_output(module: nn.Module, inputs: Any, output: Any) -> Any:
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        return output.float()  # the same tensor when it is float32 already
    return output
