"""Run a .tflite file's own graph op by op, rounding as an fp16 phone does, and record per op
the largest |value| it produced, so the first op that leaves fp16's range is named."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from frlite.converter.core.errors import FrliteError

from frlite.runtimes.fp16_executor.graph import Graph, read_graph
from frlite.runtimes.fp16_executor.kernels import KERNELS, KernelContext, UnsupportedOp
from frlite.runtimes.fp16_executor.rounding import FP16_MAX, RoundingPolicy, max_abs


@dataclass
class OpStat:
    """One op's output on one run: max |value| before rounding, and whether it left fp16."""

    op_index: int
    op_type: str
    output: str          # the output tensor's name in the file
    output_index: int
    max_abs: float       # inf / nan when the output was already non-finite
    overflowed: bool     # |x| > 65,504: stored as inf in fp16
    nonfinite: bool      # inf or nan before rounding
    layer: str | None = None  # the module the op came from, when the graph knows it (exported programs)

    @property
    def bad(self) -> bool:
        return self.overflowed or self.nonfinite


def torch_dtype_of(ctx: KernelContext, index: int) -> torch.dtype:
    return ctx.dtypes[index]  # type: ignore[attr-defined]


_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16, np.dtype(np.int32): torch.int32,
          np.dtype(np.int64): torch.int64, np.dtype(np.int8): torch.int8, np.dtype(np.uint8): torch.uint8,
          np.dtype(np.bool_): torch.bool, np.dtype(np.int16): torch.int16, np.dtype(np.float64): torch.float64}


class GraphExecutor:
    """Executes one file. Constants are converted (and in fp16 mode rounded) once at load;
    intermediates are freed as soon as their last consumer ran."""

    def __init__(self, path: str | Path, arithmetic: str = "fp16", threads: int = 1) -> None:
        self.graph: Graph = read_graph(path)
        self.policy = RoundingPolicy(arithmetic)
        self.threads = threads
        missing = sorted({op.kind for op in self.graph.ops} - set(KERNELS))
        if missing:
            raise UnsupportedOp(f"{Path(path).name} holds ops the fp16 executor has no kernel for: {', '.join(missing)}; "
                                "run parity without the fp16-arith variant")
        self._consts: dict[int, torch.Tensor] = {}
        for t in self.graph.tensors:
            if t.data is not None:
                value = torch.from_numpy(np.array(t.data))  # a copy: the file's bytes are read-only
                # fp32 constants are stored as fp16 on the phone; fp16 ones stay fp16 until DEQUANTIZE
                self._consts[t.index] = self.policy.round(value) if value.dtype == torch.float32 else value
        self._ctx = KernelContext({t.index: t.shape for t in self.graph.tensors}, set(self._consts))
        self._ctx.dtypes = {t.index: _TORCH[t.dtype] for t in self.graph.tensors}  # type: ignore[attr-defined]
        self._last_use = self.graph.last_use()

    def input_indices(self) -> dict[str, int]:
        """Input name (the signature's, else the tensor's) -> tensor index."""
        if self.graph.signature_inputs:
            return dict(self.graph.signature_inputs)
        return {self.graph.tensors[i].name: i for i in self.graph.inputs}

    def output_indices(self) -> dict[str, int]:
        if self.graph.signature_outputs:
            return dict(self.graph.signature_outputs)
        return {self.graph.tensors[i].name: i for i in self.graph.outputs}

    def run(self, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[OpStat]]:
        """Outputs (in the file's layout, float32) and every float op's statistics, in op order."""
        values: dict[int, torch.Tensor] = {}
        for name, idx in self.input_indices().items():
            if name not in feeds:
                raise FrliteError(f"input {name!r} missing; the file takes {sorted(self.input_indices())}")
            arr = np.asarray(feeds[name])
            want = self.graph.tensors[idx].shape
            if tuple(arr.shape) != tuple(want):
                raise FrliteError(f"input {name!r} has shape {tuple(arr.shape)}, the file takes {tuple(want)}")
            t = torch.from_numpy(np.array(arr, dtype=self.graph.tensors[idx].dtype))
            values[idx] = self.policy.round(t)
        stats: list[OpStat] = []
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                for op in self.graph.ops:
                    outs = self.run_op(op.index, [None if i < 0 else (values[i] if i in values else self._consts[i])
                                                  for i in op.inputs])
                    for idx, out in zip(op.outputs, outs):
                        if out.is_floating_point():
                            stats.append(self._stat(op.index, op.kind, idx, out))
                            out = self.policy.round(out)
                        values[idx] = out
                    for i in op.inputs:  # free what no later op reads
                        if i >= 0 and i in values and self._last_use.get(i, -1) <= op.index:
                            del values[i]
        finally:
            torch.set_num_threads(prev_threads)
        result = {name: values[idx].numpy().astype(np.float32, copy=False) for name, idx in self.output_indices().items()}
        return result, stats

    def run_op(self, op_index: int, args: list) -> list[torch.Tensor]:
        """One op's kernel on the given inputs (None for a left-out optional input), no rounding."""
        op = self.graph.ops[op_index]
        try:
            return KERNELS[op.kind](op, args, self._ctx)
        except FrliteError:
            raise
        except Exception as exc:
            raise FrliteError(f"op {op.index} {op.kind} failed in the fp16 executor ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]}); the file does not run as written") from exc

    def constant(self, index: int) -> torch.Tensor | None:
        """A constant as the executor holds it (fp16-rounded in fp16 mode)."""
        return self._consts.get(index)

    def _stat(self, op_index: int, kind: str, idx: int, out: torch.Tensor) -> OpStat:
        m = max_abs(out)
        nonfinite = not math.isfinite(m)
        return OpStat(op_index, kind, self.graph.tensors[idx].name, idx, m, (not nonfinite) and m > FP16_MAX, nonfinite)
