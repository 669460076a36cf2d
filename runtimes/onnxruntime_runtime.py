"""ONNX Runtime (CPU) behind the Runtime interface; graph optimizations on or off."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from frlite.converter.core.bounded_read import check_regular_file

from frlite.runtimes.base import RunOptions, Runtime, TensorSpec

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(bool)": "bool"}


_LEVELS = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
           "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(self, path: str | Path, options: RunOptions | None = None, layouts: dict[str, str] | None = None) -> None:
        check_regular_file(path, "ONNX model")  # ORT opens the path itself: no FIFO, device or oversized file
        opts = options or RunOptions()
        so = ort.SessionOptions()
        so.intra_op_num_threads = opts.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        level = "disable" if opts.variant == "no-opt" else str(opts.extra.get("graph_optimization_level", "all"))
        if level not in _LEVELS:
            raise ValueError(f"unknown ONNX Runtime graph optimization level {level!r}; use one of {sorted(_LEVELS)}")
        so.graph_optimization_level = _LEVELS[level]
        if opts.extra.get("low_memory"):  # no arena or planned pattern: peak = live tensors (quick checks)
            so.enable_cpu_mem_arena = False
            so.enable_mem_pattern = False
        self.variant = opts.variant
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        layouts = layouts or {}
        self._inputs = [self._spec(a, layouts) for a in self.session.get_inputs()]
        self._outputs = [self._spec(a, layouts) for a in self.session.get_outputs()]

    @staticmethod
    def _spec(arg: ort.NodeArg, layouts: dict[str, str]) -> TensorSpec:
        shape = tuple(int(d) if isinstance(d, int) else -1 for d in arg.shape)
        return TensorSpec(arg.name, shape, _ORT_TYPES.get(arg.type, arg.type), layouts.get(arg.name, "model"))

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run_native(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._outputs]
        return dict(zip(names, self.session.run(names, feeds)))
