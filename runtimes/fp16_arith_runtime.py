"""The fp16-arithmetic executor behind the Runtime interface: parity variant "fp16-arith" of
the tflite runtime (and "fp32-arith", the same kernels without rounding, to validate them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from frlite.runtimes.base import RunOptions, Runtime, TensorSpec
from frlite.runtimes.fp16_executor import GraphExecutor, OpStat

ARITH_VARIANTS = {"fp16-arith": "fp16", "fp32-arith": "fp32"}


class Fp16ArithRuntime(Runtime):
    name = "tflite"

    def __init__(self, path: str | Path, options: RunOptions | None = None,
                 io_specs: dict[str, TensorSpec] | None = None) -> None:
        opts = options or RunOptions(variant="fp16-arith")
        if opts.variant not in ARITH_VARIANTS:
            raise ValueError(f"unknown arithmetic variant {opts.variant!r}; use one of {sorted(ARITH_VARIANTS)}")
        self.variant = opts.variant
        self.executor = GraphExecutor(path, ARITH_VARIANTS[opts.variant], opts.threads)
        self.runs: list[list[OpStat]] = []  # per run, every float op's statistics
        io_specs = io_specs or {}
        tensors = self.executor.graph.tensors
        self._inputs = [self._spec(n, tensors[i].shape, tensors[i].dtype.name, io_specs)
                        for n, i in self.executor.input_indices().items()]
        self._outputs = [self._spec(n, tensors[i].shape, "float32", io_specs)
                         for n, i in self.executor.output_indices().items()]

    @staticmethod
    def _spec(name: str, shape: tuple[int, ...], dtype: str, io_specs: dict[str, TensorSpec]) -> TensorSpec:
        known = io_specs.get(name)
        if known is not None:
            return TensorSpec(name, tuple(shape), dtype, known.layout, known.perm_from_model)
        return TensorSpec(name, tuple(shape), dtype, "model")

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run_native(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs, stats = self.executor.run(feeds)
        self.runs.append(stats)
        return outs

    def producers(self) -> dict[int, int]:
        """tensor index -> index of the op writing it."""
        return {t: op.index for op in self.executor.graph.ops for t in op.outputs}
