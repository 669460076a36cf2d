"""The idct form of an `.onnx`: FR weight initializers replaced by an in-graph inverse DCT.

Starts from the dense ONNX export, finds each FR weight's initializer by value (any axis
permutation the exporter chose), and replaces it with

    B_n = Cos(odd[:n] * pi/2n * freqs[:k]) * s_k                      (per axis size n)
    W   = MatMul with B_n^T per axis, Transpose between              (converter/idct_rebuild.py)

whose inputs are small fp32 initializers (coefficient boxes and basis terms). The file keeps
only those; ONNX Runtime folds the subgraph once when it loads the model, so inference costs
what the dense model costs. (Einsum would be one node per weight, but ORT folds it ~50x slower.)
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from frlite.converter.core.errors import FrliteError
from frlite.converter.fr.idct_params import ParamPack
from frlite.converter.fr.idct_rebuild import match_permutation, plan_weight, rebuild_weight
from frlite.converter.fr.idct_rebuild import FRWeight


@dataclass
class OnnxInjectionReport:
    rebuilt: dict[str, tuple[int, ...]]
    kept_dense: dict[str, str]
    params_floats: int
    layer_outputs: dict[str, str] = None  # type: ignore[assignment]  # layer -> output value of its Conv/Gemm


_LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _consumer_output(graph: onnx.GraphProto, value: str) -> str | None:
    """Output of the Conv/Gemm/MatMul reading the weight; a MatMul's bias Add is followed."""
    for n in graph.node:
        if n.op_type in _LAYER_OPS and value in list(n.input):
            out = n.output[0]
            if n.op_type == "MatMul":
                users = [m for m in graph.node if out in list(m.input)]
                if len(users) == 1 and users[0].op_type == "Add":
                    out = users[0].output[0]
            return out
    return None


