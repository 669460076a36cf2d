"""Read and edit `.tflite` flatbuffers with LiteRT's own schema bindings.

Reading (op counts, tensors, constant sizes) uses the lazy accessors so a 124 MB dense model is
not copied into Python objects; editing (turning a graph input into a constant) uses the object
API on the small idct/factorized models only.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from frlite.converter.core.bounded_read import read_bounded
from frlite.converter.core.errors import FrliteError

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_NP_TYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "int64": np.int64,
             "int8": np.int8, "uint8": np.uint8, "bool": np.bool_, "int16": np.int16}


def op_name(model: schema.Model, opcode_index: int) -> str:
    code = model.OperatorCodes(opcode_index)
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
        return f"CUSTOM:{code.CustomCode().decode()}"
    return OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


@dataclass
class TfliteTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    const_bytes: int  # bytes of constant data (0 for activations)


@dataclass
class TfliteOp:
    name: str
    inputs: list[int]
    outputs: list[int]
    version: int = 1
    keep_num_dims: bool = False  # FULLY_CONNECTED only


@dataclass
class TfliteSummary:
    path: Path
    size_bytes: int
    ops: list[TfliteOp]
    tensors: list[TfliteTensor]
    inputs: list[TfliteTensor]
    outputs: list[TfliteTensor]
    signature_inputs: dict[str, int] = field(default_factory=dict)   # signature name -> tensor index
    signature_outputs: dict[str, int] = field(default_factory=dict)

    @property
    def op_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(op.name for op in self.ops).items()))

    @property
    def constant_bytes(self) -> int:
        return sum(t.const_bytes for t in self.tensors)

    @property
    def largest_constant(self) -> TfliteTensor | None:
        consts = [t for t in self.tensors if t.const_bytes]
        return max(consts, key=lambda t: t.const_bytes) if consts else None


def read_tflite(path: str | Path) -> TfliteSummary:
    path = Path(path)
    data = read_bounded(path, "TFLite model")
    try:
        model = schema.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
        sg = model.Subgraphs(0)
    except Exception as exc:
        raise FrliteError(f"{path} is not a readable .tflite file ({type(exc).__name__}: {exc})") from exc
    tensors = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        buf = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        nbytes = 0
        if buf is not None:
            nbytes = buf.DataLength() or int(buf.Size())
        tensors.append(TfliteTensor(i, (t.Name() or b"").decode(), tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else (),
                                    _TYPE_NAMES.get(t.Type(), str(t.Type())), nbytes))
    ops = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
        name = op_name(model, op.OpcodeIndex())
        keep = False
        if name == "FULLY_CONNECTED" and op.BuiltinOptions() is not None:
            fc = schema.FullyConnectedOptions()
            table = op.BuiltinOptions()
            fc.Init(table.Bytes, table.Pos)
            keep = bool(fc.KeepNumDims())
        ops.append(TfliteOp(name, ins, outs, model.OperatorCodes(op.OpcodeIndex()).Version(), keep))
    sig_in: dict[str, int] = {}
    sig_out: dict[str, int] = {}
    if model.SignatureDefsLength():
        sd = model.SignatureDefs(0)
        for j in range(sd.InputsLength()):
            sig_in[sd.Inputs(j).Name().decode()] = sd.Inputs(j).TensorIndex()
        for j in range(sd.OutputsLength()):
            sig_out[sd.Outputs(j).Name().decode()] = sd.Outputs(j).TensorIndex()
    ins = [tensors[int(i)] for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
    outs = [tensors[int(i)] for i in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
    return TfliteSummary(path, len(data), ops, tensors, ins, outs, sig_in, sig_out)


def load_model_object(path: str | Path) -> schema.ModelT:
    data = Path(path).read_bytes()
    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def save_model_object(model: schema.ModelT, path: str | Path) -> None:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    Path(path).write_bytes(bytes(builder.Output()))


def name_io(model: schema.ModelT, input_names: list[str], output_names: list[str]) -> None:
    """Name the graph inputs/outputs (in order) and give the model a `serving_default`
    signature with those names, so runners address tensors by the model's own names."""
    sg = model.subgraphs[0]
    if len(sg.inputs) != len(input_names) or len(sg.outputs) != len(output_names):
        raise FrliteError(f"converted .tflite has {len(sg.inputs)} inputs / {len(sg.outputs)} outputs, "
                          f"expected {len(input_names)} / {len(output_names)}")
    sig = schema.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs, sig.outputs = [], []
    for idx, name in zip(sg.inputs, input_names):
        sg.tensors[idx].name = name
        tm = schema.TensorMapT()
        tm.name, tm.tensorIndex = name, int(idx)
        sig.inputs.append(tm)
    for idx, name in zip(sg.outputs, output_names):
        sg.tensors[idx].name = name
        tm = schema.TensorMapT()
        tm.name, tm.tensorIndex = name, int(idx)
        sig.outputs.append(tm)
    model.signatureDefs = [sig]
