"""fp16 `.tflite` from an fp32 one: weights stored as float16, dequantized once at load.

The same form TFLite's float16 post-training quantization writes (fp16 constant -> DEQUANTIZE
-> fp32 tensor the op reads; XNNPACK and the GPU delegate consume the fp16 weights directly),
done as a flatbuffer edit in about a second instead of a second full TFLite conversion of the
dense model. Constants named in `keep_fp32` (the idct form's coefficients and basis terms) and
small ones stay fp32.
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from .tflite_graph_edit import GraphEditor

MIN_ELEMENTS = 16  # tiny constants (scalars, eps) gain nothing from fp16


def _const(model: schema.ModelT, t: schema.TensorT) -> np.ndarray | None:
    if t.type != schema.TensorType.FLOAT32 or not t.buffer:
        return None
    buf = model.buffers[t.buffer]
    if buf.data is None or len(buf.data) == 0:
        return None
    return np.frombuffer(np.asarray(buf.data, dtype=np.uint8).tobytes(), dtype=np.float32)


def to_fp16(model: schema.ModelT, keep_fp32: set[int] | None = None) -> int:
    """Convert in place; return how many constants became fp16."""
    ed = GraphEditor(model)
    keep = keep_fp32 or set()
    converted = 0
    for idx in range(len(ed.sg.tensors)):
        t = ed.sg.tensors[idx]
        if idx in keep:
            continue
        data = _const(model, t)
        if data is None or data.size < MIN_ELEMENTS or not ed.consumers(idx):
            continue
        half = ed.add_tensor(list(t.shape), np.dtype(np.float16), data=data.astype(np.float16).reshape(tuple(t.shape)))
        deq = ed.add_op("DEQUANTIZE", [half], list(t.shape))
        ed.replace_uses(idx, deq)
        converted += 1
    ed.commit_prepended()
    ed.prune()
    return converted
