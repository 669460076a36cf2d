"""Pass export_integer: the integer-ready forms of dense and factorized, exported to ONNX for the
full-integer files only (int8 / int16x8; the fp32 / fp16 files keep their own forms).

Per layer, what needs more precision than 8 or 16 bits is kept out of the integer graph:
  - a factorized conv's fused norm (FactorizedConvStatNorm2d) takes its variance from the
    k0-channel core's covariance, whose terms cancel by up to ~2,000x in the authors' UNet: no
    8- or 16-bit activation holds that (int16x8 gave a negative variance, RSQRT refused to run).
    Integer files unfuse it: the norm reads the conv's own output, whose variance is a mean of
    squares (no cancellation), at the cost of the full-width passes the fusion saved.
  - int16x8: every conv feeding a batch-statistics norm is centred and scaled per channel on the
    calibration data, exactly (frlite.converter.forms.int_equalize), so one quantization scale
    fits all its channels, and norms compute centered * rsqrt(var + eps): TF 2.19 quantizes RSQRT
    and MUL in 16x8, not SQRT and DIV, with means taken over W, then H (LiteRT's int16 MEAN
    overflowed its 32-bit sum over 640x959 squares on a noise input). Without the centring, the
    UNet's int16 variance rounded to 0 on a calibration image and RSQRT refused to run.
  - int8 keeps the conv outputs as they are and the norm in SQRT / DIV form (both have int8
    kernels): measured on the UNet's factorized form, the centred variant lost 17-44 Dice points
    in int8 (its unit-variance, heavy-tailed outputs get ~23 dB at 8 bits), the plain one 0.5-2.3.
The repairs of the fp32 forms are not applied here: their DepthToSpace has no 16x8 kernel, and
the integer forms keep the transposed convs, which do.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from frlite.converter.core.tolerances import INTEGER_PRECISIONS
from frlite.converter.fr.batch_stat_norm import BatchStatNorm2d
from frlite.converter.forms.dataflow_fusions import find_fusions
from frlite.converter.forms.factorized import factorize_model
from frlite.converter.forms.int_equalize import equalize_stat_norms, records, summary
from frlite.converter.onnx.onnx_export import export_onnx, simplify_onnx
from frlite.converter.passes.context import ConvertContext
from frlite.converter.passes.driver import BasePass
from frlite.converter.passes.export_dense import dense_export_module

INTEGER_MODES = ("dense", "factorized")


def integer_module(ctx: ConvertContext, mode: str, precision: str) -> tuple[nn.Module, list[dict[str, object]]]:
    """The mode's integer-ready module for `precision` and the per-layer decisions taken (manifest)."""
    assert ctx.model is not None and ctx.example is not None
    plan: list[dict[str, object]] = []
    if mode == "dense":
        module = dense_export_module(ctx.model)
    else:
        assert ctx.fact_plan is not None
        fused = [c.fused_norm for c in ctx.fact_plan if c.fused_norm]
        unfused = [dataclasses.replace(c, fused_norm="") for c in ctx.fact_plan]
        module, _ = factorize_model(ctx.model, plan=unfused, fp16_safe=False)
        plan += [{"layer": n, "decision": "norm unfused", "why": "fused statistics cancel beyond 8/16-bit range"}
                 for n in fused]
    if precision == "int16x8":
        samples = [tuple(torch.from_numpy(s.arrays[n]) for n in ctx.example) for s in ctx.calibration_samples()]
        done = equalize_stat_norms(module, find_fusions(ctx.model).norms, samples)
        ctx.log(f"  {mode} {precision}: {summary(done)}")
        plan += [dict(r, decision="centred and scaled on calibration") for r in records(done)]
        for m in module.modules():
            if isinstance(m, BatchStatNorm2d):
                m.rsqrt_form = True  # RSQRT / MUL and staged means: batch_stat_norm.py says why
    return module.eval(), plan


class ExportInteger(BasePass):
    def __init__(self) -> None:
        super().__init__("export_integer", needs=("work", "model", "example", "out_names"), adds=("integer_sources",))

    def applies(self, ctx: ConvertContext) -> bool:
        return any(p in INTEGER_PRECISIONS for p in ctx.req.precisions)

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.work is not None and ctx.example is not None and ctx.out_names is not None
        folder = ctx.work / "integer"
        folder.mkdir(exist_ok=True)
        for mode in [m for m in ctx.req.modes if m in INTEGER_MODES]:
            for precision in [p for p in ctx.req.precisions if p in INTEGER_PRECISIONS]:
                done = ctx.step(f"export the {precision}-ready {mode} ONNX")
                module, plan = integer_module(ctx, mode, precision)
                dst: Path = folder / f"{mode}_{precision}.onnx"
                export_onnx(module, ctx.example, ctx.out_names, dst)
                simplify_onnx(dst)
                ctx.integer_sources[(mode, precision)] = dst
                ctx.integer_plans[(mode, precision)] = plan
                done()
