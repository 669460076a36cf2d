"""Run an exported PyTorch program's ATen graph op by op in a phone's fp16 arithmetic.

An fp16 ExecuTorch program (.pte) computes in half on every backend: XNNPACK stores each
tensor in fp16, and on ARMv8.2+ its convolutions and matrix products also accumulate in fp16
(fp16_accumulate.py). The .pte itself shows neither where a value leaves fp16's range (XNNPACK
runs each subgraph as one opaque call) nor, run on an x86 host, the fp16 accumulation (x86
XNNPACK accumulates in fp32). So the program exported for the .pte is walked here, one ATen op
at a time: every op computes from fp16 values, its output's max |value| is recorded before it
is rounded to half, like the .tflite executor (executor.py), and conv / linear accumulate in fp16
when asked. Each op keeps the module path it came from, so an overflow is named by FR layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from frlite.converter.core.errors import FrliteError

from frlite.runtimes.fp16_executor.executor import OpStat
from frlite.runtimes.fp16_executor.fp16_accumulate import (conv2d_fp16_acc, conv_macs, conv_transpose2d_fp16_acc,
                                                          linear_fp16_acc)
from frlite.runtimes.fp16_executor.rounding import FP16_MAX, RoundingPolicy, max_abs

ACCUMULATIONS = ("fp16", "fp32")
aten = torch.ops.aten


def _conv(args: list, kwargs: dict) -> torch.Tensor:  # aten.conv2d(x, w, b, stride, padding, dilation, groups)
    x, w, b, *rest = [*args, *[None] * (7 - len(args))]
    stride, padding, dilation, groups = rest[0] or 1, rest[1] or 0, rest[2] or 1, rest[3] or 1
    if isinstance(padding, str):
        raise FrliteError(f"conv2d with padding={padding!r} has no fp16-accumulation kernel")
    return conv2d_fp16_acc(x, w, b, stride, padding, dilation, int(groups))


def _convolution(args: list, kwargs: dict) -> torch.Tensor:
    x, w, b, stride, padding, dilation, transposed, output_padding, groups = args[:9]
    if transposed:
        return conv_transpose2d_fp16_acc(x, w, b, stride, padding, output_padding, int(groups), dilation)
    return conv2d_fp16_acc(x, w, b, stride, padding, dilation, int(groups))


def _conv_transpose(args: list, kwargs: dict) -> torch.Tensor:  # (x, w, b, stride, padding, output_padding, groups, dilation)
    x, w, b, *rest = [*args, *[None] * (8 - len(args))]
    return conv_transpose2d_fp16_acc(x, w, b, rest[0] or 1, rest[1] or 0, rest[2] or 0, int(rest[3] or 1), rest[4] or 1)


def _linear(args: list, kwargs: dict) -> torch.Tensor:
    return linear_fp16_acc(args[0], args[1], args[2] if len(args) > 2 else None)


def _addmm(args: list, kwargs: dict) -> torch.Tensor:  # bias + x @ w
    if kwargs.get("beta", 1) != 1 or kwargs.get("alpha", 1) != 1:
        raise FrliteError("addmm with beta / alpha has no fp16-accumulation kernel")
    return linear_fp16_acc(args[1], args[2].t(), args[0])


def _mm(args: list, kwargs: dict) -> torch.Tensor:
    return linear_fp16_acc(args[0], args[1].t(), None)


# ops XNNPACK runs as a GEMM / IGEMM: accumulated in fp16 on the phone
_FP16_ACC: dict[Any, Callable[[list, dict], torch.Tensor]] = {
    aten.conv2d.default: _conv, aten.convolution.default: _convolution,
    aten.conv_transpose2d.input: _conv_transpose, aten.linear.default: _linear,
    aten.addmm.default: _addmm, aten.mm.default: _mm,
}


def op_label(target: object) -> str:
    """`convolution` for aten.convolution.default, the function name otherwise."""
    name = getattr(target, "__name__", None) or str(target)
    return name.split(".")[0]


def module_path(node: torch.fx.Node) -> str:
    """The module the op was traced in (`down1.maxpool_conv.1.double_conv.0`), '' at the top."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return str(path).removeprefix("L['self'].").removeprefix("L['self']").lstrip(".")


