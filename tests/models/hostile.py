"""Models that misbehave on purpose, for the hostile-input tests (MODEL SPEC factories)."""
from __future__ import annotations

import torch
from torch import nn

from frlite.converter.fr.fr_layers import FRConv2d


class NaNHead(nn.Module):
    """An FR conv whose output goes through sqrt(x - 10): NaN for every input in [0, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = FRConv2d(3, 2, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, :, 0, 0] = 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.conv(x) - 10.0)


def nan_head() -> nn.Module:
    return NaNHead().eval()
