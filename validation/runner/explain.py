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

A token layer (N, T, D) is explained through the manifest's declared ``gradcam_reshape``
(`gradcam_layer`), handed to pytorch-grad-cam as its ``reshape_transform``, exactly as its ViT
tutorial does: activations and gradients both become (N, D, h, w) maps.
"""

from __future__ import annotations

import contextlib
import functools
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
    """The target layer's output is neither 4-D activations nor tokens that the declared
    reshape fits (`gradcam_layer`)."""


def tokens_to_map(tokens: torch.Tensor, reshape: dict[str, Any]) -> torch.Tensor:
    """(N, T, D) tokens -> (N, D, h, w): the first ``skip_tokens`` dropped, the rest laid out
    row by row on ``grid`` [h, w] (pytorch-grad-cam's ViT ``reshape_transform``)."""
    height, width = reshape["grid"]
    patches = tokens[:, reshape.get("skip_tokens", 0) :, :]
    return patches.reshape(tokens.size(0), height, width, tokens.size(2)).permute(0, 3, 1, 2)


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
        self,
        images: torch.Tensor,
        target_layer: str,
        target_index: int,
        *,
        reshape: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Return (model output (N, K) on the module's device, CAMs (N, H, W) float32 numpy
        scaled to 0..1 per image); `reshape` is the manifest's ``gradcam_reshape``."""
        layer = self._prepare(target_layer)
        # Before GradCAM's hooks: a token layer's (N, T, D) output without a reshape that fits
        # stops the pass with the rule, not a reshape error deep inside pytorch-grad-cam.
        shape_check = layer.register_forward_hook(_require_shape(target_layer, reshape))
        # Registered before GradCAM's own hooks, so they see (and differentiate) float32.
        as_float = layer.register_forward_hook(_float32_output)
        transform = None if reshape is None else functools.partial(tokens_to_map, reshape=reshape)
        cam = GradCAM(model=self._module, target_layers=[layer], reshape_transform=transform)
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


def _require_shape(
    target_layer: str, reshape: dict[str, Any] | None
) -> Callable[[nn.Module, Any, Any], None]:
    def check(module: nn.Module, inputs: Any, output: Any) -> None:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else None
        problem = activation_shape_problem(target_layer, shape, reshape)
        if problem is not None:
            raise LayerShapeError(problem)

    return check


def _float32_output(module: nn.Module, inputs: Any, output: Any) -> Any:
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        return output.float()  # the same tensor when it is float32 already
    return output
