"""From fp16-executor runs to the one verdict a deployment engineer acts on.

A file is "safe" in fp16 arithmetic when no op's output leaves fp16's range (|x| <= 65,504, all
finite) on any sample and its outputs stay within the fp16 tolerance of PyTorch fp32, or, where
the task is known, the task gate holds (converter/core/tolerances.py: 99.9% of pixels, every
top-1) with the error under FP16_ARITH_CEILING. Otherwise it is "unsafe", naming the first op
that overflowed, and the app must run the delegate with precision loss off. An overflow whose
inf later washes out (rsqrt(inf) = 0) is still unsafe: what a GPU does with inf is not specified.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from frlite.converter.core.manifest import STORAGE_ONLY, Fp16Arith
from frlite.converter.core.tolerances import FP16_ARITH_CEILING, TASK_GATES

from frlite.runtimes.fp16_executor import OpStat
from frlite.runtimes.parity_metrics import guess_task, task_metrics

OFF_FLAGS = "--gpu_precision_loss_allowed=false / --nnapi_allow_fp16=false"


def first_bad(runs: list[list[OpStat]]) -> OpStat | None:
    """The earliest op (in graph order) that overflowed or went non-finite on any sample; its
    max |value| is the largest seen there over samples."""
    bad = [s for stats in runs for s in stats if s.bad]
    if not bad:
        return None
    first = min(s.op_index for s in bad)
    at = [s for s in bad if s.op_index == first]
    return max(at, key=lambda s: s.max_abs if not math.isnan(s.max_abs) else -1.0)


def layer_of(op_index: int, layer_outputs: dict[str, Any], producers: dict[int, int]) -> str | None:
    """The FR layer whose output was computed last at or before `op_index` (the manifest maps FR
    layers to the file's tensors): the overflow is in that layer or in what follows it."""
    best: tuple[int, str] | None = None
    for layer, tensor in layer_outputs.items():
        if not isinstance(tensor, int) or tensor not in producers:
            continue
        p = producers[tensor]
        if p <= op_index and (best is None or p > best[0]):
            best = (p, layer)
    return best[1] if best else None


def _overflow_record(s: OpStat, layer: str | None) -> dict[str, Any]:
    return {"op_index": s.op_index, "op_type": s.op_type, "output": s.output, "output_tensor": s.output_index,
            "max_abs": s.max_abs if math.isfinite(s.max_abs) else str(s.max_abs),
            "kind": "overflow" if s.overflowed else "non-finite", "layer": layer}


def describe_overflow(rec: dict[str, Any]) -> str:
    where = f"op {rec['op_index']} {rec['op_type']} ({rec['output'] or 'tensor ' + str(rec['output_tensor'])})"
    if rec.get("layer"):
        layer = rec["layer"] if str(rec["layer"]).startswith("module ") else f"FR layer {rec['layer']}"
        where += f" (in {layer})" if rec.get("within") else f" (at or after {layer})"
    what = f"overflows fp16 (max |value| {float(rec['max_abs']):.3g})" if rec["kind"] == "overflow" \
        else f"goes non-finite ({rec['max_abs']})"
    return f"{where} {what}"


def measure(runs: list[list[OpStat]], refs: list[dict[str, np.ndarray]], outs: list[dict[str, np.ndarray]],
            tolerance: float, layer_outputs: dict[str, Any] | None = None,
            producers: dict[int, int] | None = None, task: str | None = None, inputs: str = "",
            arithmetic: str = STORAGE_ONLY, remedy: str = f"run with {OFF_FLAGS}") -> Fp16Arith:
    """The verdict for one file from its executor runs (stats and outputs, model layout) against
    PyTorch's outputs on the same samples (described by `inputs`, e.g. "2 seeded random samples").
    `task` overrides the task guessed from each output's shape. The task gate can lift only
    outputs that have a task: an output without one must meet the value tolerance. `arithmetic`
    says what the runs rounded (manifest STORAGE_ONLY / FP16_ACCUMULATION); `remedy` is what an
    unsafe file's line tells the user to do."""
    worst = 0.0
    worst_ungated = 0.0
    nonfinite_out = False
    gate: tuple[str, float, float] | None = None  # (metric, least value over samples and gated outputs, gate)
    for ref, got in zip(refs, outs):
        for name, r in ref.items():
            g = got[name]
            if not np.all(np.isfinite(g)):
                nonfinite_out = True
            scale = float(np.abs(r).max()) or 1.0
            with np.errstate(invalid="ignore"):
                err = float(np.nanmax(np.where(np.isfinite(g), np.abs(g - r), np.inf))) / scale
            worst = max(worst, err)
            the_task = task or guess_task(tuple(r.shape))
            if the_task not in TASK_GATES:
                worst_ungated = max(worst_ungated, err)
                continue
            metric, least = TASK_GATES[the_task]
            value = float(getattr(task_metrics(the_task, r, np.nan_to_num(g, nan=-np.inf)), metric) or 0.0)
            if gate is None or value < gate[1]:
                gate = (metric, value, least)
    pixel = gate[1] if gate and gate[0] == "pixel_agreement" else None
    bad = first_bad(runs)
    rec = None
    if bad is not None:  # an op that knows its module is named by it; else the last FR layer before it
        rec = _overflow_record(bad, bad.layer or layer_of(bad.op_index, layer_outputs or {}, producers or {}))
        rec["within"] = bad.layer is not None
    gate_txt = f", {gate[0].replace('_', ' ')} {100 * gate[1]:.3f}%" if gate else ""
    worst_txt = f"worst error/scale {worst:.2e}" if math.isfinite(worst) else "non-finite outputs"
    on_txt = f" on {inputs}" if inputs else ""
    arith_txt = "" if arithmetic == STORAGE_ONLY else f", {arithmetic}"
    clean = rec is None and not nonfinite_out
    gate_holds = (gate is not None and gate[1] >= gate[2] and worst <= FP16_ARITH_CEILING
                  and worst_ungated <= tolerance)
    if clean and worst <= tolerance:
        return Fp16Arith("safe", worst, pixel, len(refs), tolerance, None,
                         f"fp16 arithmetic: safe ({worst_txt}{gate_txt}{on_txt}{arith_txt})", "value", inputs, arithmetic)
    if clean and gate_holds:
        assert gate is not None
        return Fp16Arith("safe", worst, pixel, len(refs), tolerance, None,
                         f"fp16 arithmetic: safe by the task gate ({worst_txt} over the {tolerance:.0e} value "
                         f"tolerance, under the {FP16_ARITH_CEILING:.0e} ceiling{gate_txt} >= "
                         f"{100 * gate[2]:g}%{on_txt}{arith_txt})", "task", inputs, arithmetic)
    if rec is not None:
        why = describe_overflow(rec)
    elif gate is not None:
        why = (f"precision loss without overflow: {gate[0].replace('_', ' ')} {100 * gate[1]:.3f}% "
               f"(gate {100 * gate[2]:g}%), {worst_txt} (ceiling {FP16_ARITH_CEILING:.0e})")
    else:
        why = f"precision loss without overflow: {worst_txt} (tolerance {tolerance:.0e})"
    hint = "; measure on your own data with `convert --inputs` or `parity --inputs`" \
        if "seeded random" in inputs and rec is None else ""
    return Fp16Arith("unsafe", worst if math.isfinite(worst) else None, pixel, len(refs), tolerance, rec,
                     f"fp16 arithmetic: unsafe{on_txt}{arith_txt}: {why}{gate_txt if rec else ''}; {remedy}{hint}",
                     "overflow" if rec else ("task" if gate else "value"), inputs, arithmetic)

