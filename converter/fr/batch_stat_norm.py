"""BatchNorm that normalises with the input's own statistics, written with plain ops.

The authors' UNet uses BatchNorm2d(affine=False, track_running_stats=False): even in eval() it
normalises each input with that input's per-channel mean and biased variance. Exporters turn
that into BatchNormalization in training mode, which inference runtimes do not run. This module
computes the same thing with ReduceMean / Sub / Mul / Sqrt / Div, which every runtime and the
mobile delegates run.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from frlite.converter.fr.module_surgery import replace_modules


class BatchStatNorm2d(nn.Module):
    """y = (x - mean) / sqrt(var + eps) [* weight + bias], stats over (N, H, W) of this input.

    `prescale` (per channel, powers of two; None until frlite.converter.forms.fp16_rescale sets it) scales the
    deviations before they are squared: with t = c (x - mean), y = t / sqrt(mean(t^2) + c^2 eps)
    exactly, in any float precision (a power of two only moves the exponent). It keeps the squares
    below fp16's 65,504: the UNet's deviations reach ~1,000, their squares 1e6, inf in fp16.
    """

    def __init__(self, source: nn.BatchNorm2d) -> None:
        super().__init__()
        self.eps = float(source.eps)
        self.weight = None if source.weight is None else nn.Parameter(source.weight.detach().clone())
        self.bias = None if source.bias is None else nn.Parameter(source.bias.detach().clone())
        self.register_buffer("prescale", None)    # (1, C, 1, 1) or None
        # The 16x8 integer form: centered * rsqrt(var + eps) instead of centered / sqrt(var + eps) (TF 2.19
        # quantizes RSQRT and MUL to 16x8, not SQRT or DIV), and means over W, then H, then N: LiteRT's
        # int16 MEAN sums into 32 bits, and 640x959 squares near the top of the int16 range overflowed
        # it (a negative variance on a noise input; RSQRT refused to run). The same function.
        self.rsqrt_form = False
        self.register_buffer("scaled_eps", None)  # c^2 eps, same shape

    def set_prescale(self, c: torch.Tensor) -> None:
        """Per-channel c > 0 (a power of two keeps the rewrite bit-exact); eps becomes c^2 eps."""
        c = c.detach().reshape(1, -1, 1, 1)
        self.register_buffer("prescale", c.clone())
        self.register_buffer("scaled_eps", (c * c * self.eps).clone())

    def _mean(self, t: torch.Tensor) -> torch.Tensor:
        if not self.rsqrt_form:
            return t.mean(dim=(0, 2, 3), keepdim=True)
        m = t.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
        return m.mean(dim=0, keepdim=True) if t.shape[0] > 1 else m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self._mean(x)
        centered = x - mean
        if self.prescale is not None:
            centered = centered * self.prescale
        var = self._mean(centered * centered)
        eps = self.eps if self.scaled_eps is None else self.scaled_eps
        y = centered * torch.rsqrt(var + eps) if self.rsqrt_form else centered / torch.sqrt(var + eps)
        if self.weight is not None:
            y = y * self.weight.view(1, -1, 1, 1)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y


def uses_batch_stats(module: nn.Module) -> bool:
    """True for a BatchNorm2d that uses the input's statistics at inference."""
    return isinstance(module, nn.BatchNorm2d) and not module.track_running_stats


def replace_batch_stat_norms(model: nn.Module) -> int:
    """In place: swap every batch-statistics BatchNorm2d below the root for BatchStatNorm2d."""
    return replace_modules(model, lambda m: m is not model and uses_batch_stats(m), BatchStatNorm2d)[1]


def clone_for_export(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with batch-statistics norms made portable; the original is untouched."""
    clone = copy.deepcopy(model).eval()
    replace_batch_stat_norms(clone)
    return clone
