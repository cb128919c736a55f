"""A Grad-CAM target layer must output 4-D activations (N, C, H, W) (issue 14, item 10).

A ViT's ``encoder.layers.encoder_layer_11.ln_1`` (tokens, (N, T, D)) passed the builder and then
crashed the intake smoke test with a truncated traceback. The builder now runs the model on the
example input and refuses such a layer before writing the package; intake (a hand-made package
that skipped the builder) refuses it through the smoke test with the same rule, not a traceback.
The token model is a tiny ViT-shaped network, randomly initialised.
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict

import pytest
import torch
from torch import nn

from validation.errors import ApplicationError
from validation.packaging import build_package, default_manifest, export_model
from validation.runner.sandbox import detect_sandbox
from validation.services.package_smoke import package_smoke_test

TOKEN_LAYER = "encoder.layers.encoder_layer_0.ln_1"
TOKEN_SHAPE = "(2, 16, 8)"  # a batch of 2, 16 patches of 16x16 in a 64x64 image, 8 features


class _EncoderBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.mlp = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens + self.mlp(self.ln_1(tokens))


class _Encoder(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(OrderedDict(encoder_layer_0=_EncoderBlock(dim)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.layers(tokens)


class TinyViT(nn.Module):
    """Patch embedding (a convolution: 4-D), then token layers (3-D), then a linear head."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.conv_proj = nn.Conv2d(1, dim, kernel_size=16, stride=16)
        self.encoder = _Encoder(dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.conv_proj(images).flatten(2).transpose(1, 2)
        return self.head(self.encoder(tokens).mean(dim=1))


def _manifest(layer: str) -> dict:
    return default_manifest(name="Tokens", version="1.0", gradcam_target_layer=layer)


def _example() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(2, 1, 64, 64)


def test_the_builder_refuses_a_layer_without_4d_activations(tmp_path):
    out = tmp_path / "model.tar.gz"
    with pytest.raises(ValueError) as caught:
        build_package(
            model=TinyViT(), example_input=_example(), manifest=_manifest(TOKEN_LAYER), out_path=out
        )
    message = str(caught.value)
    assert TOKEN_LAYER in message and TOKEN_SHAPE in message, message
    assert "4-D activations (N, C, H, W)" in message
    assert not out.exists()  # refused before anything was written


def test_the_builder_accepts_the_patch_embedding(tmp_path):
    out = tmp_path / "model.tar.gz"
    built = build_package(
        model=TinyViT(), example_input=_example(), manifest=_manifest("conv_proj"), out_path=out
    )
    assert built.is_file()


@pytest.mark.sandbox
def test_intake_refuses_a_token_layer_with_the_rule_not_a_traceback(settings):
    if not detect_sandbox().isolated:
        pytest.skip("no sandbox here to run the smoke test in")
    # What a vendor who skipped the builder uploads: the model exported as the builder would.
    buffer = io.BytesIO()
    torch.export.save(export_model(TinyViT(), _example()), buffer)
    model_bytes = buffer.getvalue()
    with pytest.raises(ApplicationError) as caught:
        package_smoke_test(
            sha256=hashlib.sha256(model_bytes).hexdigest(),
            manifest=_manifest(TOKEN_LAYER),
            model_bytes=model_bytes,
            model_format="pt2",
        )
    refusal = caught.value
    assert refusal.message.startswith("Smoke test failed: the Grad-CAM target layer")
    assert TOKEN_LAYER in refusal.message and TOKEN_SHAPE in refusal.message, refusal.message
    assert "4-D activations (N, C, H, W)" in refusal.message
    assert "gradcam_reshape" in refusal.message  # the way out for a token layer (issue 17)
    assert "Traceback" not in refusal.message
    assert not any("Traceback" in error for error in refusal.errors), refusal.errors
