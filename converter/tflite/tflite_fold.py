"""Fold a `.tflite`'s constant subgraphs by running them in LiteRT: the idct file's dense twin.

TFLite evaluates no constant subgraph at load time, so an idct file rebuilds its weights on
every run, and a CONV_2D whose filter is computed runs neither on XNNPACK nor on the
multithreaded path: the authors' UNet at 640x959 takes ~21 s and 1.4 GB of im2col per run.
The quick parity that follows a conversion checks such a file through its twin: every
tensor computed from constants only (the rebuilt weights) is computed ONCE by the file's own
ops in LiteRT's builtin kernels, written back as a constant, and the ops that made it dropped.
The twin then runs the rest of the file, unchanged, on XNNPACK. A wrong coefficient, basis or
layout in the file changes the twin's weights exactly as it changes the file's.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from frlite.converter.core.errors import FrliteError
from frlite.converter.tflite.tflite_file import load_model_object, save_model_object
from frlite.converter.tflite.tflite_graph_edit import GraphEditor


def _constant_ops(sg: schema.SubGraphT) -> tuple[list[int], list[int]]:
    """(indices of ops computed from constants only, tensors they make that other ops read)."""
    dynamic = set(int(i) for i in sg.inputs)
    const_ops = []
    for k, op in enumerate(sg.operators):  # operators are stored in execution order
        if any(int(i) in dynamic for i in op.inputs if i >= 0):
            dynamic.update(int(o) for o in op.outputs)
        else:
            const_ops.append(k)
    made = {int(o) for k in const_ops for o in sg.operators[k].outputs}
    const_set = set(const_ops)
    read_by_rest = {int(i) for k, op in enumerate(sg.operators) if k not in const_set for i in op.inputs if i >= 0}
    boundary = sorted(made & (read_by_rest | {int(o) for o in sg.outputs}))
    return const_ops, boundary


def _run_constant_part(model: schema.ModelT, const_ops: list[int], boundary: list[int], work: Path) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    part = copy.deepcopy(model)
    sg = part.subgraphs[0]
    sg.operators = [sg.operators[k] for k in const_ops]
    sg.inputs = np.array([], dtype=np.int32)
    sg.outputs = np.array(boundary, dtype=np.int32)
    part.signatureDefs = []
    path = work / "constant_part.tflite"
    save_model_object(part, path)
    interp = Interpreter(str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    interp.invoke()
    by_index = {d["index"]: d for d in interp.get_output_details()}
    out = [interp.get_tensor(by_index[i]["index"]).copy() if i in by_index else None for i in boundary]
    if any(o is None for o in out):
        raise FrliteError("LiteRT did not expose every folded tensor; cannot build the dense twin")
    path.unlink()
    return out  # type: ignore[return-value]


def dense_twin(src: Path, dst: Path) -> int:
    """Write `dst`: `src` with its constant subgraphs folded by LiteRT; returns how many tensors
    were folded (0: nothing to fold, `dst` is a plain copy)."""
    model = load_model_object(src)
    sg = model.subgraphs[0]
    const_ops, boundary = _constant_ops(sg)
    if boundary:
        values = _run_constant_part(model, const_ops, boundary, dst.parent)
        ed = GraphEditor(model)
        for idx, value in zip(boundary, values):
            if ed.shape_of(idx) != value.shape:
                raise FrliteError(f"folded tensor {idx} has shape {value.shape}, the file says {ed.shape_of(idx)}")
            ed.set_constant(idx, value)
        drop = set(const_ops)
        sg.operators = [op for k, op in enumerate(sg.operators) if k not in drop]
        ed.prune()
    save_model_object(model, dst)
    return len(boundary)
