"""A .tflite file's own graph, read for execution outside LiteRT.

The fp16-arithmetic executor runs the shipped file (not the PyTorch model), so it needs every
op with its options and every constant. Constants are numpy views into the file's bytes (a
124 MB dense file is not copied); options come from LiteRT's own schema bindings, one small
object per op.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from frlite.converter.core.errors import FrliteError
from frlite.converter.tflite.tflite_file import op_name

_NP = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16,
       schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64, schema.TensorType.INT8: np.int8,
       schema.TensorType.UINT8: np.uint8, schema.TensorType.BOOL: np.bool_, schema.TensorType.INT16: np.int16,
       schema.TensorType.FLOAT64: np.float64}
# a file over this size is refused before it is read (the dense UNet is 124 MB)
MAX_FILE_BYTES = 2**31


@dataclass
class GraphTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None  # constant value (a view into the file), None for activations


@dataclass
class GraphOp:
    index: int
    kind: str                # e.g. "CONV_2D"
    inputs: list[int]        # -1: optional input left out
    outputs: list[int]
    options: Any             # the schema's *OptionsT object, or None


@dataclass
class Graph:
    path: Path
    tensors: list[GraphTensor]
    ops: list[GraphOp]
    inputs: list[int]
    outputs: list[int]
    signature_inputs: dict[str, int] = field(default_factory=dict)
    signature_outputs: dict[str, int] = field(default_factory=dict)

    def last_use(self) -> dict[int, int]:
        """tensor index -> index of the last op reading it (graph outputs: never freed)."""
        last: dict[int, int] = {}
        for op in self.ops:
            for t in op.inputs:
                if t >= 0:
                    last[t] = op.index
        for t in self.outputs:
            last[t] = len(self.ops)
        return last


def _constant(model: schema.Model, data: bytes, t: schema.Tensor, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray | None:
    if t.Buffer() <= 0 or t.Buffer() >= model.BuffersLength():
        return None
    buf = model.Buffers(t.Buffer())
    if buf.DataLength():
        raw = buf.DataAsNumpy()
    elif buf.Offset() > 1 and buf.Size():  # files over 2 GB keep buffers after the flatbuffer
        off, size = int(buf.Offset()), int(buf.Size())
        if off + size > len(data):
            raise FrliteError(f"tensor {(t.Name() or b'').decode()!r} points past the end of the file; re-convert it")
        raw = np.frombuffer(data, np.uint8, size, off)
    else:
        return None
    count = int(np.prod(shape)) if shape else 1
    if raw.nbytes != count * np.dtype(dtype).itemsize:
        raise FrliteError(f"constant {(t.Name() or b'').decode()!r} holds {raw.nbytes} bytes, its shape {shape} needs "
                          f"{count * np.dtype(dtype).itemsize}; the file is damaged, re-convert it")
    return raw.view(dtype).reshape(shape)


def read_graph(path: str | Path) -> Graph:
    """Every op, tensor and constant of subgraph 0 of `path`."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise FrliteError(f"{path} is {size:,} bytes, over the executor's {MAX_FILE_BYTES:,}; run it on the phone instead")
    data = path.read_bytes()
    try:
        model = schema.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() != 1:
            raise ValueError(f"{model.SubgraphsLength()} subgraphs, frlite files have 1")
        sg = model.Subgraphs(0)
        tensors = []
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            if t.Type() not in _NP:
                raise ValueError(f"tensor {i} has type {t.Type()} the executor does not hold")
            dtype = np.dtype(_NP[t.Type()])
            shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            if t.Quantization() is not None and t.Quantization().ScaleLength():
                raise ValueError(f"tensor {(t.Name() or b'').decode()!r} is quantized (int8 files are not fp16-run)")
            tensors.append(GraphTensor(i, (t.Name() or b"").decode(), shape, dtype, _constant(model, data, t, dtype, shape)))
        ops = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            obj = schema.OperatorT.InitFromObj(op)
            ops.append(GraphOp(i, op_name(model, op.OpcodeIndex()), [int(x) for x in (obj.inputs if obj.inputs is not None else [])],
                               [int(x) for x in (obj.outputs if obj.outputs is not None else [])], obj.builtinOptions))
        sig_in: dict[str, int] = {}
        sig_out: dict[str, int] = {}
        if model.SignatureDefsLength():
            sd = model.SignatureDefs(0)
            sig_in = {sd.Inputs(j).Name().decode(): int(sd.Inputs(j).TensorIndex()) for j in range(sd.InputsLength())}
            sig_out = {sd.Outputs(j).Name().decode(): int(sd.Outputs(j).TensorIndex()) for j in range(sd.OutputsLength())}
        ins = [int(x) for x in sg.InputsAsNumpy()] if sg.InputsLength() else []
        outs = [int(x) for x in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
    except FrliteError:
        raise
    except Exception as exc:
        raise FrliteError(f"{path} is not a .tflite file the fp16 executor can read ({type(exc).__name__}: {exc})") from exc
    for idx in [t for op in ops for t in op.inputs + op.outputs] + ins + outs:
        if idx >= len(tensors):
            raise FrliteError(f"{path} refers to tensor {idx} of {len(tensors)}; the file is damaged, re-convert it")
    return Graph(path, tensors, ops, ins, outs, sig_in, sig_out)
