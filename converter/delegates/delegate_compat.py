"""Check a `.tflite` op by op against a delegate's rules; write compat.json and compat.md.

For each op: will the delegate take it, or does it fall back to the CPU and why. The rules are
data (delegate_rules.py); the named checks are implemented here, one function each.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from frlite.converter.delegates.delegate_rules import RULES, OpRule
from frlite.converter.tflite.tflite_file import TfliteOp, TfliteSummary, read_tflite

DELEGATE_NAMES = {"tflite-gpu": "GPU delegate", "tflite-nnapi": "NNAPI delegate"}


@dataclass
class OpVerdict:
    index: int
    op: str
    delegated: bool
    reasons: list[str] = field(default_factory=list)


@dataclass
class CompatReport:
    target: str
    model: str
    precision: str
    ops: list[OpVerdict]
    notes: list[str] = field(default_factory=list)
    fp16_arith: dict | None = None  # the measured fp16-arithmetic verdict (manifest Fp16Arith as a dict)

    @property
    def precision_loss_safe(self) -> bool | None:
        """None: not measured; else whether the delegate may compute in fp16."""
        return None if self.fp16_arith is None else self.fp16_arith.get("verdict") == "safe"

    @property
    def delegate_ready(self) -> bool:
        """Every op on the delegate, and fp16 arithmetic measured safe (the delegates' fast default)."""
        return self.delegated == len(self.ops) and self.precision_loss_safe is True

    @property
    def delegated(self) -> int:
        return sum(v.delegated for v in self.ops)

    def fallback_summary(self) -> dict[str, list[str]]:
        out: dict[str, set[str]] = {}
        for v in self.ops:
            if not v.delegated:
                out.setdefault(v.op, set()).update(v.reasons)
        return {k: sorted(v) for k, v in sorted(out.items())}

    def to_json(self) -> dict:
        return {"target": self.target, "delegate": DELEGATE_NAMES[self.target], "model": self.model,
                "precision": self.precision, "ops_total": len(self.ops), "ops_delegated": self.delegated,
                "all_delegated": self.delegated == len(self.ops), "fallback": self.fallback_summary(),
                "fp16_arithmetic": self.fp16_arith, "precision_loss_allowed": self.precision_loss_safe,
                "delegate_ready": self.delegate_ready,
                "notes": self.notes, "ops": [asdict(v) for v in self.ops]}


# ---- named checks: (summary, op) -> reason string when violated, else None ----
def _is_const(s: TfliteSummary, index: int) -> bool:
    return index >= 0 and s.tensors[index].const_bytes > 0


def _producer(s: TfliteSummary, index: int) -> str:
    return next((o.name for o in s.ops if index in o.outputs), "a graph input")


def _runtime(s: TfliteSummary, index: int) -> bool:
    """Computed at run time. A constant fp16 weight behind DEQUANTIZE counts as constant: both
    delegates fold that pattern into the weights."""
    if index < 0 or _is_const(s, index):
        return False
    producer = next((o for o in s.ops if index in o.outputs), None)
    return not (producer is not None and producer.name == "DEQUANTIZE" and _is_const(s, producer.inputs[0]))


def check_broadcastable(s: TfliteSummary, op: TfliteOp) -> str | None:
    a, b = (s.tensors[i].shape for i in op.inputs[:2])
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return f"inputs {a} and {b} do not broadcast"
    return None


def check_no_runtime_grouped_weights(s: TfliteSummary, op: TfliteOp) -> str | None:
    x, w = s.tensors[op.inputs[0]], s.tensors[op.inputs[1]]
    if _runtime(s, op.inputs[1]) and x.shape[-1] != w.shape[-1]:
        return "grouped convolution with runtime weights"
    return None


def check_depthwise_multiplier(s: TfliteSummary, op: TfliteOp) -> str | None:
    x, out = s.tensors[op.inputs[0]], s.tensors[op.outputs[0]]
    if x.shape[-1] != out.shape[-1] and x.shape[-1] != 1:
        return "depth multiplier != 1 with more than one input channel"
    return None


def check_input0_runtime(s: TfliteSummary, op: TfliteOp) -> str | None:
    if _is_const(s, op.inputs[0]):
        return "input 0 is a constant"
    if op.keep_num_dims and len(s.tensors[op.inputs[0]].shape) != len(s.tensors[op.outputs[0]].shape):
        return "keep_num_dims with input rank != output rank"
    return None


def check_batch_matmul_gpu(s: TfliteSummary, op: TfliteOp) -> str | None:
    if _runtime(s, op.inputs[1]) or len(s.tensors[op.inputs[1]].shape) == 2:
        return None
    return "constant right-hand side must be 2-D"


def check_axes_int32(s: TfliteSummary, op: TfliteOp) -> str | None:
    return None if s.tensors[op.inputs[1]].dtype == "int32" else "axes must be int32"


def check_pad_4x2_or_3x2(s: TfliteSummary, op: TfliteOp) -> str | None:
    pads = s.tensors[op.inputs[1]].shape
    return None if pads in ((4, 2), (3, 2)) else f"paddings shape {pads} (needs 4x2 or 3x2)"


def check_rank_3_or_4(s: TfliteSummary, op: TfliteOp) -> str | None:
    rank = len(s.tensors[op.inputs[0]].shape)
    return None if rank in (3, 4) else f"rank-{rank} input (needs 3-D or 4-D)"


def check_not_int16(s: TfliteSummary, op: TfliteOp) -> str | None:
    return "int16 input" if s.tensors[op.inputs[0]].dtype == "int16" else None


def check_gather_1d_int32_indices(s: TfliteSummary, op: TfliteOp) -> str | None:
    idx = s.tensors[op.inputs[1]]
    return None if len(idx.shape) <= 1 and idx.dtype == "int32" else "indices must be 1-D int32"


NNAPI_API_LEVEL = 31  # the report's assumed device: NNAPI is deprecated from API 35


def check_keep_num_dims_api30(s: TfliteSummary, op: TfliteOp) -> str | None:
    return "keep_num_dims needs Android API 30" if op.keep_num_dims and NNAPI_API_LEVEL < 30 else None


def check_no_batch_broadcast(s: TfliteSummary, op: TfliteOp) -> str | None:
    a, b = (s.tensors[i].shape for i in op.inputs[:2])
    return None if len(a) == len(b) and a[:-2] == b[:-2] else f"batch dims {a[:-2]} vs {b[:-2]} broadcast"


def check_shape_input_const(s: TfliteSummary, op: TfliteOp) -> str | None:
    return None if len(op.inputs) < 2 or op.inputs[1] < 0 or _is_const(s, op.inputs[1]) else "shape input is not constant"


def check_nnapi_dequantize(s: TfliteSummary, op: TfliteOp) -> str | None:
    src = s.tensors[op.inputs[0]]
    # fp16 -> fp32: a run-time input is accepted from API 30, a constant one is folded as weights
    return None if src.dtype in ("float16", "uint8", "int8") else f"{src.dtype} input"


CHECKS = {name[len("check_"):]: fn for name, fn in list(globals().items()) if name.startswith("check_")}


def verdict(s: TfliteSummary, index: int, op: TfliteOp, rule: OpRule | None, target: str) -> OpVerdict:
    if rule is None:
        return OpVerdict(index, op.name, False, ["not supported op"])
    reasons = []
    inputs = [i for i in op.inputs if i >= 0]
    if rule.inputs is not None and len(inputs) not in rule.inputs:
        reasons.append(f"{len(inputs)} inputs (allowed: {', '.join(map(str, rule.inputs))})")
    if rule.max_rank is not None:
        ranks = [len(s.tensors[i].shape) for i in inputs + list(op.outputs)]
        if ranks and max(ranks) > rule.max_rank:
            reasons.append(f"rank-{max(ranks)} tensor (max {rule.max_rank})")
    for pos in rule.const_inputs:
        if pos < len(op.inputs) and op.inputs[pos] >= 0 and _runtime(s, op.inputs[pos]):
            reasons.append(f"input {pos} is computed at run time (by {_producer(s, op.inputs[pos])}), must be constant")
    runtime = sum(_runtime(s, i) for i in inputs)
    if rule.max_runtime_inputs is not None and runtime > rule.max_runtime_inputs:
        reasons.append(f"{runtime} run-time inputs (max {rule.max_runtime_inputs})")
    if rule.max_const_inputs is not None and len(inputs) - runtime > rule.max_const_inputs:
        reasons.append(f"{len(inputs) - runtime} constant inputs (max {rule.max_const_inputs})")
    if rule.max_version is not None and op.version > rule.max_version:
        reasons.append(f"op version {op.version} (max {rule.max_version})")
    if target == "tflite-nnapi" and rule.min_api is not None and rule.min_api > NNAPI_API_LEVEL:
        reasons.append(f"needs NNAPI level {rule.min_api} (report assumes Android API {NNAPI_API_LEVEL})")
    if rule.dtypes is not None and inputs and s.tensors[inputs[0]].dtype not in rule.dtypes:
        reasons.append(f"{s.tensors[inputs[0]].dtype} input (allowed: {', '.join(rule.dtypes)})")
    for name in rule.checks:
        msg = CHECKS[name](s, op)
        if msg:
            reasons.append(msg)
    # 16x8 files: neither delegate maps int16 activations (NNAPI's QUANT16 types serve a few LSTM /
    # dequantize paths only; the GPU delegate reads float and int8)
    if any(s.tensors[i].dtype == "int16" and not _is_const(s, i) for i in inputs + list(op.outputs)):
        reasons.append("int16 activations (16x8): no 16x8 kernel in this delegate")
    return OpVerdict(index, op.name, not reasons, reasons)


def check_model(path: Path, target: str, precision: str) -> CompatReport:
    s = read_tflite(path)
    rules = RULES[target]
    ops = [verdict(s, i, op, rules.get(op.name), target) for i, op in enumerate(s.ops)]
    notes = []
    if target == "tflite-nnapi":
        notes.append("NNAPI is deprecated from Android 15 (API 35); prefer the GPU delegate there.")
        need = max((rules[o.name].min_api or 27) for o in s.ops if o.name in rules) if s.ops else 27
        notes.append(f"verdicts assume Android API {NNAPI_API_LEVEL}; the delegated ops need API >= {need}.")
    if target == "tflite-gpu":
        notes.append("benchmark_model --use_gpu runs fp16 unless --gpu_precision_loss_allowed=false.")
    notes += _integer_notes(target, precision)
    return CompatReport(target, path.name, precision, ops, notes)


def _integer_notes(target: str, precision: str) -> list[str]:
    """What a full-integer file means on each delegate (not visible op by op)."""
    if precision == "int8" and target == "tflite-gpu":
        return ["the GPU delegate runs an int8 file by dequantizing it and computing in float (fp16 when precision "
                "loss is allowed): no faster than the float file there, and not the arithmetic the integer gate measured."]
    if precision == "int8" and target == "tflite-nnapi":
        return ["int8 (signed) tensors need NNAPI 1.3 (Android API 30); an accelerator runs the delegated part in "
                "integers, as the integer gate measured on LiteRT's CPU kernels."]
    if precision == "int16x8":
        return ["16x8 files run on LiteRT's CPU kernels; NPUs that take int16 activations do so through vendor "
                "delegates (e.g. Qualcomm's), which this report does not model."]
    return []


def format_markdown(rep: CompatReport) -> str:
    total, good = len(rep.ops), rep.delegated
    lines = [f"# {DELEGATE_NAMES[rep.target]} compatibility: {rep.model} ({rep.precision})", "",
             f"**{good} of {total} ops run on the delegate**" + (" (all)." if good == total else "; the rest fall back to the CPU."),
             "", "| op | count | on delegate | why not |", "|---|---:|---|---|"]
    counts = Counter((v.op, v.delegated) for v in rep.ops)
    reasons = rep.fallback_summary()
    for (op, ok), n in sorted(counts.items()):
        lines.append(f"| {op} | {n} | {'yes' if ok else 'no'} | {'' if ok else '; '.join(reasons.get(op, []))} |")
    lines += ["", "## Numerics on the delegate", ""]
    if rep.fp16_arith is None:
        lines.append("fp16 arithmetic not measured: run the delegate with precision loss off "
                     "(--gpu_precision_loss_allowed=false / --nnapi_allow_fp16=false).")
    else:
        lines.append(f"**{rep.fp16_arith.get('message', '')}**")
    lines += ["", f"Delegate-ready: {'yes' if rep.delegate_ready else 'no'}"
              + ("" if rep.delegate_ready else " (needs every op on the delegate and fp16 arithmetic measured safe)") + "."]
    if rep.notes:
        lines += ["", *[f"- {n}" for n in rep.notes]]
    return "\n".join(lines) + "\n"


def write_compat_report(folder: Path, tflite_path: Path, target: str, precision: str,
                        fp16_arith: dict | None = None) -> dict[str, str]:
    """Write (or rewrite, once the fp16-arithmetic verdict is measured) the file's report."""
    rep = check_model(tflite_path, target, precision)
    rep.fp16_arith = fp16_arith
    return write_report_files(folder, f"{tflite_path.stem}.{target}", rep.to_json(), format_markdown(rep))


def write_report_files(folder: Path, name: str, doc: dict, markdown: str) -> dict[str, str]:
    """compat/<name>.json and .md, and the artifact's extra_files entries naming them (the
    decision table finds a file's coverage through `compat_json`; any delegate's report)."""
    out_dir = folder / "compat"
    out_dir.mkdir(exist_ok=True)
    jpath = out_dir / f"{name}.json"
    mpath = out_dir / f"{name}.md"
    jpath.write_text(json.dumps(doc, indent=2) + "\n")
    mpath.write_text(markdown)
    return {"compat_json": str(jpath.relative_to(folder)), "compat_md": str(mpath.relative_to(folder))}
