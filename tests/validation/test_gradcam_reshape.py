"""A token layer's Grad-CAM through the manifest's declared reshape (issue 17, item 8).

The rule (pure): a 3-D layer (N, T, D) qualifies only with a ``gradcam_reshape`` whose grid fits
its tokens (T - skip_tokens = h * w); a declared reshape on a 4-D layer, or one that does not fit,
is refused with the rule. The worker's explainer, given the reshape, computes the same maps as
pytorch-grad-cam called directly with the ``reshape_transform`` of its ViT tutorial.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from blindspot_client.package.gradcam_layer import activation_shape_problem, reshape_problem
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from validation.packaging import build_package, default_manifest, export_model, manifest_errors
from validation.runner.explain import GradCamExplainer, LayerShapeError, tokens_to_map

LAYER = "encoder.layers.encoder_layer_1.ln_1"
RESHAPE = {"layout": "tokens", "grid": [4, 4], "skip_tokens": 1}


# -- the rule ------------------------------------------------------------------------------------


def test_a_4d_layer_needs_no_reshape():
    assert activation_shape_problem("layer4", (2, 512, 2, 2)) is None


def test_tokens_fit_a_declared_grid():
    assert activation_shape_problem(LAYER, (2, 17, 768), RESHAPE) is None
    no_class_token = {"layout": "tokens", "grid": [7, 7]}  # a Swin-like layer: every token a patch
    assert activation_shape_problem("norm", (3, 49, 96), no_class_token) is None


def test_tokens_without_a_reshape_are_refused_with_the_way_out():
    problem = activation_shape_problem(LAYER, (2, 17, 768))
    assert problem is not None
    assert "(2, 17, 768)" in problem and "gradcam_reshape" in problem


@pytest.mark.parametrize(
    ("shape", "found"),
    [
        ((2, 16, 768), "(2, 16, 768)"),  # the class token not counted: 16 - 1 != 16
        ((2, 197, 768), "(2, 197, 768)"),  # a 224-pixel ViT's 14 x 14 grid
        ((2, 768, 4, 4), "(2, 768, 4, 4)"),  # already a map: the reshape would scramble it
        (None, "no single tensor"),
    ],
)
def test_a_reshape_that_does_not_fit_is_refused_with_the_rule(shape, found):
    problem = activation_shape_problem(LAYER, shape, RESHAPE)
    assert problem is not None
    assert found in problem
    assert "T - skip_tokens = grid height * width (T - 1 = 4 * 4, so T = 17)" in problem


@pytest.mark.parametrize(
    "reshape",
    [
        {"layout": "patches", "grid": [4, 4]},
        {"layout": "tokens", "grid": [4]},
        {"layout": "tokens", "grid": [0, 4]},
        {"layout": "tokens", "grid": [4, 4], "skip_tokens": 17},
        {"layout": "tokens", "grid": [4, 4], "skip_tokens": True},
        {"layout": "tokens", "grid": [4, 4], "extra": 1},
        [4, 4],
    ],
)
def test_a_malformed_reshape_is_refused(reshape):
    assert reshape_problem(reshape) is not None
    assert activation_shape_problem(LAYER, (2, 17, 8), reshape) is not None


def test_the_manifest_schema_holds_the_same_limits():
    manifest = default_manifest(name="ViT", version="1", gradcam_target_layer=LAYER)
    assert manifest_errors({**manifest, "gradcam_reshape": RESHAPE}) == []
    too_big = {**RESHAPE, "grid": [4, 257]}
    assert any(
        "gradcam_reshape/grid" in e
        for e in manifest_errors({**manifest, "gradcam_reshape": too_big})
    )
    unknown = {**RESHAPE, "layout": "swin"}
    assert any(
        "gradcam_reshape/layout" in e
        for e in manifest_errors({**manifest, "gradcam_reshape": unknown})
    )
    onnx = {**manifest, "gradcam_target_layer": None, "gradcam_reshape": RESHAPE}
    assert "gradcam_reshape: declared without a gradcam_target_layer to reshape" in manifest_errors(
        onnx, model_format="onnx"
    )


# -- the maps ------------------------------------------------------------------------------------


class _Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, num_heads=2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.ln_1(tokens)
        tokens = tokens + self.attention(x, x, x, need_weights=False)[0]
        return tokens + self.mlp(tokens)


class _Encoder(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            OrderedDict(encoder_layer_0=_Block(dim), encoder_layer_1=_Block(dim))
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.layers(tokens)


class TinyViT(nn.Module):
    """torchvision's ViT in miniature: 16 x 16 patches of a 64 x 64 image, a class token, position
    embeddings, two attention blocks, a head on the class token."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.conv_proj = nn.Conv2d(1, dim, kernel_size=16, stride=16)
        self.class_token = nn.Parameter(torch.randn(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, 17, dim) * 0.1)
        self.encoder = _Encoder(dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.conv_proj(images).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(images.shape[0], -1, -1), patches], dim=1)
        return self.head(self.encoder(tokens + self.position)[:, 0])


