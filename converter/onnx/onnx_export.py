"""PyTorch -> ONNX with the legacy TorchScript exporter (`dynamo=False`).

Why legacy: the dynamo exporter's optimizer folds constant subgraphs (up to 8192 elements),
which would fold the in-graph IDCT back into dense weights; the legacy exporter with constant
folding off leaves MatMul chains alone (torch 2.13).
"""
from __future__ import annotations

import io
import warnings
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper
from torch import nn

from frlite.converter.core.errors import FrliteError, UnsupportedLayerError

OPSET = 17


def export_onnx(module: nn.Module, example: dict[str, torch.Tensor], output_names: list[str],
                path: Path, fold_constants: bool = True, dynamic_axes: dict[str, dict[int, str]] | None = None) -> None:
    """Export `module(*example.values())` to `path` with the given input/output names."""
    args = tuple(example.values())
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), redirect_stdout(sink), redirect_stderr(sink), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET,
                              input_names=list(example), output_names=output_names,
                              do_constant_folding=fold_constants, dynamic_axes=dynamic_axes)
    except torch.onnx.errors.UnsupportedOperatorError as exc:
        raise UnsupportedLayerError(f"ONNX export failed: {str(exc).splitlines()[0]}; replace that layer or op") from exc
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FrliteError(f"ONNX export failed: {type(exc).__name__}: {first[:300]}") from exc


def simplify_onnx(path: Path) -> bool:
    """Fold the exporter's static shape arithmetic (e.g. the UNet's pad sizes) with onnxsim.

    Only for graphs without an in-graph IDCT: onnxsim would fold that back into dense weights.
    onnx2tf needs the static form (its strict mode is off, so it cannot evaluate Shape chains).
    """
    import onnxsim

    model = onnx.load(str(path))
    if any(n.domain not in ("", "ai.onnx") for n in model.graph.node):
        return False  # onnxsim cannot run custom-domain ops; onnx2tf names them precisely later
    try:
        # keep BatchNorm apart from the conv before it: fusing rescales the weight's output axis,
        # which spreads an FR corner box over every frequency (idct could not rebuild it compactly)
        simplified, ok = onnxsim.simplify(model, skip_fuse_bn=True)
    except Exception as exc:
        raise FrliteError(f"onnxsim could not simplify the exported ONNX: {type(exc).__name__}: {str(exc)[:200]}") from exc
    if not ok:
        raise FrliteError("onnxsim produced a model that failed its own check; report this model to frlite")
    onnx.save(simplified, str(path))
    return True


@dataclass
class OnnxSummary:
    op_counts: dict[str, int]
    initializer_bytes: int
    largest_initializer: tuple[str, int]
    inputs: list[tuple[str, tuple[int, ...], str]]
    outputs: list[tuple[str, tuple[int, ...], str]]


def _value_info(v: onnx.ValueInfoProto) -> tuple[str, tuple[int, ...], str]:
    t = v.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
    return v.name, shape, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name


def summarize_onnx(path: Path) -> OnnxSummary:
    model = onnx.load(str(path))
    sizes = [(i.name, numpy_helper.to_array(i).nbytes) for i in model.graph.initializer]
    consts = [(n.output[0], len(n.attribute[0].t.raw_data)) for n in model.graph.node
              if n.op_type == "Constant" and n.attribute and n.attribute[0].HasField("t")]
    every = sizes + consts
    inits = {i.name for i in model.graph.initializer}
    return OnnxSummary(
        dict(sorted(Counter(n.op_type for n in model.graph.node).items())),
        sum(s for _, s in every),
        max(every, key=lambda t: t[1]) if every else ("", 0),
        [_value_info(v) for v in model.graph.input if v.name not in inits],
        [_value_info(v) for v in model.graph.output],
    )
