"""A small FR model whose forward takes 0.3 s: long enough for a test to act while
`frlite convert` is between creating its temp folder and renaming it (signals, races)."""
from __future__ import annotations

import time

import torch
from torch import nn

from .small_fr import classifier


class Slow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = classifier()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.3)
        return self.inner(x)


def slow_classifier() -> nn.Module:
    return Slow().eval()
