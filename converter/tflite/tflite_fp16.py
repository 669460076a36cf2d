"""fp16 `.tflite` from an fp32 one: weights stored as float16, dequantized once at load.

The same form TFLite's float16 post-training quantization writes (fp16 constant -> DEQUANTIZE
-> fp32 tensor the op reads; XNNPACK and the GPU delegate consume the fp16 weights directly),
done as a flatbuffer edit in about a second instead of a second full TFLite conversion of the
dense model. Constants named in `keep_fp32` (the idct form's coefficients and basis terms) and
small ones stay fp32, except the bias of a conv whose filter becomes fp16: XNNPACK takes an fp16
filter as is only with an fp16 bias, and otherwise leaves the whole conv to the CPU kernels (the
factorized UNet, whose small convs have 4-element biases, fell into 41 partitions, 2x slower).
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from frlite.converter.tflite.tflite_graph_edit import GraphEditor

MIN_ELEMENTS = 16  # tiny constants (scalars, eps) gain nothing from fp16


def to_fp16(model: schema.ModelT, keep_fp32: set[int] | None = None) -> int:
    """Convert in place; return how many constants became fp16."""
    ed = GraphEditor(model)
    keep = keep_fp32 or set()
    consts = {i: d for i, t in enumerate(ed.sg.tensors)
              if i not in keep and t.type == schema.TensorType.FLOAT32 and (d := ed.constant(i)) is not None}
    chosen = {i for i, d in consts.items() if d.size >= MIN_ELEMENTS and ed.consumers(i)}
    chosen |= _biases_of_fp16_filters(ed, chosen, set(consts))
    converted = 0
    for idx in sorted(chosen):
        t, data = ed.sg.tensors[idx], consts[idx]
        half = ed.add_tensor(list(t.shape), np.dtype(np.float16), data=data.astype(np.float16))
        deq = ed.add_op("DEQUANTIZE", [half], list(t.shape))
        ed.replace_uses(idx, deq)
        converted += 1
    ed.commit_prepended()
    ed.prune()
    return converted


# (filter input, bias input) of the ops XNNPACK runs with fp16 weights
_FILTER_BIAS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2), "TRANSPOSE_CONV": (1, 3)}


def _biases_of_fp16_filters(ed: GraphEditor, chosen: set[int], consts: set[int]) -> set[int]:
    """Constant biases (any size) of ops whose filter is chosen, when every reader of the bias is such an op."""
    def bias_of_fp16_op(op: schema.OperatorT, idx: int) -> bool:
        pos = _FILTER_BIAS.get(ed.op_name(op))
        return (pos is not None and len(op.inputs) > pos[1] and int(op.inputs[pos[1]]) == idx
                and int(op.inputs[pos[0]]) in chosen)

    extra = set()
    for idx in consts - chosen:
        users = ed.consumers(idx)
        if users and all(bias_of_fp16_op(op, idx) for op in users):
            extra.add(idx)
    return extra
