"""A generated zoo of small FR models, one per option combination of issue 14's survey.

Each ZooCase is a tiny network around the option under test (an FR conv / transposed conv /
Linear with that option, or ordinary layers between FR convs), built from frlite's FR layers
with coefficients in a low-frequency corner box as FR training leaves them. The cases are data:
`CASES` is generated from the option axes below, and every case is a MODEL SPEC
(`tests.zoo.zoo_models:<case name>`, resolved by the module's __getattr__), so the CLI, the
survey (tests/zoo/survey.py) and the tests (tests/test_zoo.py) build the same models.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d, FRLinear
from tests.models.small_fr import fr_sparsify


@dataclass(frozen=True)
class ZooCase:
    name: str
    covers: str                                   # the option combination, as a table row names it
    build: Callable[[], nn.Module]
    inputs: tuple[str, ...] = ("input:1x4x16x16",)
    fast: bool = False                            # also converted alone (test_zoo_case_alone; slow, onnx2tf end to end)


class _Wrap(nn.Module):
    """stem FR conv -> the layer(s) under test -> optional FR 1x1 conv: every case has FR layers
    on both sides of what it tests, as in a real network."""

    def __init__(self, body: nn.Module, c_after: int | None = None, c_out: int = 6) -> None:
        super().__init__()
        self.stem = FRConv2d(4, 8, 3, padding=1)
        self.body = body
        self.out = FRConv2d(c_after or _out_channels(body, 8), c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(torch.relu(self.stem(x)))
        return self.out(y)


def _out_channels(body: nn.Module, default: int) -> int:
    for m in reversed(list(body.modules())):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            return m.out_channels
    return default


def _conv(**kw: Any) -> Callable[[], nn.Module]:
    opts = {k: v for k, v in kw.items() if k != "out"}  # never mutated: every build is the same model
    return lambda: _Wrap(FRConv2d(8, kw.get("out", 8), **opts))


def _tconv(**kw: Any) -> Callable[[], nn.Module]:
    opts = {k: v for k, v in kw.items() if k != "out"}
    return lambda: _Wrap(FRConvTranspose2d(8, kw.get("out", 8), **opts))


def _seq(*layers: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    return lambda: _Wrap(nn.Sequential(*(f() for f in layers)))


def _fr3(c: int = 8) -> nn.Module:
    return FRConv2d(c, c, 3, padding=1)


class _Head(nn.Module):
    """FR convs -> pooling -> FR Linear (a classifier head); `pool` picks the pooling."""

    def __init__(self, pool: nn.Module, features: int, act: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = FRConv2d(4, 8, 3, stride=2, padding=1)
        self.pool, self.act = pool, act or nn.ReLU()
        self.fc = FRLinear(features, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.act(self.conv(x))), 1))


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = _fr3(), _fr3()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(torch.relu(self.a(x)))


class _Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = _fr3()
        self.down = FRConv2d(8, 8, 3, stride=2, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x), self.up(torch.relu(self.down(x)))], dim=1)


class _TwoInTwoOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = FRConv2d(4, 8, 3, padding=1)
        self.b = FRConv2d(2, 8, 3, padding=1)
        self.up = FRConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1)
        self.fc = FRLinear(8, 3)

    def forward(self, image: torch.Tensor, aux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.relu(self.a(image) + self.b(aux))
        return self.up(y), self.fc(y.mean(dim=(2, 3)))


class _LayerNormCHW(nn.Module):
    """LayerNorm over (C, H, W), as written for a fixed input size."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm([8, 16, 16])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def _bn(affine: bool = True, running: bool = True) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        bn = nn.BatchNorm2d(8, affine=affine, track_running_stats=running)
        g = torch.Generator().manual_seed(5)  # every build of a case is the same model
        if running:
            bn.running_mean.copy_(torch.randn(8, generator=g) * 0.3)
            bn.running_var.copy_(torch.rand(8, generator=g) + 0.5)
        if affine:
            with torch.no_grad():
                bn.weight.uniform_(0.5, 1.5, generator=g)
                bn.bias.uniform_(-0.2, 0.2, generator=g)
        return bn
    return make


