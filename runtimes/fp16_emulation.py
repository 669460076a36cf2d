"""Run a PyTorch module as a phone's fp16 path computes it: every op's output stored in IEEE fp16.

GPU delegates with precision loss allowed, NNAPI with allow_fp16 and XNNPACK's fp16 inference
keep every intermediate tensor in fp16 (largest finite value 65,504; beyond it inf). This
emulation rounds the inputs, every parameter and buffer, and the floating output of every torch
op (a TorchFunctionMode) through fp16 and back, so overflow and lost precision show up on the
host. Arithmetic inside one op (a conv's accumulation) stays fp32: that differs between GPUs,
and rounding after every op is the floor of what a phone adds, not its ceiling.

It also records the first op whose output overflowed or went non-finite, with the module it ran
in and the largest |value| it would have had in fp32, so a failure names its cause.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

FP16_MAX = 65504.0


@dataclass
class Overflow:
    """The first op whose fp16 output was not finite."""

    module: str       # qualified name of the innermost module running ("" for the root)
    op: str           # torch function name, e.g. "conv2d", "mul"
    max_abs: float    # largest |value| of the op's fp32 output (inf/nan if already so)


@dataclass
class Fp16Run:
    outputs: list[torch.Tensor]
    first_overflow: Overflow | None
    ops: int = 0
    op_max_abs: dict[str, float] = field(default_factory=dict)  # "module/op" -> largest |fp32 output|


def round_fp16(t: torch.Tensor) -> torch.Tensor:
    """IEEE fp16 round-to-nearest-even and back; out-of-range values become +-inf, as hardware does."""
    return t.to(torch.float16).to(t.dtype)


class _RoundEveryOp(TorchFunctionMode):
    def __init__(self, where: list[str], record_max: bool) -> None:
        super().__init__()
        self.where = where
        self.first: Overflow | None = None
        self.ops = 0
        self.record_max = record_max
        self.op_max: dict[str, float] = {}

    def _round(self, out: object, name: str) -> object:
        if isinstance(out, torch.Tensor) and out.is_floating_point() and out.dtype != torch.float16:
            self.ops += 1
            rounded = round_fp16(out)
            if self.record_max or self.first is None:
                finite = bool(torch.isfinite(rounded).all())
                if self.record_max or not finite:
                    peak = float(out.detach().abs().max()) if out.numel() else 0.0
                    key = f"{self.where[-1]}/{name}"
                    if self.record_max:
                        self.op_max[key] = max(self.op_max.get(key, 0.0), peak)
                    if not finite and self.first is None:
                        self.first = Overflow(self.where[-1], name, peak)
            return rounded
        if isinstance(out, (tuple, list)):
            return type(out)(self._round(o, name) for o in out)
        return out

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", str(func))
        if name in ("size", "dim", "__get__", "numel", "contiguous", "view", "reshape", "detach") or name.startswith("__get"):
            return out  # shape queries and pure views change no value
        return self._round(out, name)


def fp16_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode whose parameters and buffers hold fp16-rounded values (still fp32)."""
    clone = copy.deepcopy(model).eval()
    with torch.no_grad():
        for t in list(clone.parameters()) + list(clone.buffers()):
            if t.is_floating_point():
                t.copy_(round_fp16(t))
    return clone


def run_fp16(model: nn.Module, *inputs: torch.Tensor, record_max: bool = False, round_params: bool = True) -> Fp16Run:
    """Forward `model` (not modified) with fp16 storage after every op; see the module docstring."""
    m = fp16_copy(model) if round_params else model
    where = [""]
    hooks = []
    for name, sub in m.named_modules():
        def pre(mod: nn.Module, args: object, name: str = name) -> None:
            where.append(name)

        def post(mod: nn.Module, args: object, out: object) -> None:
            where.pop()
        hooks.append(sub.register_forward_pre_hook(pre))
        hooks.append(sub.register_forward_hook(post))
    mode = _RoundEveryOp(where, record_max)
    try:
        with torch.no_grad(), mode:
            out = m(*[round_fp16(x) for x in inputs])
    finally:
        for h in hooks:
            h.remove()
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return Fp16Run(outs, mode.first, mode.ops, mode.op_max)
