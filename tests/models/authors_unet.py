"""A UNet written the way the FR authors' repository writes it (their UNet / Down / Up / DoubleConv /
OutConv block structure, `x2.size()[2]` padding arithmetic, `torch.cat([x2, x1], dim=1)`), with
frlite's FR layers where they use `frereg` ones. Its parameter names are those of their checkpoint
(`inc.double_conv.0.weight`, `up1.up.weight`, ...), so `authors_unet` loads unet_fr.pt.

frlite knows none of these classes: it is the generality check for the dataflow fusions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d


# the layer classes: frlite's FR layers, or the `frereg` package's (set by UNet)
Conv2d: type = FRConv2d
ConvTranspose2d: type = FRConvTranspose2d


class DoubleConv(nn.Module):
    """(convolution => [BN] => ReLU) * 2"""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None) -> None:
        super().__init__()
        if not mid_channels:
            mid_channels = out_channels
        self.double_conv = nn.Sequential(
            Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels, affine=False, track_running_stats=False),
            nn.ReLU(inplace=True),
            Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, affine=False, track_running_stats=False),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """Downscaling with maxpool then double conv"""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Upscaling then double conv"""

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool = False) -> None:
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)
        else:
            self.up = ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2, bias=False)
            self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.up(x1)
        # input is CHW
        diffY = x2.size()[2] - x1.size()[2]
        diffX = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [diffX // 2, diffX - diffX // 2, diffY // 2, diffY - diffY // 2])
        x = torch.cat([x2, x1], dim=1)
        return self.conv(x)


class OutConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, n_channels: int, n_classes: int, bilinear: bool = False, base: int = 64) -> None:
        super().__init__()
        self.n_channels = n_channels
        self.n_classes = n_classes
        self.bilinear = bilinear
        factor = 2 if bilinear else 1
        self.inc = DoubleConv(n_channels, base)
        self.down1 = Down(base, base * 2)
        self.down2 = Down(base * 2, base * 4)
        self.down3 = Down(base * 4, base * 8)
        self.down4 = Down(base * 8, base * 16 // factor)
        self.up1 = Up(base * 16, base * 8 // factor, bilinear)
        self.up2 = Up(base * 8, base * 4 // factor, bilinear)
        self.up3 = Up(base * 4, base * 2 // factor, bilinear)
        self.up4 = Up(base * 2, base, bilinear)
        self.outc = OutConv(base, n_classes)

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
        logits = self.outc(x)
        return logits


def authors_unet_frereg(base: int = 64) -> nn.Module:
    """The same UNet built from the authors' `frereg` layers (frlite's loader swaps them for its own)."""
    import frereg

    global Conv2d, ConvTranspose2d
    saved = Conv2d, ConvTranspose2d
    Conv2d, ConvTranspose2d = frereg.Conv2d, frereg.ConvTranspose2d
    try:
        return UNet(n_channels=3, n_classes=2, bilinear=False, base=base).eval()
    finally:
        Conv2d, ConvTranspose2d = saved


def authors_unet() -> nn.Module:
    """The authors' configuration (n_channels=3, n_classes=2, bilinear=False); load unet_fr.pt into it."""
    return UNet(n_channels=3, n_classes=2, bilinear=False).eval()