def onnx_layer_outputs(path: Path, weights: list[FRWeight]) -> dict[str, str]:
    """For a dense ONNX: layer name -> output value of the node reading that FR weight."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    out, taken = {}, set()
    for w in weights:
        name = next((n for n, a in inits.items() if n not in taken and match_permutation(a, w.dense) is not None), None)
        if name is not None:
            taken.add(name)
            value = _consumer_output(graph, name)
            if value is not None:
                out[w.name] = value
    return out


def inject_idct_onnx(src: Path, dst: Path, weights: list[FRWeight], compact_names: bool = True,
                     input_weights: dict[str, str] | None = None) -> OnnxInjectionReport:
    """Write `dst`: `src` with each FR weight rebuilt in the graph. A weight is either a graph
    input named in `input_weights` (layer -> input, torch layout: the weight-free skeleton) or
    an initializer, found by value; rebuilt inputs leave the graph's input list."""
    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    input_weights = dict(input_weights or {})
    graph_inputs = {v.name for v in graph.input}
    pack = ParamPack()
    plans = []
    kept_dense: dict[str, str] = {}
    taken: set[str] = set()
    for w in weights:
        found = None
        if w.name in input_weights:
            if input_weights[w.name] not in graph_inputs:
                raise FrliteError(f"the skeleton ONNX has no input {input_weights[w.name]} for {w.name}")
            found = (input_weights[w.name], tuple(range(w.dense.ndim)))
        for name, init in inits.items() if found is None else ():
            if name in taken or init.data_type != onnx.TensorProto.FLOAT:
                continue
            perm = match_permutation(numpy_helper.to_array(init), w.dense)
            if perm is not None:
                found = (name, perm)
                break
        if found is None:
            kept_dense[w.name] = "the exporter rewrote this weight (fused or split), no initializer equals it"
            continue
        name, perm = found
        taken.add(name)
        shape, box, seg = plan_weight(pack, w.coeffs, w.box, w.dense.shape, perm)
        plans.append((w.name, name, perm, shape, box, seg))
    if not plans:
        raise FrliteError("no FR weight of the model was found in the exported ONNX; cannot build the idct form")
    pack.add_bases()
    params = pack.vector()
    nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    counter = itertools.count()

    def const(seg) -> str:  # type: ignore[no-untyped-def]
        name = f"fr_c{next(counter)}"
        new_inits.append(numpy_helper.from_array(params[seg.offset: seg.offset + seg.size].reshape(seg.shape), name))
        return name

    def node(op: str, inputs: list[str], **attrs) -> str:  # type: ignore[no-untyped-def]
        out = f"fr_t{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def int_const(values: list[int]) -> str:
        name = f"fr_i{next(counter)}"
        new_inits.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
        return name

    assert pack.odd is not None and pack.freqs is not None
    odd, freqs = const(pack.odd), const(pack.freqs)
    bases: dict[tuple[int, int], str] = {}
    for n, (step_seg, scale_seg) in pack.basis_terms.items():
        k = scale_seg.shape[1]
        odd_n = node("Slice", [odd, int_const([0]), int_const([n]), int_const([0])])
        freqs_k = node("Slice", [freqs, int_const([0]), int_const([k]), int_const([1])])
        angles = node("Mul", [node("Mul", [odd_n, const(step_seg)]), freqs_k])
        bases[(n, k)] = node("Mul", [node("Cos", [angles]), const(scale_seg)])

    transposed: dict[tuple[int, int], str] = {}

    class Ops:
        def expand_last(self, t: str, n: int, k: int) -> str:
            if (n, k) not in transposed:
                if (n, k) not in bases:
                    full = next(kk for (nn, kk) in bases if nn == n)
                    bases[(n, k)] = node("Slice", [bases[(n, full)], int_const([0]), int_const([k]), int_const([1])])
                transposed[(n, k)] = node("Transpose", [bases[(n, k)]], perm=[1, 0])
            return node("MatMul", [t, transposed[(n, k)]])

        def transpose(self, t: str, perm: list[int]) -> str:
            return node("Transpose", [t], perm=perm)

    rebuilt = {}
    replace: dict[str, str] = {}
    layer_values: dict[str, str] = {}
    for layer, init_name, perm, shape, box, seg in plans:
        replace[init_name] = rebuild_weight(Ops(), const(seg), shape, box)
        rebuilt[layer] = perm
        value = _consumer_output(graph, init_name)
        if value is not None:
            layer_values[layer] = value
    for n in graph.node:
        for i, name in enumerate(n.input):
            if name in replace:
                n.input[i] = replace[name]
    missing = set(input_weights.values()) - set(replace)
    if missing:
        raise FrliteError(f"skeleton ONNX inputs {sorted(missing)} were not rebuilt")
    kept_inputs = [v for v in graph.input if v.name not in replace]
    del graph.input[:]
    graph.input.extend(kept_inputs)
    kept = [i for i in graph.initializer if i.name not in replace]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    old_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old_nodes)
    rename = _compact_names(graph) if compact_names else {}
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return OnnxInjectionReport(rebuilt, kept_dense, int(params.size),
                               {k: rename.get(v, v) for k, v in layer_values.items()})


def _compact_names(graph: onnx.GraphProto) -> dict[str, str]:
    """Short names for internal values and nodes; graph inputs/outputs keep theirs."""
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    rename: dict[str, str] = {}
    for i, init in enumerate(graph.initializer):
        if init.name not in keep:
            rename[init.name] = f"c{i}"
    for j, n in enumerate(graph.node):
        n.name = f"n{j}"
        for o in n.output:
            if o not in keep and o not in rename:
                rename[o] = f"v{len(rename)}"
    for init in graph.initializer:
        init.name = rename.get(init.name, init.name)
    for n in graph.node:
        for i, name in enumerate(n.input):
            n.input[i] = rename.get(name, name)
        for i, name in enumerate(n.output):
            n.output[i] = rename.get(name, name)
    del graph.value_info[:]
    return rename
