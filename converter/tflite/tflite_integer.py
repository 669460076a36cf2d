"""What a full-integer .tflite actually computes in: per op, the type of its output.

The TFLite converter keeps an op in float when it has no integer kernel for it (in the 16x8 mode
of TF 2.19: SQRT, DIV, DEPTH_TO_SPACE), wrapping it in DEQUANTIZE / QUANTIZE. An NPU delegate runs
only the integer part, so each such float island splits the graph into more partitions: the
manifest lists them, and the delegate report counts what falls back.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from frlite.converter.tflite.tflite_file import TfliteSummary

_BOUNDARY = ("QUANTIZE", "DEQUANTIZE")
_INTEGER = ("int8", "uint8", "int16")


@dataclass
class IntegerPlan:
    """Op counts by the type they compute in, and the ops left in float (in graph order)."""

    computes_in: dict[str, int] = field(default_factory=dict)   # int8 | int16 | float32 -> ops
    float_ops: list[dict[str, str]] = field(default_factory=list)  # {"op", "output"} of each float op
    boundaries: int = 0                                          # QUANTIZE / DEQUANTIZE ops
    reason: str = ""                                             # the converter's word on why

    def record(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.computes_in.items()))
        floats = Counter(op["op"] for op in self.float_ops)
        left = f"; float: {', '.join(f'{n} {op}' for op, n in floats.items())}" if floats else "; no float op"
        return f"ops compute in {kinds}{left} ({self.boundaries} quantize/dequantize)"


def integer_plan(summary: TfliteSummary, reason: str = "") -> IntegerPlan:
    plan = IntegerPlan(reason=reason)
    counts: Counter[str] = Counter()
    for op in summary.ops:
        if op.name in _BOUNDARY:
            plan.boundaries += 1
            continue
        out = summary.tensors[op.outputs[0]] if op.outputs else None
        kind = out.dtype if out is not None else "none"
        # comparison and index ops (ARG_MAX, shapes) say nothing about precision
        if kind not in (*_INTEGER, "float32"):
            continue
        counts[kind] += 1
        if kind == "float32":
            plan.float_ops.append({"op": op.name, "output": out.name if out is not None else ""})
    plan.computes_in = dict(counts)
    return plan
