"""The idct form of a `.tflite`: each FR weight rebuilt in the graph from its kept coefficients.

Starts from the dense `.tflite` onnx2tf made (a well-trodden path, checked by parity), finds each
FR weight's constant by its VALUES (so the layout onnx2tf chose is known exactly, never guessed
from a shape), and replaces it with builtin ops that rebuild it from small
fp32 constants: the coefficient boxes (stored already in that layout) and the basis terms:

    per size n:  B_n = cos(odd[:n] * pi/2n * freqs[:k]) * s_k           (SLICE, MUL, COS)
    per weight:  FULLY_CONNECTED with B per axis, TRANSPOSE between (converter/idct_rebuild.py)

The constant stays fp32 in fp16 files (an fp16 basis gave 20x the dense fp16 model's error on a
small UNet, 0.20 vs 0.011): the rebuilt weight replaces the
DEQUANTIZE output the fp16 file feeds its convolution with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from frlite.converter.core.errors import FrliteError
from frlite.converter.fr.idct_params import ParamPack, Segment
from frlite.converter.fr.idct_rebuild import FRWeight, match_permutation, plan_weight, rebuild_weight
from frlite.converter.core.layouts import onnx2tf_layout
from frlite.converter.tflite.tflite_graph_edit import GraphEditor


class _TfliteOps:
    def __init__(self, ed: GraphEditor, basis) -> None:  # type: ignore[no-untyped-def]
        self.ed, self.basis = ed, basis

    def expand_last(self, t: int, n: int, k: int) -> int:
        return self.ed.fully_connected(t, self.basis(n, k))

    def transpose(self, t: int, perm: list[int]) -> int:
        return self.ed.transpose(t, perm)


@dataclass
class _RebuildPlan:
    """One weight to rebuild: the file's constant it replaces and how its box is stored."""

    name: str                  # the FR layer's weight key
    target: int                # tensor index of the converted weight in the file
    perm: tuple[int, ...]      # torch layout -> the file's layout
    shape: tuple[int, ...]     # rebuilt weight's shape, in the file's layout
    box: tuple[int, ...]       # kept corner box, in the same axis order
    seg: Segment               # where the box's values sit in the parameter pack


@dataclass
class InjectionReport:
    rebuilt: dict[str, tuple[int, ...]]   # layer -> permutation torch layout -> tflite layout
    kept_dense: dict[str, str]            # layer -> why it stays a dense constant
    params_floats: int
    layer_outputs: dict[str, int] = None  # type: ignore[assignment]  # layer -> tensor index of its op's output


_LAYER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED")


_FOLLOW = ("STRIDED_SLICE", "SLICE", "PAD", "PADV2", "RESHAPE", "ADD", "DEPTH_TO_SPACE")


def _layer_output(ed: GraphEditor, weight_tensor: int, expected: tuple[int, ...] | None = None) -> int | None:
    """The tensor equal to the FR layer's PyTorch output: the output of the conv / FC op reading
    this weight, followed through the ops a converter appends to finish the layer (the crop of a
    transposed conv with padding, a bias ADD) until it has the layer's shape in the file's layout."""
    start = next((int(op.outputs[0]) for op in ed.consumers(weight_tensor) if ed.op_name(op) in _LAYER_OPS), None)
    if start is None or expected is None:
        return start
    t = start
    for _ in range(4):
        users = ed.consumers(t)
        if ed.shape_of(t) == expected:
            bias_add = (len(users) == 1 and ed.op_name(users[0]) == "ADD"
                        and any(i != t and ed.sg.tensors[i].buffer and ed.model.buffers[ed.sg.tensors[i].buffer].data is not None
                                for i in users[0].inputs))
            return int(users[0].outputs[0]) if bias_add else t
        if len(users) != 1 or ed.op_name(users[0]) not in _FOLLOW:
            return None
        t = int(users[0].outputs[0])
    return None


def _expected(shapes: dict[str, tuple[int, ...]] | None, name: str) -> tuple[int, ...] | None:
    from frlite.converter.core.layouts import onnx2tf_layout

    if not shapes or name not in shapes:
        return None
    shape = tuple(shapes[name])
    perm = onnx2tf_layout(len(shape))[1]
    return tuple(shape[p] for p in perm) if perm else shape


def fr_layer_outputs(model: schema.ModelT, weights: list[FRWeight],
                     shapes: dict[str, tuple[int, ...]] | None = None, views: Iterable[Any] = ()) -> dict[str, int]:
    """For a converted (dense) file: layer name -> tensor index of that FR layer's output,
    found through the weight's values like the injection does (for per-layer parity). `views`
    (WeightView, converter/onnx/onnx_repairs.py): layouts an ONNX repair gave weights, tried
    when no permutation of the weight matches."""
    ed = GraphEditor(model)
    taken: set[int] = set()
    out = {}
    for w in weights:
        found = _find_weight(ed, w, taken) or _find_viewed_weight(ed, w, taken, list(views))
        if found is not None:
            taken.add(found[0])
            idx = _layer_output(ed, found[0], _expected(shapes, w.name))
            if idx is not None:
                out[w.name] = idx
    return out


