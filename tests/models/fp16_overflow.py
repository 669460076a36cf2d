"""A small FR segmentation net that fp16 arithmetic breaks before frlite's rewrites (MODEL SPEC factory).

Like the authors' UNet, its FR convs are unscaled (the batch-statistics norm after each rescales
anyway): coefficients are multiplied so conv outputs reach a few thousand, whose squares in the
norm (and the fused norm's pair products) exceed fp16's 65,504. The input stays [0, 1] images.
"""
from __future__ import annotations

import torch
from torch import nn

from frlite.converter.fr.fr_layers import FRConv2d, fr_layers

GAIN = 200.0  # conv outputs ~1e3 on [0, 1] inputs: squares ~1e6, pair products ~1e6


class Fp16OverflowNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            FRConv2d(3, 24, 3, padding=1, bias=False), nn.BatchNorm2d(24, affine=False, track_running_stats=False), nn.ReLU(),
            FRConv2d(24, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32, affine=False, track_running_stats=False), nn.ReLU(),
            FRConv2d(32, 2, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def fp16_overflow_net() -> nn.Module:
    model = Fp16OverflowNet()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, layer in fr_layers(model):
            w = layer.weight
            keep = tuple(slice(0, min(k, n)) for k, n in zip((3, 3, 2, 2), w.shape))
            gain = 1.0 if name == "body.6" else GAIN  # the head's logits stay O(10)
            values = torch.randn(w[keep].shape, generator=g) * gain
            w.zero_()
            w[keep] = values
    return model.eval()