# name -> (covers, builder, extra ZooCase fields); generated rows first, hand-picked ones after
_CONV_AXES: list[tuple[str, dict[str, Any]]] = [
    ("k1", dict(kernel_size=1)),
    ("k5_s3_p2", dict(kernel_size=5, stride=3, padding=2)),
    ("k7_s2_p3", dict(kernel_size=7, stride=2, padding=3)),
    ("k3x5_asym", dict(kernel_size=(3, 5), stride=(1, 2), padding=(1, 2))),
    ("pad_same_d2", dict(kernel_size=3, padding="same", dilation=2)),
    ("pad_valid", dict(kernel_size=3, padding="valid")),
    ("s2_d2_g4", dict(kernel_size=3, stride=2, padding=2, dilation=2, groups=4)),
    ("s2_d3", dict(kernel_size=3, stride=2, padding=3, dilation=3)),
    ("s3_d3_k2x3", dict(kernel_size=(2, 3), stride=3, padding=(1, 3), dilation=3)),
    ("s2x1_d1x3", dict(kernel_size=3, stride=(2, 1), padding=(1, 3), dilation=(1, 3))),
    ("d3", dict(kernel_size=3, padding=3, dilation=3)),
    ("groups4", dict(kernel_size=3, padding=1, groups=4)),
    ("depthwise", dict(kernel_size=3, padding=1, groups=8)),
    ("depthwise_x2_s2", dict(kernel_size=3, stride=2, padding=1, groups=8, out=16)),
    ("nobias", dict(kernel_size=3, padding=1, bias=False)),
    ("reflect", dict(kernel_size=3, padding=1, padding_mode="reflect")),
    ("replicate", dict(kernel_size=3, padding=2, padding_mode="replicate")),
    ("circular", dict(kernel_size=3, padding=1, padding_mode="circular")),
]
_TCONV_AXES: list[tuple[str, dict[str, Any]]] = [
    ("k2_s2", dict(kernel_size=2, stride=2)),
    ("k3_s3_nobias", dict(kernel_size=3, stride=3, bias=False)),
    ("k2_s2_g2", dict(kernel_size=2, stride=2, groups=2)),
    ("k2x3_s2x3", dict(kernel_size=(2, 3), stride=(2, 3))),
    ("k3_s2_p1_op1", dict(kernel_size=3, stride=2, padding=1, output_padding=1)),
    ("k4_s2_p1", dict(kernel_size=4, stride=2, padding=1)),
    ("k3_s1_p1", dict(kernel_size=3, padding=1)),
    ("k3_s2_d2", dict(kernel_size=3, stride=2, dilation=2, padding=2, output_padding=1)),
    ("k5_s3_p1_op2_g4", dict(kernel_size=5, stride=3, padding=1, output_padding=2, groups=4)),
]
_LAYER_AXES: list[tuple[str, str, Callable[[], nn.Module], dict[str, Any]]] = [
    ("act_relu6_silu_hardswish", "ReLU6, SiLU, Hardswish", _seq(_fr3, nn.ReLU6, _fr3, nn.SiLU, _fr3, nn.Hardswish), {}),
    ("act_gelu", "GELU (erf)", _seq(_fr3, nn.GELU), {}),
    ("act_sigmoid_leaky", "Sigmoid, LeakyReLU(0.1)", _seq(_fr3, nn.Sigmoid, _fr3, lambda: nn.LeakyReLU(0.1)), {}),
    ("bn_running_affine", "BatchNorm2d, running stats, affine", _seq(_fr3, _bn()), {}),
    ("bn_running_plain", "BatchNorm2d, running stats, affine=False", _seq(_fr3, _bn(affine=False)), {}),
    ("bn_batch_stats", "BatchNorm2d, batch statistics (track_running_stats=False)",
     _seq(_fr3, _bn(affine=False, running=False)), {}),
    ("groupnorm", "GroupNorm(4, 8)", _seq(_fr3, lambda: nn.GroupNorm(4, 8)), {}),
    ("layernorm_chw", "LayerNorm over (C, H, W)", _seq(_fr3, _LayerNormCHW), {}),
    ("pool_max_avg", "MaxPool2d(2), AvgPool2d(3, stride 1, pad 1)",
     _seq(_fr3, lambda: nn.MaxPool2d(2), _fr3, lambda: nn.AvgPool2d(3, 1, 1)), {}),
    ("up_nearest", "Upsample nearest x2", _seq(_fr3, lambda: nn.Upsample(scale_factor=2)), {}),
    ("up_bilinear", "Upsample bilinear x2, align_corners=False",
     _seq(_fr3, lambda: nn.Upsample(scale_factor=2, mode="bilinear")), {}),
    ("up_bilinear_ac", "Upsample bilinear x2, align_corners=True",
     _seq(_fr3, lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)), {}),
    ("residual", "residual add", lambda: _Wrap(_Residual()), {}),
    ("concat", "concatenation (skip + upsampled)", lambda: _Wrap(_Concat(), c_after=16), {}),
    ("head_adaptive_avg", "AdaptiveAvgPool2d(1) + FR Linear", lambda: _Head(nn.AdaptiveAvgPool2d(1), 8), {}),
    ("head_adaptive_max_2x2", "AdaptiveMaxPool2d(2) + FR Linear, Hardswish",
     lambda: _Head(nn.AdaptiveMaxPool2d(2), 32, nn.Hardswish()), {}),
    ("two_inputs_two_outputs", "two inputs, two outputs (image + vector)", _TwoInTwoOut,
     dict(inputs=("image:1x4x12x12", "aux:1x2x12x12"))),
    ("batch2", "batch 2, strided conv + transposed conv",
     _seq(lambda: FRConv2d(8, 8, 3, stride=2, padding=1), nn.ReLU,
          lambda: FRConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1)),
     dict(inputs=("input_b2:2x4x16x16",))),
]

