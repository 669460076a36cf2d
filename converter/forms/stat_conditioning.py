"""Conversion pass: re-express each fused factorized conv + batch-statistics norm so its statistics
are computed well in fp16, exactly.

FactorizedConvStatNorm2d gets var_x[c] = sum_ab E[c,a] E[c,b] Cov_q[a,b] from the k0-channel core
output q. In the authors' UNet the products d_a d_b reach 1.3e6 (fp16 ends at 65,504) and the
terms of that sum cancel by up to 2,044x, so fp16 rounding of Cov_q (2^-11) leaves nothing of
var_x. Any invertible k0 x k0 matrix M and positive per-channel s give the same layer:

    z = M (q - mu)        folded into the core conv: core' = M core, core bias -M mu
    E'' = diag(1/s) E M^-1,  eps'' = eps / s^2      (the norm is blind to the scale s)

With mu, M from the core output's mean and covariance on the conversion's example input (PCA
whitening, Cov_z = I there) the statistics become a sum of positive, O(1) terms: no cancellation
left to amplify rounding, d_a d_b of order 1, and s = sqrt(var_x) (power of two) puts var_x'' and
the conv output near 1. No op is added: only constants change. Exact in float64 (up to rounding of
M's inverse); on other inputs Cov_z is not I but stays far better conditioned than Cov_q.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from frlite.converter.forms.factorized import FactorizedConvStatNorm2d

# relative to the largest eigenvalue: directions with less variance are not blown up (a layer seen on
# a 2x2 map has a rank-3 covariance of 4 channels; a 1e-10 floor made its core weights 2.6e4)
EIG_FLOOR = 1e-4
CONSTANT_LIMIT = 65504.0 / 16  # rewritten constants must fit fp16 with margin, else the layer is left as is


@dataclass
class FusedNormCondition:
    """One fused norm: how ill-conditioned its statistics were and what the rewrite left."""

    name: str
    k0: int
    max_pair_product: float    # max |d_a d_b| before (on the example)
    max_pair_product_after: float
    cancellation: float        # max over channels of sum|terms| / var_x before
    cancellation_after: float
    scale_min: float           # per-channel s chosen (powers of two)
    scale_max: float
    applied: bool = True
    reason: str = ""


@dataclass
class ConditionReport:
    layers: list[FusedNormCondition] = field(default_factory=list)

    def as_json(self) -> list[dict]:
        return [asdict(c) for c in self.layers]

    def summary(self) -> str:
        done = [c for c in self.layers if c.applied]
        if not done:
            return f"fused-norm conditioning: none of {len(self.layers)} fused norms whitened"
        text = (f"fused-norm conditioning: {len(done)} of {len(self.layers)} fused norms whitened; max |d_a d_b| "
                f"{max(c.max_pair_product for c in done):.3g} -> {max(c.max_pair_product_after for c in done):.3g}, "
                f"worst cancellation {max(c.cancellation for c in done):.3g}x -> "
                f"{max(c.cancellation_after for c in done):.3g}x (on the example)")
        for c in self.layers:
            if not c.applied:
                text += f"; {c.name}: {c.reason}"
        return text


def _moments(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mean (k0), covariance (k0 x k0) over (N, H, W) in float64, and max |d_a d_b|."""
    d = q.detach().double().transpose(0, 1).reshape(q.shape[1], -1)
    mu = d.mean(dim=1)
    d = d - mu[:, None]
    cov = d @ d.t() / d.shape[1]
    peak = d.abs().amax(dim=1)
    return mu, cov, float((peak[:, None] * peak[None, :]).max())


def _cancellation(e: torch.Tensor, cov: torch.Tensor) -> float:
    """max_c sum_ab |E_ca E_cb Cov_ab| / var_x[c]: how much the var_x sum cancels."""
    var = ((e @ cov) * e).sum(dim=1)
    mag = ((e.abs() @ cov.abs()) * e.abs()).sum(dim=1)
    live = var > 0
    return float((mag[live] / var[live]).max()) if bool(live.any()) else 1.0


def _observe(model: nn.Module, example: tuple[torch.Tensor, ...], fused: list[tuple[str, nn.Module]],
             see: Callable[[str, torch.Tensor], object]) -> None:
    """One forward pass on `example` with `see(name, core_output)` called by each fused norm."""
    for name, mod in fused:
        mod._observer = lambda q, name=name: see(name, q)
    try:
        with torch.no_grad():
            model(*example)
    finally:
        for _, mod in fused:
            mod._observer = None


def condition_fused_norms(model: nn.Module, example: tuple[torch.Tensor, ...]) -> ConditionReport:
    """In place: whiten every FactorizedConvStatNorm2d of `model` from one forward pass on `example`."""
    fused = [(n, m) for n, m in model.named_modules() if isinstance(m, FactorizedConvStatNorm2d)]
    stats: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}
    _observe(model, example, fused, lambda name, q: stats.setdefault(name, _moments(q)))
    report = ConditionReport()
    for name, mod in fused:
        if name not in stats:
            continue
        mu, cov, peak = stats[name]
        lam, vec = torch.linalg.eigh(cov)
        if float(lam.max()) <= 0:
            continue  # a constant core output: nothing to condition
        lam = lam.clamp(min=float(lam.max()) * EIG_FLOOR)
        m = lam.rsqrt()[:, None] * vec.t()             # z = M d, Cov_z = I on the example
        m_inv = vec * lam.sqrt()[None, :]
        e = mod.conv.expand[:, :, 0, 0].double() @ m_inv
        var = (e * e).sum(dim=1)                        # var_x on the example (Cov_z = I)
        s = torch.ones_like(var)
        live = var > 0
        s[live] = torch.exp2(torch.round(torch.log2(var[live].sqrt())))
        cancel_before = _cancellation(mod.conv.expand[:, :, 0, 0].double(), cov)
        core = torch.einsum("ab,bihw->aihw", m, mod.conv.core.double())
        bias = -(m @ mu)
        expand = e / s[:, None]
        record = FusedNormCondition(name, int(mu.numel()), peak, float("nan"), cancel_before,
                                    _cancellation(expand, m @ cov @ m.t()), float(s.min()), float(s.max()))
        report.layers.append(record)
        largest = max(float(t.abs().max()) for t in (core, bias, expand))
        if not largest <= CONSTANT_LIMIT:
            record.applied, record.reason = False, f"rewritten constants would reach {largest:.3g}; left as is"
            continue
        dtype = mod.conv.core.dtype
        mod.conv.register_buffer("core", core.to(dtype).contiguous())
        mod.conv.register_buffer("core_bias", bias.to(dtype))
        mod.set_expand(expand, mod.var_bias.double() / (s * s))
    _measure_after(model, example, report)
    return report


def _measure_after(model: nn.Module, example: tuple[torch.Tensor, ...], report: ConditionReport) -> None:
    """Max |d_a d_b| of the rewritten layers on the example (what an fp16 path now has to hold)."""
    by_name = {c.name: c for c in report.layers if c.applied}
    fused = [(n, m) for n, m in model.named_modules() if n in by_name and isinstance(m, FactorizedConvStatNorm2d)]
    _observe(model, example, fused, lambda name, q: setattr(by_name[name], "max_pair_product_after", _moments(q)[2]))
