"""Integer-ready norms: every conv feeding a batch-statistics norm made to output zero-mean,
unit-variance channels on the calibration data, exactly.

Integer files quantize each activation tensor with one scale. A conv before a batch-statistics
norm often has channels whose offset dwarfs their spread (the authors' UNet: the norm's `x - mean`
lost 18 dB of SQNR in int8) and channels whose spreads differ by orders of magnitude; one scale
then leaves a few levels for the deviations the norm keeps. Such a norm is blind to a per-channel
shift and, with its eps scaled, to a per-channel scale:

    norm(s * (x - m); eps * s^2) = norm(x; eps)      for any m and any s > 0, per channel

so the conv's output is replaced by s * (x - m), with m and 1/s the channel's mean and standard
deviation on the calibration samples (s a power of two: the weights scale without rounding),
folded into the conv's last linear stage (a conv's weight and bias, a factorized conv's expand
and bias). A module of another kind gets a Mul / Add after it instead (onnx2tf may wrap those in
transposes). Pairs are found on the dataflow (frlite.converter.forms.dataflow_fusions), whatever
the model's classes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from frlite.converter.fr.batch_stat_norm import BatchStatNorm2d
from frlite.converter.fr.module_surgery import set_submodule


class ChannelAffine(nn.Module):
    """`inner(x) * scale + shift` per channel (NCHW): the conv's output, centred and scaled."""

    def __init__(self, inner: nn.Module, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("scale", scale.reshape(1, -1, 1, 1).float().clone())
        self.register_buffer("shift", shift.reshape(1, -1, 1, 1).float().clone())

    def forward(self, *args: torch.Tensor) -> torch.Tensor:  # a merged-up conv takes two inputs
        return self.inner(*args) * self.scale + self.shift


@dataclass
class EqualizedNorm:
    conv: str
    norm: str
    offset_to_spread: float   # max over channels of |mean| / std before: what the shift removed
    spread_range: float       # max std / min std over channels before: what the scale evened out


def _fold(conv: nn.Module, scale: torch.Tensor, shift: torch.Tensor) -> bool:
    """y -> y * scale + shift folded into the module's last linear stage; False if it has none known."""
    if isinstance(conv, nn.Conv2d) and conv.weight.shape[0] == scale.numel():
        last, name = conv.weight, "weight"
    elif isinstance(getattr(conv, "expand", None), torch.Tensor) and conv.expand.shape[0] == scale.numel():
        last, name = conv.expand, "expand"
    elif isinstance(getattr(conv, "conv", None), nn.Module):  # a wrapper whose output is its inner conv's
        return _fold(conv.conv, scale, shift)
    else:
        return False
    with torch.no_grad():
        shape = (-1,) + (1,) * (last.dim() - 1)
        folded = (last.double() * scale.reshape(shape)).to(last.dtype)
        bias = conv.bias.detach().double() if getattr(conv, "bias", None) is not None else torch.zeros_like(scale)
        new_bias = nn.Parameter((bias * scale + shift).float())
    if isinstance(last, nn.Parameter):
        setattr(conv, name, nn.Parameter(folded))
    else:
        conv.register_buffer(name, folded)
    conv.bias = new_bias
    return True


def _channel_stats(module: nn.Module, convs: list[str], samples: list[tuple[torch.Tensor, ...]]
                   ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per conv: per-channel mean and std of its output over every calibration sample (float64)."""
    sums: dict[str, list[torch.Tensor]] = {}

    def hook(name: str):  # type: ignore[no-untyped-def]
        def record(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
            o = out.detach().double().transpose(0, 1).reshape(out.shape[1], -1)
            acc = sums.setdefault(name, [torch.zeros(o.shape[0], dtype=torch.float64)] * 2 + [torch.zeros((), dtype=torch.float64)])
            sums[name] = [acc[0] + o.sum(1), acc[1] + (o * o).sum(1), acc[2] + o.shape[1]]
        return record

    hooks = [module.get_submodule(c).register_forward_hook(hook(c)) for c in convs]
    try:
        with torch.no_grad():
            for sample in samples:
                module(*sample)
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for name, (s1, s2, n) in sums.items():
        mean = s1 / n
        out[name] = (mean, (s2 / n - mean * mean).clamp_min(0).sqrt())
    return out


def equalize_stat_norms(module: nn.Module, pairs: dict[str, str], samples: list[tuple[torch.Tensor, ...]]
                        ) -> list[EqualizedNorm]:
    """In place: each (conv -> BatchStatNorm2d) pair of `pairs` (names in `module`) rewritten as
    above on `samples`. Pairs whose norm is not a BatchStatNorm2d here are left alone."""
    pairs = {c: n for c, n in pairs.items() if isinstance(module.get_submodule(n), BatchStatNorm2d)}
    stats = _channel_stats(module, list(pairs), samples)
    done = []
    for conv_name, norm_name in pairs.items():
        mean, std = stats[conv_name]
        live = std > 0
        if not bool(live.any()):
            continue
        scale = torch.ones_like(std)
        scale[live] = torch.exp2(torch.round(-torch.log2(std[live])))
        norm = module.get_submodule(norm_name)
        assert isinstance(norm, BatchStatNorm2d)
        base_eps: float | torch.Tensor = norm.eps
        if norm.prescale is not None:  # an fp16 prescale p (eps held as p^2 eps): folded into the conv too
            scale = scale * norm.prescale.reshape(-1).double()
            norm.register_buffer("prescale", None)
        elif norm.scaled_eps is not None:
            base_eps = norm.scaled_eps.reshape(-1).double()
        norm.register_buffer("scaled_eps", (base_eps * scale * scale).float().reshape(1, -1, 1, 1))
        conv = module.get_submodule(conv_name)
        if not _fold(conv, scale, -mean * scale):
            set_submodule(module, conv_name, ChannelAffine(conv, scale, -mean * scale))
        done.append(EqualizedNorm(conv_name, norm_name, float((mean.abs()[live] / std[live]).max()),
                                  float(std[live].max() / std[live].min())))
    return done


def summary(done: list[EqualizedNorm]) -> str:
    if not done:
        return "integer-ready norms: no conv -> batch-statistics norm pair"
    return (f"integer-ready norms: {len(done)} conv outputs centred and scaled on the calibration set "
            f"(offsets up to {max(d.offset_to_spread for d in done):.3g} std, spreads differing up to "
            f"{max(d.spread_range for d in done):.3g}x before)")


def records(done: list[EqualizedNorm]) -> list[dict[str, object]]:
    return [asdict(d) for d in done]