_FAST = {"head_adaptive_avg", "two_inputs_two_outputs"}  # converted alone too; the repairs have their own tests


def _cases() -> list[ZooCase]:
    out = []
    for name, kw in _CONV_AXES:
        opts = ", ".join(f"{k}={v}" for k, v in kw.items())
        n = f"conv_{name}"
        out.append(ZooCase(n, f"FR Conv2d({opts})", _conv(**kw), fast=n in _FAST))
    for name, kw in _TCONV_AXES:
        opts = ", ".join(f"{k}={v}" for k, v in kw.items())
        n = f"tconv_{name}"
        out.append(ZooCase(n, f"FR ConvTranspose2d({opts})", _tconv(**kw), fast=n in _FAST))
    for name, covers, build, extra in _LAYER_AXES:
        out.append(ZooCase(name, covers, build, **{"fast": name in _FAST, **extra}))
    return out


CASES: list[ZooCase] = _cases()
BY_NAME: dict[str, ZooCase] = {c.name: c for c in CASES}


def case_model(case: ZooCase) -> nn.Module:
    return fr_sparsify(case.build(), sum(map(ord, case.name)) % 1000)


class AllInOne(nn.Module):
    """Every case that converts, side by side in one network: each case reads its own inputs
    (cases with equal input specs share them) and gives its own outputs. One conversion of this
    model runs onnx2tf once per mode for the whole zoo, which makes the zoo a few minutes of
    `make test` instead of half an hour; every output is still checked on its own."""

    def __init__(self, cases: list[ZooCase]) -> None:
        super().__init__()
        self.names = [c.name for c in cases]
        self.cases = nn.ModuleList(case_model(c) for c in cases)
        self.input_specs = list(dict.fromkeys(spec for c in cases for spec in c.inputs))
        self.reads = [[self.input_specs.index(spec) for spec in c.inputs] for c in cases]

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs: list[torch.Tensor] = []
        for model, reads in zip(self.cases, self.reads):
            y = model(*(xs[i] for i in reads))
            outs.extend(y if isinstance(y, tuple) else (y,))
        return tuple(outs)


def all_in_one() -> nn.Module:
    """Every case converts in every mode since the repair passes (docs/coverage.md): all of them."""
    return AllInOne(CASES)


def __getattr__(name: str) -> Callable[[], nn.Module]:
    """`tests.zoo.zoo_models:<case>` is a MODEL SPEC: the case's model, seeded."""
    if name in BY_NAME:
        return lambda: case_model(BY_NAME[name])
    raise AttributeError(name)