def _find_viewed_weight(ed: GraphEditor, w: FRWeight, taken: set[int], views: list[Any]) -> tuple[int, tuple[int, ...]] | None:
    """(tensor, view permutation) of a constant holding a repair's view of the weight (1x1, so
    onnx2tf's channels-last move keeps its data order), judged by value like _find_weight
    (fp16 at fp16 precision) and following a DEQUANTIZE likewise."""
    views = [v for v in views if len(v.perm) == w.dense.ndim and int(np.prod(v.shape)) == w.dense.size]
    for idx in range(len(ed.sg.tensors)):
        arr = None if idx in taken or not views else ed.constant(idx)
        if arr is None or arr.size != w.dense.size:
            continue
        for view in views:
            cand = np.ascontiguousarray(w.dense.transpose(view.perm)).reshape(arr.shape)
            if match_permutation(arr, cand) != tuple(range(arr.ndim)):
                continue
            users = ed.consumers(idx)
            if len(users) == 1 and ed.op_name(users[0]) == "DEQUANTIZE":
                return int(users[0].outputs[0]), tuple(view.perm)
            return idx, tuple(view.perm)
    return None


def _find_weight(ed: GraphEditor, w: FRWeight, taken: set[int]) -> tuple[int, tuple[int, ...]] | None:
    """(tensor the weight's consumers read, permutation); follows a DEQUANTIZE of an fp16 constant."""
    for idx in range(len(ed.sg.tensors)):
        if idx in taken:
            continue
        arr = ed.constant(idx)
        if arr is None:
            continue
        perm = match_permutation(arr, w.dense)
        if perm is None:
            continue
        users = ed.consumers(idx)
        if users and all(ed.op_name(op) == "DEQUANTIZE" for op in users):
            if len(users) != 1:
                continue
            return int(users[0].outputs[0]), perm
        return idx, perm
    return None


def _text(name: str | bytes | None) -> str:
    return name.decode() if isinstance(name, bytes) else (name or "")


def _input_weight(ed: GraphEditor, index: int, ndim: int) -> tuple[int, tuple[int, ...]]:
    """(tensor the layer reads, permutation) for a weight that is a graph input of the skeleton:
    onnx2tf moved it channels-last like any input; a TRANSPOSE it added after (transposed
    convs) is absorbed, the rebuild then writes that layout directly."""
    perm = tuple(onnx2tf_layout(ndim)[1] or range(ndim))
    users = ed.consumers(index)
    if len(users) == 1 and ed.op_name(users[0]) == "TRANSPOSE":
        tperm = ed.constant(int(users[0].inputs[1]))
        if tperm is not None:
            return int(users[0].outputs[0]), tuple(perm[int(p)] for p in tperm)
    return index, perm


def _viewed_input(ed: GraphEditor, index: int, view: Any) -> tuple[int, tuple[int, ...]]:
    """(tensor, permutation) for an input re-declared as reshape(transpose(W, perm), shape) with
    1x1 spatial dims: channels-last (O, 1, 1, I) holds the same data in the same order, so the
    rebuild makes transpose(W, perm) and reshapes it."""
    if tuple(view.shape[2:]) != (1,) * (len(view.shape) - 2):
        raise FrliteError(f"internal error: a re-declared weight input of shape {view.shape} is not 1x1")
    return index, tuple(view.perm)


