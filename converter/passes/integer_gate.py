"""Pass integer_gate: every full-integer file (int8 / int16x8) against PyTorch fp32 on the task.

Quantized activations move every value, so the value tolerance of quick parity cannot judge these
files; the task can (converter/core/tolerances.py INTEGER_GATES). The gate runs on the --inputs
files when given, else on the calibration samples themselves (the log says so: held-out inputs
are the honest check). Each file is also compared op by op with its fp32 twin from the same
onnx2tf run (runtimes/quant_layers.py), and the layers that lose the most are recorded and, when
the gate fails, named in the one-line refusal: nothing is written for a file that fails.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from frlite.converter.core.errors import FrliteError
from frlite.converter.core.manifest import ArtifactParity, IntegerCheck
from frlite.converter.core.tolerances import INTEGER_GATES, INTEGER_PRECISIONS
from frlite.converter.passes.context import QUICK_RUN, ConvertContext
from frlite.converter.passes.driver import BasePass

WORST_SHOWN = 3


def _references(ctx: ConvertContext, samples: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    assert ctx.model is not None and ctx.example is not None
    refs = []
    with torch.no_grad():
        for sample in samples:
            out = ctx.model(*[torch.from_numpy(sample[n]) for n in ctx.example])
            refs.append([o.detach().float().numpy() for o in (out if isinstance(out, (tuple, list)) else [out])])
    return refs


def _gate_inputs(ctx: ConvertContext) -> tuple[list[dict[str, np.ndarray]], list[list[np.ndarray]], str]:
    """(samples, PyTorch references, description): --inputs when given, else the calibration set."""
    from frlite.runtimes.parity_inputs import describe_samples

    if ctx.req.input_files:
        assert ctx.ref_outputs is not None
        return ctx.samples(), ctx.ref_outputs, ctx.samples_described()
    cal = ctx.calibration_samples()
    samples = [s.arrays for s in cal]
    return samples, _references(ctx, samples), f"the calibration set, {describe_samples(cal)} (give --inputs to check held-out data)"


def measure_task(runtime, samples: list[dict[str, np.ndarray]], refs: list[list[np.ndarray]],  # type: ignore[no-untyped-def]
                 out_names: list[str]) -> tuple[str, str, float, float]:
    """(task, metric, worst value over samples and outputs, worst output SQNR in dB)."""
    from frlite.runtimes.parity_metrics import guess_task, sqnr_db, task_metrics

    task = guess_task(tuple(refs[0][0].shape))
    metric = INTEGER_GATES[task][0]
    values, sqnrs = [], []
    for sample, ref_outs in zip(samples, refs):
        got = runtime.run(sample)
        for name, ref in zip(out_names, ref_outs):
            out = got[name]
            if not np.isfinite(out).all():
                return task, metric, -math.inf if metric == "sqnr_db" else 0.0, -math.inf
            sqnr = sqnr_db(ref, out)
            sqnrs.append(sqnr)
            values.append(sqnr if metric == "sqnr_db" else getattr(task_metrics(task, ref, out), metric))
    return task, metric, min(values), min(sqnrs)


def _nhwc_feeds(art, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    return {i.name: (np.ascontiguousarray(sample[i.model_name].transpose(i.perm_from_model)) if i.perm_from_model
                     else sample[i.model_name]) for i in art.inputs}


class IntegerGate(BasePass):
    def __init__(self) -> None:
        # before quick_parity, which frees the dense weights this pass finds FR layers by
        super().__init__("integer_gate", needs=("tmp", "model", "artifacts", "out_names", "integer_twins"), adds=())

    def applies(self, ctx: ConvertContext) -> bool:
        return any(p in INTEGER_PRECISIONS for p in ctx.req.precisions)

    def run(self, ctx: ConvertContext) -> None:
        from frlite.converter.tflite.tflite_file import read_tflite
        from frlite.converter.tflite.tflite_integer import integer_plan
        from frlite.runtimes.loader import open_artifact
        from frlite.runtimes.quant_layers import compare_quantized, describe, worst_layers

        assert ctx.tmp is not None and ctx.out_names is not None
        samples, refs, described = _gate_inputs(ctx)
        calibration = [s.record() for s in ctx.calibration_samples()]
        done = ctx.step(f"integer task gate on {described}")
        checks: dict[str, IntegerCheck] = {}
        names: dict[Path, dict[str, str]] = {}
        failures = []
        for art in [a for a in ctx.artifacts if a.precision in INTEGER_PRECISIONS]:
            if art.path not in checks:
                task, metric, value, out_sqnr = measure_task(open_artifact(ctx.tmp, art, QUICK_RUN), samples, refs,
                                                             ctx.out_names)
                threshold = INTEGER_GATES[task][1] if ctx.req.integer_gate is None else ctx.req.integer_gate
                passed = math.isfinite(value) and value >= threshold
                twin = ctx.integer_twins[(art.mode, art.precision)]
                if twin not in names:
                    names[twin] = _layer_names(ctx, twin)
                rows = compare_quantized(twin, ctx.tmp / art.path, _nhwc_feeds(art, samples[0]), names[twin])
                worst = worst_layers(rows, WORST_SHOWN)
                shown = f"{value:.2%}" if metric != "sqnr_db" else f"{value:.1f} dB"
                need = f"{threshold:.0%}" if metric != "sqnr_db" else f"{threshold:.0f} dB"
                message = (f"{metric.replace('_', ' ')} {shown} {'>=' if passed else '<'} {need} against PyTorch fp32, "
                           f"output SQNR {out_sqnr:.1f} dB")
                plan = integer_plan(read_tflite(ctx.tmp / art.path), ctx.integer_fallback.get((art.mode, art.precision), ""))
                ctx.log(f"  {art.path}: {plan.summary()}")
                checks[art.path] = IntegerCheck(
                    activations="int16" if art.precision == "int16x8" else "int8", io_dtype=ctx.req.io_dtype,
                    calibration=calibration, task=task, metric=metric, value=value if math.isfinite(value) else None,
                    threshold=threshold, passed=passed, inputs=described,
                    output_sqnr_db=out_sqnr if math.isfinite(out_sqnr) else None,
                    worst_layers=[r.record() for r in worst], layers=[r.record() for r in rows], message=message,
                    plan=[plan.record(), *ctx.integer_plans.get((art.mode, art.precision), [])])
                ctx.log(f"  {art.path}: {message}; {'ok' if passed else 'REFUSED'}")
                for r in worst:
                    ctx.log(f"    loses most: {describe(r)}")
                if not passed:
                    failures.append(f"{art.path}: {message}; worst layers: "
                                    + "; ".join(describe(r) for r in worst))
            check = checks[art.path]
            art.integer = check
            art.parity = ArtifactParity(len(samples), math.nan, math.nan, check.threshold, check.passed)
        done()
        if failures:
            int8_failed = any(a.precision == "int8" and not a.integer.passed for a in ctx.artifacts if a.integer)
            raise FrliteError("integer file fails the task gate on " + described + ": " + " | ".join(failures)
                              + "; calibrate on typical inputs (--calibration)"
                              + (" or use --precision int16x8" if int8_failed else "") + "; nothing was written")


def _layer_names(ctx: ConvertContext, twin: Path) -> dict[str, str]:
    """Tensor name -> FR layer whose output it is, found in the fp32 twin through the weights'
    values (dense files; a factorized file holds no FR weight, its ops keep their graph names).
    The integer file shares the twin's op output names, so the map carries over."""
    from frlite.converter.tflite.tflite_file import load_model_object, read_tflite
    from frlite.converter.tflite.tflite_idct import fr_layer_outputs

    if not ctx.weights:
        return {}
    indices = fr_layer_outputs(load_model_object(twin), ctx.weights, ctx.layer_shapes, set(ctx.weight_views.values()))
    if not indices:
        return {}
    tensors = read_tflite(twin).tensors
    return {tensors[i].name: layer for layer, i in indices.items()}
