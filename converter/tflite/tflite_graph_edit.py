"""Small, exact edits of a `.tflite` graph (object API): add tensors and ops, rewire, prune.

The building blocks of the idct form in TFLite: frlite writes the in-graph IDCT itself instead
of hoping onnx2tf maps a computed conv weight to the right layout (it does not, reliably: it
leaves an in-graph OIHW weight untransposed, `Dimensions must be equal`, and it picks a wrong
permutation when a weight's axes have equal sizes).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from frlite.converter.tflite.tflite_file import OP_NAMES

_NP_TO_TFL = {np.dtype(np.float32): schema.TensorType.FLOAT32, np.dtype(np.int32): schema.TensorType.INT32,
              np.dtype(np.float16): schema.TensorType.FLOAT16}
_TFL_TO_NP = {v: k for k, v in _NP_TO_TFL.items()}

# (options type, options class) per op this module writes, and the op version it needs. Ops whose
# options are all defaults get none written (None): the runtime parses defaults, the file is
# ~10 bytes smaller per op.
_OPS = {
    "FULLY_CONNECTED": (schema.BuiltinOptions.FullyConnectedOptions, schema.FullyConnectedOptionsT, 5),
    "TRANSPOSE": (schema.BuiltinOptions.NONE, None, 1),
    "RESHAPE": (schema.BuiltinOptions.NONE, None, 1),   # the shape comes as input 1
    "SLICE": (schema.BuiltinOptions.NONE, None, 1),
    "MUL": (schema.BuiltinOptions.NONE, None, 1),
    "COS": (schema.BuiltinOptions.NONE, None, 1),
    "GATHER": (schema.BuiltinOptions.GatherOptions, schema.GatherOptionsT, 1),
    "DEQUANTIZE": (schema.BuiltinOptions.NONE, None, 3),  # v3: fp16 input
}


class GraphEditor:
    """Edits subgraph 0 of a ModelT in place."""

    def __init__(self, model: schema.ModelT) -> None:
        self.model = model
        self.sg = model.subgraphs[0]
        self.new_ops: list[schema.OperatorT] = []
        self._const_cache: dict[tuple, int] = {}

    # ---- tensors ----
    def add_tensor(self, shape: Iterable[int], dtype: np.dtype = np.dtype(np.float32), name: str = "",
                   data: np.ndarray | None = None) -> int:
        t = schema.TensorT()
        t.shape = np.array(list(shape), dtype=np.int32)
        t.type = _NP_TO_TFL[np.dtype(dtype)]
        t.name = name
        t.hasRank = True
        t.buffer = 0
        self.sg.tensors.append(t)
        if data is not None:
            self.set_constant(len(self.sg.tensors) - 1, np.asarray(data, dtype=dtype))
        return len(self.sg.tensors) - 1

    def set_constant(self, index: int, data: np.ndarray) -> None:
        """Give tensor `index` its own buffer holding `data` (its dtype and shape must fit)."""
        buf = schema.BufferT()
        buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
        self.model.buffers.append(buf)
        self.sg.tensors[index].buffer = len(self.model.buffers) - 1

    def constant(self, index: int) -> np.ndarray | None:
        """The data of a constant float32 / float16 / int32 tensor, in its shape; None otherwise."""
        t = self.sg.tensors[index]
        dtype = _TFL_TO_NP.get(t.type)
        buf = self.model.buffers[t.buffer] if t.buffer < len(self.model.buffers) else None
        if dtype is None or not t.buffer or buf is None or buf.data is None or len(buf.data) == 0:
            return None
        return np.frombuffer(np.asarray(buf.data, dtype=np.uint8).tobytes(), dtype=dtype).reshape(
            tuple(int(d) for d in t.shape))

    def const_int32(self, values: Iterable[int] | np.ndarray) -> int:
        arr = np.asarray(values, dtype=np.int32)
        key = ("i32", arr.shape, arr.tobytes())
        if key not in self._const_cache:
            self._const_cache[key] = self.add_tensor(arr.shape, np.dtype(np.int32), data=arr)
        return self._const_cache[key]

    def shape_of(self, index: int) -> tuple[int, ...]:
        return tuple(int(s) for s in self.sg.tensors[index].shape)

    # ---- ops ----
    def _opcode(self, op: str) -> int:
        code_value = getattr(schema.BuiltinOperator, op)
        version = _OPS[op][2]
        for i, code in enumerate(self.model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == code_value:
                code.version = max(code.version, version)
                return i
        code = schema.OperatorCodeT()
        code.builtinCode = code_value
        code.deprecatedBuiltinCode = min(code_value, 127)
        code.version = version
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    def add_op(self, op: str, inputs: list[int], out_shape: Iterable[int], options: object | None = None) -> int:
        out = self.add_tensor(out_shape)
        o = schema.OperatorT()
        o.opcodeIndex = self._opcode(op)
        o.inputs = np.array(inputs, dtype=np.int32)
        o.outputs = np.array([out], dtype=np.int32)
        kind, cls, _ = _OPS[op]
        o.builtinOptionsType = kind
        o.builtinOptions = options if options is not None else (cls() if cls is not None else None)
        self.new_ops.append(o)
        return out

    def slice(self, source: int, begin: list[int], size: list[int]) -> int:
        return self.add_op("SLICE", [source, self.const_int32(begin), self.const_int32(size)], size)

    def reshape(self, source: int, shape: list[int]) -> int:
        return self.add_op("RESHAPE", [source, self.const_int32(shape)], shape)

    def gather(self, params: int, indices: int) -> int:
        """params 1-D, indices any shape -> output shaped like indices."""
        return self.add_op("GATHER", [params, indices], self.shape_of(indices))

    def mul(self, a: int, b: int) -> int:
        sa, sb = self.shape_of(a), self.shape_of(b)
        shape = list(np.broadcast_shapes(sa, sb))
        return self.add_op("MUL", [a, b], shape)

    def cos(self, a: int) -> int:
        return self.add_op("COS", [a], self.shape_of(a))

    def fully_connected(self, x: int, weights: int) -> int:
        """x (..., k) times weights (n, k)^T -> (..., n), keeping x's leading dims."""
        opts = schema.FullyConnectedOptionsT()
        opts.keepNumDims = True
        shape = list(self.shape_of(x)[:-1]) + [self.shape_of(weights)[0]]
        return self.add_op("FULLY_CONNECTED", [x, weights, -1], shape, opts)

    def transpose(self, x: int, perm: list[int]) -> int:
        shape = [self.shape_of(x)[p] for p in perm]
        return self.add_op("TRANSPOSE", [x, self.const_int32(perm)], shape)

    def commit_prepended(self) -> None:
        """Put the new ops first: they depend only on constants, their consumers come later."""
        self.sg.operators = self.new_ops + list(self.sg.operators)
        self.new_ops = []

    # ---- rewiring and pruning ----
    def replace_uses(self, old: int, new: int) -> int:
        count = 0
        for op in self.sg.operators:
            ins = np.array(op.inputs, dtype=np.int32)
            hit = ins == old
            if hit.any():
                ins[hit] = new
                op.inputs = ins
                count += int(hit.sum())
        return count

    def consumers(self, index: int) -> list[schema.OperatorT]:
        return [op for op in self.sg.operators if index in list(op.inputs)]

    def op_name(self, op: schema.OperatorT) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        value = max(code.builtinCode, code.deprecatedBuiltinCode)
        return OP_NAMES.get(value, str(value))

    def prune(self) -> dict[int, int]:
        """Drop ops whose outputs nobody reads, then unreferenced tensors and buffers; return the
        map old tensor index -> new index of the tensors kept."""
        sg = self.sg
        graph_out = set(int(i) for i in sg.outputs)
        changed = True
        while changed:
            used = set(graph_out)
            for op in sg.operators:
                used.update(int(i) for i in op.inputs if i >= 0)
            keep = [op for op in sg.operators if any(int(o) in used for o in op.outputs)]
            changed = len(keep) != len(sg.operators)
            sg.operators = keep
        referenced = set(int(i) for i in sg.inputs) | graph_out
        for op in sg.operators:
            referenced.update(int(i) for i in op.inputs if i >= 0)
            referenced.update(int(i) for i in op.outputs)
        order = sorted(referenced)
        remap = {old: new for new, old in enumerate(order)}
        sg.tensors = [sg.tensors[i] for i in order]
        sg.inputs = np.array([remap[int(i)] for i in sg.inputs], dtype=np.int32)
        sg.outputs = np.array([remap[int(i)] for i in sg.outputs], dtype=np.int32)
        for op in sg.operators:
            op.inputs = np.array([remap[int(i)] if i >= 0 else -1 for i in op.inputs], dtype=np.int32)
            op.outputs = np.array([remap[int(i)] for i in op.outputs], dtype=np.int32)
        for sd in self.model.signatureDefs or []:
            for tm in list(sd.inputs or []) + list(sd.outputs or []):
                tm.tensorIndex = remap[int(tm.tensorIndex)]
        # tensors without data share the empty sentinel buffer 0 instead of one empty buffer each
        for t in sg.tensors:
            buf = self.model.buffers[t.buffer]
            if t.buffer and (buf.data is None or len(buf.data) == 0) and not buf.size:
                t.buffer = 0
        # buffers: keep 0 (the empty sentinel) and those still referenced
        used_buffers = sorted({0} | {t.buffer for t in sg.tensors})
        bremap = {old: new for new, old in enumerate(used_buffers)}
        self.model.buffers = [self.model.buffers[i] for i in used_buffers]
        for t in sg.tensors:
            t.buffer = bremap[t.buffer]
        self._const_cache = {}
        return remap

    def compact(self) -> None:
        """Drop what no runtime reads: internal tensor names, empty quantization tables, and shape
        signatures equal to the static shape. Graph input/output names are kept."""
        keep = set(int(i) for i in self.sg.inputs) | set(int(i) for i in self.sg.outputs)
        for i, t in enumerate(self.sg.tensors):
            if i not in keep:
                t.name = None  # not even an empty string: ~8 bytes per tensor
            q = t.quantization
            if q is not None and not any(
                    v is not None and len(v) for v in (q.scale, q.zeroPoint, q.min, q.max)) and q.details is None:
                t.quantization = None
            if t.shapeSignature is not None and list(t.shapeSignature) == list(t.shape):
                t.shapeSignature = None