def inject_idct(model: schema.ModelT, weights: list[FRWeight], compact: bool = True,
                shapes: dict[str, tuple[int, ...]] | None = None,
                input_weights: dict[str, str] | None = None, input_views: dict[str, Any] | None = None) -> InjectionReport:
    """Rewrite `model` in place into the idct form; returns what was rebuilt and what stayed dense.
    `input_weights` (layer -> graph input name) names the weights a weight-free skeleton takes
    as inputs; they are rebuilt in the graph and leave the inputs and the signature.
    `input_views` (layer -> WeightView, converter/onnx/onnx_repairs.py): inputs an ONNX repair
    re-declared as a transposed and reshaped weight (1x1, so channels-last moves no data); the
    rebuild writes that transpose and a RESHAPE to the input's shape."""
    ed = GraphEditor(model)
    pack = ParamPack()
    plans: list[_RebuildPlan] = []
    kept_dense: dict[str, str] = {}
    taken: set[int] = set()
    outputs_before: dict[str, int] = {}
    by_name = {_text(ed.sg.tensors[int(i)].name): int(i) for i in ed.sg.inputs}
    dropped_inputs: set[int] = set()
    for w in weights:
        if input_weights and w.name in input_weights:
            if input_weights[w.name] not in by_name:
                raise FrliteError(f"the skeleton .tflite has no input {input_weights[w.name]} for {w.name}")
            dropped_inputs.add(by_name[input_weights[w.name]])
            found: tuple[int, tuple[int, ...]] | None = _input_weight(ed, by_name[input_weights[w.name]], w.dense.ndim)
            view = (input_views or {}).get(w.name)
            if view is not None:
                found = _viewed_input(ed, found[0], view)
        else:
            found = _find_weight(ed, w, taken)
        if found is None:
            kept_dense[w.name] = "onnx2tf rewrote this weight (fused or split), no constant equals it"
            continue
        target, perm = found
        taken.add(target)
        shape, box, seg = plan_weight(pack, w.coeffs, w.box, w.dense.shape, perm)
        plans.append(_RebuildPlan(w.name, target, perm, shape, box, seg))
        layer_out = _layer_output(ed, target, _expected(shapes, w.name))
        if layer_out is not None:
            outputs_before[w.name] = layer_out
    if not plans:
        raise FrliteError("no FR weight of the model was found in the converted .tflite; cannot build the idct form")
    pack.add_bases()
    params = pack.vector()

    def take(seg, shape: tuple[int, ...] | None = None) -> int:  # type: ignore[no-untyped-def]
        """Each packed segment becomes its own small fp32 constant: no slicing ops needed."""
        data = params[seg.offset: seg.offset + seg.size].reshape(shape or seg.shape)
        return ed.add_tensor(data.shape, np.dtype(np.float32), data=data)

    # bases are built 3-D (1, n, k) because the GPU delegate slices only 3-D/4-D tensors
    assert pack.odd is not None and pack.freqs is not None
    max_n, max_k = pack.odd.shape[0], pack.freqs.shape[1]
    odd, freqs = take(pack.odd, (1, max_n, 1)), take(pack.freqs, (1, 1, max_k))
    bases3: dict[tuple[int, int], int] = {}
    for n, (step_seg, scale_seg) in pack.basis_terms.items():
        k = scale_seg.shape[1]
        odd_n = ed.slice(odd, [0, 0, 0], [1, n, 1])
        freqs_k = ed.slice(freqs, [0, 0, 0], [1, 1, k])
        angles = ed.mul(ed.mul(odd_n, take(step_seg, (1, 1, 1))), freqs_k)
        bases3[(n, k)] = ed.mul(ed.cos(angles), take(scale_seg, (1, 1, k)))
    bases: dict[tuple[int, int], int] = {}

    def basis(n: int, k: int) -> int:
        if (n, k) not in bases:
            full = next(kk for (nn, kk) in bases3 if nn == n)
            b3 = bases3[(n, full)] if k == full else ed.slice(bases3[(n, full)], [0, 0, 0], [1, n, k])
            bases[(n, k)] = ed.reshape(b3, [n, k])
        return bases[(n, k)]

    # Layers whose boxes share one pattern of kept positions (FR keeps the same zigzag ranks in
    # every layer of a shape) store only their kept values; one shared GATHER index per pattern
    # expands them into the box. A pattern used once is cheaper stored as the plain box.
    patterns: dict[tuple, list[int]] = {}
    for i, plan in enumerate(plans):
        seg = plan.seg
        box_vals = params[seg.offset: seg.offset + seg.size]
        patterns.setdefault((seg.shape, np.flatnonzero(box_vals).tobytes()), []).append(i)

    def box_tensor(i: int) -> int:
        seg = plans[i].seg
        box_vals = params[seg.offset: seg.offset + seg.size]
        key = (seg.shape, np.flatnonzero(box_vals).tobytes())
        if len(patterns[key]) < 2:
            return take(seg)
        nz = np.flatnonzero(box_vals)
        index = np.full(seg.size, nz.size, dtype=np.int32)  # points at the trailing zero
        index[nz] = np.arange(nz.size)
        values = np.append(box_vals[nz], np.float32(0)).astype(np.float32)
        return ed.gather(ed.add_tensor(values.shape, np.dtype(np.float32), data=values),
                         ed.const_int32(index.reshape(seg.shape)))

    rebuilt = {}
    replacements = []
    for i, plan in enumerate(plans):
        name, target, perm, shape, box = plan.name, plan.target, plan.perm, plan.shape, plan.box
        t = rebuild_weight(_TfliteOps(ed, basis), box_tensor(i), shape, box)
        if name in (input_views or {}):
            t = ed.reshape(t, [int(s) for s in ed.sg.tensors[target].shape])
        if ed.shape_of(t) != tuple(int(s) for s in ed.sg.tensors[target].shape):
            raise FrliteError(f"idct rebuild of {name}: shape {ed.shape_of(t)} != converted weight "
                              f"{tuple(ed.sg.tensors[target].shape)}")
        replacements.append((target, t))
        rebuilt[name] = perm
    for target, t in replacements:
        ed.replace_uses(target, t)  # before the new ops join the graph: they never read a target
    ed.commit_prepended()
    if dropped_inputs:
        ed.sg.inputs = np.array([i for i in ed.sg.inputs if int(i) not in dropped_inputs], dtype=np.int32)
        for sd in model.signatureDefs or []:
            sd.inputs = [tm for tm in sd.inputs or [] if int(tm.tensorIndex) not in dropped_inputs]
    remap = ed.prune()
    if compact:
        ed.compact()
    layer_outputs = {k: remap[v] for k, v in outputs_before.items() if v in remap}
    return InjectionReport(rebuilt, kept_dense, int(params.size), layer_outputs)

