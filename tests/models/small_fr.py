"""Small FR models of other shapes, used by the conversion and parity tests (MODEL SPEC factories).

Coefficients are random but kept inside a low-frequency corner box, as FR training leaves them.
"""
from __future__ import annotations

import torch
from torch import nn

from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d, FRLinear, fr_layers


def fr_sparsify(model: nn.Module, seed: int, box: tuple[int, ...] = (4, 4, 2, 2)) -> nn.Module:
    """Random coefficients in a low-frequency corner box of every FR layer (biases small and
    random), as FR training leaves them; the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in fr_layers(model):
            w = layer.weight
            keep = tuple(slice(0, min(k, n)) for k, n in zip(box, w.shape))
            values = torch.randn(w[keep].shape, generator=g) * 0.5
            w.zero_()
            w[keep] = values
            if layer.bias is not None:
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.1)
    return model.eval()


class Classifier(nn.Module):
    """Strided, grouped and depthwise FR convs and an FR Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = FRConv2d(3, 16, 3, stride=2, padding=1)
        self.grouped = FRConv2d(16, 16, 3, padding=1, groups=4)
        self.depthwise = FRConv2d(16, 16, 3, padding=1, groups=16, bias=False)
        self.point = FRConv2d(16, 32, 1)
        self.head = FRLinear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.grouped(x))
        x = torch.relu(self.point(self.depthwise(x)))
        return self.head(x.mean(dim=(2, 3)))


class Decoder(nn.Module):
    """FR transposed convs with output_padding, as in a segmentation decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.up1 = FRConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1)
        self.up2 = FRConvTranspose2d(6, 4, 2, stride=2, bias=False)
        self.out = FRConv2d(4, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.up2(torch.relu(self.up1(x)))))


def classifier() -> nn.Module:
    return fr_sparsify(Classifier(), 1)


def decoder() -> nn.Module:
    return fr_sparsify(Decoder(), 2, box=(3, 3, 2, 2))


def frereg_net() -> nn.Module:
    """A model built from the authors' `frereg` layers (mapped to frlite's by the model spec)."""
    import frereg

    class FreregNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = frereg.Conv2d(3, 8, 3, padding=1)
            self.conv2 = frereg.Conv2d(8, 8, 3, stride=2, padding=1, bias=False)
            self.up = frereg.ConvTranspose2d(8, 4, 2, stride=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.up(torch.relu(self.conv2(torch.relu(self.conv1(x)))))

    torch.manual_seed(3)
    net = FreregNet()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in (net.conv1, net.conv2, net.up):
            w = m.weight
            keep = (slice(0, 3), slice(0, 3), slice(0, 2), slice(0, 2))
            values = torch.randn(w[keep].shape, generator=g)
            w.zero_()
            w[keep] = values
    return net.eval()


def unet_small() -> nn.Module:
    from frlite.converter.models.unet import build_unet

    return fr_sparsify(build_unet(width=8), 4)


class _PoolsToFixedGrid(nn.Module):
    """Adaptive pooling to 3x3 + Linear: its graph depends on the traced size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = FRConv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d((3, 3))
        self.fc = FRLinear(72, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def pools_to_fixed_grid() -> nn.Module:
    return fr_sparsify(_PoolsToFixedGrid(), 1, box=(2, 2, 2, 2))


class _Mystery(torch.autograd.Function):
    """A custom layer: exports as the ONNX op frlite_test::Mystery, which no converter knows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x * 2

    @staticmethod
    def symbolic(g, x):  # type: ignore[no-untyped-def]
        return g.op("frlite_test::Mystery", x).setType(x.type())


class WithCustomOp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = FRConv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Mystery.apply(self.conv(x))


def with_custom_op() -> nn.Module:
    return fr_sparsify(WithCustomOp(), 5)


class _Overflowing(nn.Module):
    """Right in fp32, wrong in fp16 arithmetic: conv1's output is scaled past fp16's 65,504 and
    conv2 scales it back (relu between them, so no converter folds the two scales together)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = FRConv2d(3, 8, 3, padding=1)
        self.conv2 = FRConv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(x)))


def overflowing() -> nn.Module:
    m = fr_sparsify(_Overflowing(), 5)
    with torch.no_grad():  # the inverse DCT is linear: scaling the coefficients scales the weights
        m.conv1.weight.mul_(2e4)
        m.conv1.bias.mul_(2e4)
        m.conv2.weight.mul_(1e-4)
    for layer in (m.conv1, m.conv2):
        layer.drop_cached_weight()
    return m


class NormNet(nn.Module):
    """FR convs each followed by a batch-statistics norm (as in the authors' UNet) and a 1-channel
    head: an output without a task, so integer files are judged by SQNR."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = FRConv2d(3, 8, 3, padding=1)
        self.norm1 = nn.BatchNorm2d(8, affine=False, track_running_stats=False)
        self.conv2 = FRConv2d(8, 8, 3, padding=1)
        self.norm2 = nn.BatchNorm2d(8, affine=False, track_running_stats=False)
        self.head = FRConv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm1(self.conv1(x)))
        x = torch.relu(self.norm2(self.conv2(x)))
        return self.head(x)


def norm_net() -> nn.Module:
    return fr_sparsify(NormNet(), 3, box=(4, 3, 3, 3))