@dataclass
class AtenRun:
    outputs: list[np.ndarray]  # float32, positional
    stats: list[OpStat]        # every float op output, graph order


_FP16 = RoundingPolicy("fp16")


def _as_fp16_values(v: Any) -> Any:
    """Floating tensors as fp16 values held in float32 (ops then compute in float32 from them)."""
    return _FP16.round(v.detach()) if isinstance(v, torch.Tensor) else v


class AtenGraphExecutor:
    """Executes one exported program (its `module()` graph) in fp16 arithmetic: fp16 storage after
    every op, and fp16 accumulation in conv / linear when `accumulate` is "fp16"."""

    def __init__(self, graph_module: torch.fx.GraphModule, accumulate: str = "fp16", threads: int = 1) -> None:
        if accumulate not in ACCUMULATIONS:
            raise ValueError(f"accumulate {accumulate!r} is not one of {ACCUMULATIONS}")
        self.gm = graph_module
        self.accumulate = accumulate
        self.threads = threads
        self.ops = [n for n in graph_module.graph.nodes if n.op == "call_function"]

    def accumulated_macs(self) -> int:
        """Multiply-adds the fp16-accumulating kernels would take per run (from the traced shapes)."""
        total = 0
        for n in self.ops:
            if n.target not in _FP16_ACC:
                continue
            out = n.meta.get("val")
            w = n.args[1] if n.target is not aten.addmm.default else n.args[2]
            wv = getattr(w, "meta", {}).get("val")
            if not isinstance(out, torch.Tensor) or not isinstance(wv, torch.Tensor):
                continue
            if n.target in (aten.linear.default, aten.addmm.default, aten.mm.default):
                k = int(wv.shape[1] if n.target is aten.linear.default else wv.shape[0])
                total += out.numel() * k
            elif n.target is aten.conv_transpose2d.input or (n.target is aten.convolution.default and n.args[6]):
                x = n.args[0].meta["val"]  # every input element meets every tap once
                total += x.numel() * int(wv.shape[1]) * int(np.prod(wv.shape[2:]))
            else:
                total += conv_macs(tuple(n.args[0].meta["val"].shape), tuple(wv.shape), tuple(out.shape))
        return total

    def run(self, inputs: list[np.ndarray]) -> AtenRun:
        stats: list[OpStat] = []
        index = {n: i for i, n in enumerate(self.ops)}
        executor = self

        class _Interp(torch.fx.Interpreter):
            def run_node(self, n: torch.fx.Node) -> Any:
                if n.op in ("placeholder", "get_attr"):
                    return _as_fp16_values(super().run_node(n))
                if n.op != "call_function":
                    return super().run_node(n)
                args, kwargs = self.fetch_args_kwargs_from_env(n)
                kernel = _FP16_ACC.get(n.target) if executor.accumulate == "fp16" else None
                try:
                    out = kernel(list(args), dict(kwargs)) if kernel else n.target(*args, **kwargs)
                except FrliteError:
                    raise
                except Exception as exc:
                    raise FrliteError(f"op {index[n]} {op_label(n.target)} ({n.name}) failed in the fp16 executor "
                                      f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
                return executor._round(n, index[n], out, stats)

        prev = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                feeds = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in inputs]
                outs = _Interp(self.gm).run(*feeds)
        finally:
            torch.set_num_threads(prev)
        flat = outs if isinstance(outs, (list, tuple)) else [outs]
        return AtenRun([o.detach().float().numpy() for o in flat], stats)

    def _round(self, n: torch.fx.Node, i: int, out: Any, stats: list[OpStat]) -> Any:
        if isinstance(out, (list, tuple)):
            return type(out)(self._round(n, i, o, stats) for o in out)
        if not isinstance(out, torch.Tensor) or not out.is_floating_point():
            return out
        m = max_abs(out)
        # a half result is already rounded: inf there is an fp16 accumulator that overflowed
        overflow = m > FP16_MAX and (math.isfinite(m) or out.dtype == torch.half)
        nonfinite = not math.isfinite(m) and not overflow
        stats.append(OpStat(i, op_label(n.target), n.name, i, m, overflow, nonfinite, layer=module_path(n) or None))
        return _FP16.round(out)
