"""Five torchvision models, as a vendor would adapt them to a 1 x 64 x 64 chest-radiograph input.

Each callable returns an untrained model (``weights=None``: nothing is downloaded) whose first
layer takes one channel (or whose input channel is repeated to three) and whose head gives one
logit, read with a sigmoid, as the manifests beside this file declare
(``manifests/<name>.json``). Build one with the client (``pip install ./clients/python[build]``)::

    blindspot build --path clients/python/examples \\
        --model torchvision_models:vit_b_16 \\
        --manifest clients/python/examples/manifests/vit_b_16.json --out vit_b_16.tar.gz

The Grad-CAM target layers follow pytorch-grad-cam's advice for each family (the last
convolutional stage; for the ViT, the first LayerNorm of the last encoder block, whose (N, T, D)
tokens the manifest's ``gradcam_reshape`` turns into a 4 x 4 map).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

IMAGE_SIZE = 64


def _one_channel(conv: nn.Conv2d) -> nn.Conv2d:
    """The same convolution for one input channel (untrained, so nothing to average)."""
    return nn.Conv2d(
        1,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=conv.bias is not None,
    )


def densenet121() -> nn.Module:
    model = torchvision.models.densenet121(weights=None)
    model.features.conv0 = _one_channel(model.features.conv0)
    model.classifier = nn.Linear(model.classifier.in_features, 1)
    return model


def resnet50() -> nn.Module:
    model = torchvision.models.resnet50(weights=None)
    model.conv1 = _one_channel(model.conv1)
    model.fc = nn.Linear(model.fc.in_features, 1)
    return model


class RepeatChannels(nn.Module):
    """A three-channel network fed a one-channel image by repeating it (the other way a vendor
    keeps an RGB architecture untouched)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.expand(-1, 3, -1, -1))


def efficientnet_b0() -> nn.Module:
    net = torchvision.models.efficientnet_b0(weights=None)
    head = net.classifier[1]
    assert isinstance(head, nn.Linear)
    net.classifier[1] = nn.Linear(head.in_features, 1)
    return RepeatChannels(net)


def convnext_tiny() -> nn.Module:
    model = torchvision.models.convnext_tiny(weights=None)
    stem = model.features[0][0]
    assert isinstance(stem, nn.Conv2d)
    model.features[0][0] = _one_channel(stem)
    head = model.classifier[2]
    assert isinstance(head, nn.Linear)
    model.classifier[2] = nn.Linear(head.in_features, 1)
    return model


def vit_b_16() -> nn.Module:
    # torchvision's own argument: position embeddings for a 4 x 4 patch grid plus the class token.
    model = torchvision.models.vit_b_16(weights=None, image_size=IMAGE_SIZE)
    model.conv_proj = _one_channel(model.conv_proj)
    model.heads.head = nn.Linear(model.heads.head.in_features, 1)
    return model


MODELS = {
    "densenet121": densenet121,
    "resnet50": resnet50,
    "efficientnet_b0": efficientnet_b0,
    "convnext_tiny": convnext_tiny,
    "vit_b_16": vit_b_16,
}
