"""Conversion pass: make every batch-statistics norm of an export module fp16-safe, exactly.

A batch-statistics norm squares the deviations of its input. FR convs are not scaled by training
(the norm after them rescales anyway): the UNet's conv outputs reach ~1,000, their squares ~1e6,
and fp16 (what a phone's GPU / NNAPI / XNNPACK-fp16 path stores) ends at 65,504. The first
overflow in the UNet's dense file is a norm's square (`.../double_conv.4/Mul`).

The norm is blind to a positive per-channel scale of its deviations once eps is scaled by the
square, so each norm gets constants c (powers of two, bit-exact) fixed here from the model's own
activations on the conversion's example input: c * max|x - mean| lands in (T/2, T] with T = 16,
so squares stay below 256 (a 256x margin for inputs whose deviations are up to 16x larger than the
example's) and small channels are scaled up instead of underflowing. The scale lives in the norm,
not in the conv before it: FR coefficients are shared by the dense and idct files, and a conv's
per-channel scale does not commute with the IDCT along its output-channel axis.

A norm whose *input* already comes near fp16's range cannot be fixed by this rewrite; it is
reported (`unsafe`), never passed silently.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from frlite.converter.fr.batch_stat_norm import BatchStatNorm2d
from frlite.converter.forms.stat_conditioning import ConditionReport, condition_fused_norms

FP16_MAX = 65504.0
TARGET_DEVIATION = 16.0   # scaled max |x - mean| on the example; squares <= 256
INPUT_MARGIN = 16.0       # a norm input above FP16_MAX / 16 on the example is reported unsafe


@dataclass
class NormScale:
    """What the pass measured and chose for one norm (on the conversion's example input)."""

    name: str
    channels: int
    max_input: float          # max |x| of the norm's input
    max_deviation: float      # max |x - mean| over channels
    prescale_min: float       # smallest / largest per-channel constant chosen
    prescale_max: float
    max_scaled_square: float  # max (c (x - mean))^2: the largest square the rewritten norm computes
    safe: bool
    reason: str = ""


@dataclass
class Fp16RescaleReport:
    norms: list[NormScale] = field(default_factory=list)
    # norm name -> the per-channel constants chosen (not in the JSON: apply_prescales reuses them)
    scales: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def unsafe(self) -> list[NormScale]:
        return [n for n in self.norms if not n.safe]

    def as_json(self) -> list[dict]:
        return [asdict(n) for n in self.norms]

    def summary(self) -> str:
        if not self.norms:
            return "fp16 rescale: no batch-statistics norm"
        worst = max(n.max_scaled_square for n in self.norms)
        text = (f"fp16 rescale: {len(self.norms)} batch-statistics norms prescaled (powers of two "
                f"{min(n.prescale_min for n in self.norms):.3g}..{max(n.prescale_max for n in self.norms):.3g}), "
                f"largest square {worst:.3g} on the example")
        for n in self.unsafe:
            text += f"; UNSAFE {n.name}: {n.reason}"
        return text


def power_of_two_scale(max_dev: torch.Tensor, target: float = TARGET_DEVIATION) -> torch.Tensor:
    """Per channel 2^floor(log2(target / max_dev)), so c * max_dev is in (target/2, target]; 1 for a
    channel without deviation (nothing to scale)."""
    c = torch.ones_like(max_dev, dtype=torch.float64)
    live = max_dev > 0
    c[live] = torch.exp2(torch.floor(torch.log2(target / max_dev[live].double())))
    return c


def prescale_stat_norms(model: nn.Module, example: tuple[torch.Tensor, ...]) -> Fp16RescaleReport:
    """In place: set every BatchStatNorm2d's prescale from one forward pass on `example`."""
    norms = [(n, m) for n, m in model.named_modules() if isinstance(m, BatchStatNorm2d)]
    seen: dict[str, tuple[torch.Tensor, float]] = {}

    def hook(name: str):  # type: ignore[no-untyped-def]
        def record(mod: nn.Module, args: tuple) -> None:
            x = args[0].detach()
            mean = x.mean(dim=(0, 2, 3), keepdim=True)
            dev = (x - mean).abs().amax(dim=(0, 2, 3))
            prev = seen.get(name)
            max_in = float(x.abs().max())
            seen[name] = (dev if prev is None else torch.maximum(prev[0], dev), max(max_in, prev[1] if prev else 0.0))
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in norms]
    try:
        with torch.no_grad():
            model(*example)
    finally:
        for h in handles:
            h.remove()
    report = Fp16RescaleReport()
    for name, norm in norms:
        if name not in seen:
            continue  # not on the example's path: left as is
        dev, max_in = seen[name]
        c = power_of_two_scale(dev.double())
        norm.set_prescale(c.to(dev.dtype))
        report.scales[name] = c
        square = float(((c * dev.double()) ** 2).max())
        safe = math.isfinite(max_in) and max_in <= FP16_MAX / INPUT_MARGIN
        reason = "" if safe else (f"its input reaches {max_in:.4g} on the example, within {INPUT_MARGIN:g}x of fp16's "
                                  f"{FP16_MAX:g}; the conv before it overflows in fp16")
        report.norms.append(NormScale(name, int(dev.numel()), max_in, float(dev.max()), float(c.min()), float(c.max()),
                                      square, safe, reason))
    return report


def apply_prescales(model: nn.Module, report: Fp16RescaleReport) -> int:
    """In place: give another copy of the same model the constants `report` chose (no forward pass)."""
    applied = 0
    for name, norm in model.named_modules():
        if isinstance(norm, BatchStatNorm2d) and name in report.scales:
            ref = norm.weight if norm.weight is not None else None
            norm.set_prescale(report.scales[name].to(ref.dtype if ref is not None else torch.float32))
            applied += 1
    return applied


@dataclass
class Fp16Rewrites:
    """Both exact fp16 rewrites applied to one export module, as recorded in the manifest."""

    norm_prescale: Fp16RescaleReport
    fused_norm_conditioning: ConditionReport

    @property
    def unsafe(self) -> list[str]:
        return [f"{n.name}: {n.reason}" for n in self.norm_prescale.unsafe]

    def as_json(self) -> dict:
        return {"norm_prescale": self.norm_prescale.as_json(),
                "fused_norm_conditioning": self.fused_norm_conditioning.as_json(),
                "unsafe": self.unsafe}

    def summary(self) -> list[str]:
        return [self.fused_norm_conditioning.summary(), self.norm_prescale.summary()]


def make_fp16_safe(model: nn.Module, example: tuple[torch.Tensor, ...]) -> Fp16Rewrites:
    """In place, on an export module (portable norms, fused factorized norms): whiten the fused
    norms' statistics, then prescale the remaining batch-statistics norms. Both exact."""
    fused = condition_fused_norms(model, example)
    return Fp16Rewrites(prescale_stat_norms(model, example), fused)
