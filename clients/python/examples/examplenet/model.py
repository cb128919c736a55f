"""An example vendor model for `blindspot build`: a small CNN for 64x64 single-channel chest
radiographs, one logit (sigmoid) per image. `build` is the callable `--model` names:

    blindspot build --path clients/python/examples --model examplenet.model:build \\
        --manifest clients/python/examples/examplenet/manifest.json --out examplenet.tar.gz

Untrained (seeded): it shows the workflow, not a useful model; pass `--weights` with your own
state dict to package trained weights."""

import torch
from torch import nn


class ExampleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def build() -> nn.Module:
    torch.manual_seed(0)
    return ExampleNet()
