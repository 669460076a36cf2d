"""TFLite through the LiteRT interpreter (`ai_edge_litert`) behind the Runtime interface.

Variants: "xnnpack" (the default delegate), "builtin" (builtin kernels, no default delegates)
and "reference" (reference kernels). Tensor layouts come from the manifest: onnx2tf turns NCHW
tensors into NHWC, and the caller passes that permutation in `perms`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from frlite.converter.core.bounded_read import check_regular_file

from frlite.runtimes.base import RunOptions, Runtime, TensorSpec

_RESOLVERS = {
    "xnnpack": OpResolverType.AUTO,
    "default": OpResolverType.AUTO,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "reference": OpResolverType.BUILTIN_REF,
}


class LiteRTRuntime(Runtime):
    name = "tflite"

    def __init__(self, path: str | Path, options: RunOptions | None = None,
                 io_specs: dict[str, TensorSpec] | None = None) -> None:
        check_regular_file(path, "TFLite model")  # LiteRT maps the path itself: no FIFO, device or oversized file
        opts = options or RunOptions()
        if opts.variant not in _RESOLVERS:
            raise ValueError(f"unknown LiteRT variant {opts.variant!r}; use one of {sorted(_RESOLVERS)}")
        self.variant = opts.variant
        self.interpreter = Interpreter(model_path=str(path), num_threads=opts.threads,
                                       experimental_op_resolver_type=_RESOLVERS[opts.variant],
                                       experimental_preserve_all_tensors=bool(opts.extra.get("preserve_all_tensors")))
        self.interpreter.allocate_tensors()
        self._runner = self.interpreter.get_signature_runner() if self.interpreter.get_signature_list() else None
        io_specs = io_specs or {}
        self._inputs = [self._spec(d, io_specs) for d in self._details(inputs=True)]
        self._outputs = [self._spec(d, io_specs) for d in self._details(inputs=False)]

    def _details(self, inputs: bool) -> list[dict]:
        if self._runner is not None:
            d = self._runner.get_input_details() if inputs else self._runner.get_output_details()
            return [dict(v, sig_name=k) for k, v in d.items()]
        d = self.interpreter.get_input_details() if inputs else self.interpreter.get_output_details()
        return [dict(v, sig_name=v["name"]) for v in d]

    @staticmethod
    def _spec(detail: dict, io_specs: dict[str, TensorSpec]) -> TensorSpec:
        name = detail["sig_name"]
        known = io_specs.get(name)
        shape = tuple(int(s) for s in detail["shape"])
        dtype = np.dtype(detail["dtype"]).name
        if _quantization(detail) is not None:
            dtype = "float32"  # an integer-I/O file takes and gives real values: run_native (de)quantizes
        if known is not None:
            return TensorSpec(name, shape, dtype, known.layout, known.perm_from_model)
        return TensorSpec(name, shape, dtype, "model")

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run_native(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ins = {d["sig_name"]: d for d in self._details(inputs=True)}
        outs = {d["sig_name"]: d for d in self._details(inputs=False)}
        feeds = {k: _to_file(v, ins[k]) for k, v in feeds.items()}
        if self._runner is not None:
            return {k: _from_file(np.array(v), outs[k]) for k, v in self._runner(**feeds).items()}
        for d in self.interpreter.get_input_details():
            self.interpreter.set_tensor(d["index"], feeds[d["name"]])
        self.interpreter.invoke()
        return {d["name"]: _from_file(np.array(self.interpreter.get_tensor(d["index"])), outs[d["name"]])
                for d in self.interpreter.get_output_details()}


def _quantization(detail: dict) -> tuple[float, int] | None:
    """(scale, zero point) of an integer input / output of a full-integer file, else None."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if np.dtype(detail["dtype"]).kind in "iu" and scale:
        return float(scale), int(zero_point)
    return None


def quantize(arr: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """Real values to an integer tensor's codes (rounded, saturated), as LiteRT's QUANTIZE does."""
    info = np.iinfo(dtype)
    return np.clip(np.round(arr / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(arr: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (arr.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def _to_file(x: np.ndarray, detail: dict) -> np.ndarray:
    q = _quantization(detail)
    return x if q is None else quantize(x, detail["dtype"], *q)


def _from_file(y: np.ndarray, detail: dict) -> np.ndarray:
    q = _quantization(detail)
    return y if q is None else dequantize(y, *q)
