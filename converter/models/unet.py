"""The built-in FR UNet, with parameter names matching the authors' `unet_fr.pt`.

Classic UNet (n_channels=3, n_classes=2, bilinear=False) as in their repository. Two details a
converter must keep: every BatchNorm is `affine=False, track_running_stats=False`, so even in
eval() it normalises each input with that input's own per-channel statistics; and the decoder
pads the upsampled map to the skip connection's size, which matters for odd sizes (959 wide).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d


class DoubleConv(nn.Module):
    """(FR conv3x3 -> instance-statistics BatchNorm -> ReLU) x 2; keys `double_conv.{0,3}`."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None) -> None:
        super().__init__()
        mid = mid_channels or out_channels
        self.double_conv = nn.Sequential(
            FRConv2d(in_channels, mid, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid, affine=False, track_running_stats=False),
            nn.ReLU(inplace=True),
            FRConv2d(mid, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, affine=False, track_running_stats=False),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """FR transposed conv x2, pad to the skip's size (diff//2 before, rest after), concat, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = FRConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2, bias=False)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.up(x1)
        diff_y = x2.size(2) - x1.size(2)
        diff_x = x2.size(3) - x1.size(3)
        x1 = F.pad(x1, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = FRConv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FRUNet(nn.Module):
    """The authors' FR UNet; `width` scales the channels (64 in theirs) for small test models."""

    def __init__(self, n_channels: int = 3, n_classes: int = 2, width: int = 64) -> None:
        super().__init__()
        self.n_channels = n_channels
        self.n_classes = n_classes
        w = width
        self.inc = DoubleConv(n_channels, w)
        self.down1 = Down(w, 2 * w)
        self.down2 = Down(2 * w, 4 * w)
        self.down3 = Down(4 * w, 8 * w)
        self.down4 = Down(8 * w, 16 * w)
        self.up1 = Up(16 * w, 8 * w)
        self.up2 = Up(8 * w, 4 * w)
        self.up3 = Up(4 * w, 2 * w)
        self.up4 = Up(2 * w, w)
        self.outc = OutConv(w, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


def build_unet(n_channels: int = 3, n_classes: int = 2, width: int = 64) -> FRUNet:
    """Factory behind the built-in model spec `unet`."""
    return FRUNet(n_channels, n_classes, width)
