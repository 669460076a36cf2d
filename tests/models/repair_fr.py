"""The two FR models onnx2tf could not convert right (issue 14), built from frlite's FR layers.

- `strided_dilated`: a classifier whose FR conv has stride 2 AND dilation 2 (groups 4); TF's
  convolution refuses stride > 1 with dilation > 1, so onnx2tf stops on it.
- `kernel_eq_stride_up`: a decoder with FR ConvTranspose2d(24, 8, 2, stride=2, bias=True);
  onnx2tf's .tflite of it was wrong (0.445 of scale).
Both convert through frlite's ONNX repair passes (converter/onnx/onnx_repairs.py).
"""
from __future__ import annotations

import torch
from torch import nn

from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d, FRLinear
from tests.models.small_fr import fr_sparsify


class StridedDilated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = FRConv2d(3, 16, 3, padding=1)
        self.features = nn.Sequential(FRConv2d(16, 16, 3, stride=2, padding=2, dilation=2, groups=4), nn.ReLU())
        self.head = FRLinear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(torch.relu(self.stem(x)))
        return self.head(x.mean(dim=(2, 3)))


class KernelEqStrideUp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = FRConv2d(3, 24, 3, stride=2, padding=1)
        self.up = FRConvTranspose2d(24, 8, 2, stride=2, bias=True)
        self.out = FRConv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.up(torch.relu(self.enc(x)))))


def strided_dilated() -> nn.Module:
    return fr_sparsify(StridedDilated(), 11)


def kernel_eq_stride_up() -> nn.Module:
    return fr_sparsify(KernelEqStrideUp(), 12, box=(4, 4, 2, 2))