def _tutorial_reshape(tensor, height=4, width=4):
    """pytorch-grad-cam's tutorials/vision_transformers.md, verbatim in substance."""
    result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


def _model_and_images() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return TinyViT().eval(), torch.randn(4, 1, 64, 64)


def test_tokens_to_map_is_the_tutorials_reshape():
    tokens = torch.randn(3, 17, 5)
    assert torch.equal(tokens_to_map(tokens, RESHAPE), _tutorial_reshape(tokens))


def test_the_explainers_cam_matches_pytorch_grad_cam_with_the_tutorials_reshape():
    model, images = _model_and_images()
    reference_cam = GradCAM(
        model=model,
        target_layers=[model.get_submodule(LAYER)],
        reshape_transform=_tutorial_reshape,
    )
    reference = reference_cam(input_tensor=images, targets=[ClassifierOutputTarget(0)] * 4)
    reference_cam.activations_and_grads.release()

    # As the worker runs it: the exported program, unflattened, only the layer's own grads.
    module = torch.export.unflatten(export_model(model, images))
    outputs, maps = GradCamExplainer(module)(images, LAYER, 0, reshape=RESHAPE)

    assert maps.shape == (4, 64, 64)
    assert np.ptp(maps) > 0.5  # a real map, not a constant
    np.testing.assert_allclose(maps, reference, atol=1e-5)
    np.testing.assert_allclose(outputs.numpy(), model(images).detach().numpy(), atol=1e-5)


def test_the_explainer_refuses_tokens_without_the_reshape():
    model, images = _model_and_images()
    module = torch.export.unflatten(export_model(model, images))
    with pytest.raises(LayerShapeError, match="gradcam_reshape"):
        GradCamExplainer(module)(images, LAYER, 0)


def test_the_builder_accepts_a_token_layer_only_with_a_fitting_reshape(tmp_path):
    model, images = _model_and_images()
    manifest = default_manifest(name="Tiny ViT", version="1", gradcam_target_layer=LAYER)
    with pytest.raises(ValueError, match="gradcam_reshape"):
        build_package(
            model=model, example_input=images[:2], manifest=manifest, out_path=tmp_path / "a"
        )
    wrong = {**manifest, "gradcam_reshape": {**RESHAPE, "grid": [2, 8], "skip_tokens": 0}}
    with pytest.raises(ValueError, match=r"T - 0 = 2 \* 8, so T = 16"):
        build_package(
            model=model, example_input=images[:2], manifest=wrong, out_path=tmp_path / "b"
        )
    assert not (tmp_path / "b").exists()
    built = build_package(
        model=model,
        example_input=images[:2],
        manifest={**manifest, "gradcam_reshape": RESHAPE},
        out_path=tmp_path / "c",
    )
    assert built.is_file()
