"""Where an fp16 phone rounds, and how.

A GPU delegate with precision loss allowed (and NNAPI with allow_fp16, XNNPACK's fp16 path on
ARMv8.2+) stores every tensor in IEEE half: inputs, constants and each op's output. Rounding
those to fp16 (round to nearest even; beyond 65,504 to inf, as the hardware does) is the floor
of what a phone adds; accumulation inside an op stays fp32 here, while some GPUs accumulate in
fp16 as well (docs/parity.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

FP16_MAX = 65504.0


def max_abs(t: torch.Tensor) -> float:
    """The largest |value| of `t` (nan if any value is nan, 0 for an empty tensor), without an
    |x| copy of a 157 MB activation."""
    if not t.numel():
        return 0.0
    lo, hi = (float(v) for v in torch.aminmax(t if t.dtype != torch.half else t.float()))
    return math.nan if math.isnan(lo) or math.isnan(hi) else max(-lo, hi)


@dataclass(frozen=True)
class RoundingPolicy:
    """`fp16`: round to half after every op; `fp32`: no rounding (validates the kernels against LiteRT)."""

    arithmetic: str = "fp16"

    def __post_init__(self) -> None:
        if self.arithmetic not in ("fp16", "fp32"):
            raise ValueError(f"arithmetic {self.arithmetic!r} is not fp16 or fp32")

    def round(self, t: torch.Tensor) -> torch.Tensor:
        if self.arithmetic == "fp32" or not t.is_floating_point():
            return t
        return t.half().float()  # overflow -> inf, as fp16 hardware stores it
