"""The weight-free skeleton: an export in which FR weights are graph inputs, not constants.

The idct files keep only coefficients, so nothing on their way should ever hold the dense
weights: converting a graph with 124 MB of constants costs onnx2tf 2.7 GB and 11 s for the
authors' UNet, the same graph with those weights as inputs 0.7 GiB and 4 s. The idct ONNX and
the idct .tflite are then made by wiring the in-graph IDCT to those inputs (onnx_idct.py,
tflite_idct.py) and dropping them, so the finished files have the model's own inputs only.

Only plain (groups=1) Conv2d / ConvTranspose2d weights become inputs: those are what onnx2tf
can take as a tensor (the worker tells it their layout); the others stay constants and are
found by value as before.

Tracing runs the model once and the tracer keeps every activation alive: 2.2 GB and 11 s for
the UNet at 640x959. With large inputs the skeleton is therefore traced at a reduced size with
dynamic spatial axes, then specialised to the real size by onnxsim (which folds the traced
shape arithmetic, e.g. the decoder's pad for an odd width, at the real size): 0.7 GB, 1 s.
A model whose graph depends on the traced size is caught (export or specialisation fails, the
output shape differs, or the idct ONNX does not match PyTorch right after) and exported at the
real size instead (convert_pipeline.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from frlite.converter.core.errors import FrliteError
from frlite.converter.onnx.onnx_export import export_onnx, simplify_onnx

WEIGHT_INPUT_PREFIX = "frw_"


@dataclass
class SkeletonExport:
    """layer weight name (e.g. `inc.double_conv.0.weight`) -> graph input holding it (torch layout)."""

    weight_inputs: dict[str, str]


def _takes_weight_input(module: nn.Module) -> bool:
    """A dilated transposed conv keeps its weight constant: the ONNX repair for it
    (onnx_repairs.repair_dilated_conv_transpose) rewrites the weight's values."""
    if isinstance(module, nn.ConvTranspose2d) and max(module.dilation) > 1:
        return False
    return isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.groups == 1 and module.weight.dim() == 4


class _WeightsAsInputs(nn.Module):
    """Runs `net` with the given layers' weights taken from the trailing forward arguments."""

    def __init__(self, net: nn.Module, layers: list[str], n_inputs: int) -> None:
        super().__init__()
        self.net, self.layers, self.n_inputs = net, layers, n_inputs

    def forward(self, *args: torch.Tensor) -> object:
        for name, w in zip(self.layers, args[self.n_inputs:]):
            setattr(self.net.get_submodule(name), "weight", w)
        return self.net(*args[: self.n_inputs])


class SizeDependentGraph(FrliteError):
    """The graph traced at a reduced size does not carry over to the real size."""


def reduced_example(example: dict[str, torch.Tensor], side: int = 64) -> dict[str, torch.Tensor] | None:
    """Inputs with each spatial size s > 2*side cut to side + s % side (the same remainder, so
    every stride-2 step sees the same odd/even sizes down to 1/side); None if nothing shrinks."""
    out, shrunk = {}, False
    for name, t in example.items():
        shape = list(t.shape)
        for d in range(2, t.dim()):
            if shape[d] > 2 * side:
                shape[d], shrunk = side + shape[d] % side, True
        out[name] = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(t.dtype)
    return out if shrunk else None


def _specialise(path: Path, example: dict[str, torch.Tensor], output_shapes: list[tuple[int, ...]]) -> None:
    """Give the dynamic spatial axes their real sizes, let onnxsim fold the shape arithmetic,
    and check the outputs come out with the real shapes."""
    model = onnx.load(str(path))
    sizes = {name: tuple(t.shape) for name, t in example.items()}
    sizes.update({v.name: tuple(shape) for v, shape in zip(model.graph.output, output_shapes)})
    for v in list(model.graph.input) + list(model.graph.output):
        for dim, size in zip(v.type.tensor_type.shape.dim, sizes.get(v.name, ())):
            dim.ClearField("dim_param")
            dim.dim_value = int(size)
    del model.graph.value_info[:]
    onnx.save(model, str(path))
    try:
        simplify_onnx(path)
    except FrliteError as exc:
        raise SizeDependentGraph(f"the graph traced at a reduced size does not specialise: {exc}") from exc
    got = []
    for v in onnx.load(str(path), load_external_data=False).graph.output:
        got.append(tuple(d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim))
    if got != [tuple(s) for s in output_shapes]:
        raise SizeDependentGraph(f"outputs {got} at the real size, PyTorch gives {[tuple(s) for s in output_shapes]}")


def export_skeleton_onnx(dense: nn.Module, fr_names: list[str], example: dict[str, torch.Tensor],
                         output_names: list[str], path: Path,
                         trace_at: dict[str, torch.Tensor] | None = None,
                         output_shapes: list[tuple[int, ...]] | None = None) -> SkeletonExport:
    """Export `dense` (a throwaway copy with FR layers baked into plain layers: its weights are
    removed here) with every eligible FR weight as a graph input; `fr_names` are the FR layers'
    module names. With `trace_at` (smaller inputs, see `reduced_example`) the trace runs there and
    the graph is specialised to `example`'s sizes; raises SizeDependentGraph if that fails.
    The file is simplified like the dense export (static shape arithmetic)."""
    layers, weights = [], []
    for name in fr_names:
        module = dense.get_submodule(name)
        if name and _takes_weight_input(module):
            layers.append(name)
            weights.append(module.weight.detach())
            del module.weight  # a plain attribute set in forward replaces the parameter
    inputs = {f"{WEIGHT_INPUT_PREFIX}{i}": w for i, w in enumerate(weights)}
    module = _WeightsAsInputs(dense, layers, len(example))
    if trace_at is None:
        export_onnx(module, {**example, **inputs}, output_names, path)
        simplify_onnx(path)
    else:
        if output_shapes is None:
            raise ValueError("trace_at needs the real output_shapes to check the specialised graph")
        spatial = {name: {d: f"{name}_d{d}" for d in range(2, t.dim())} for name, t in trace_at.items()}
        spatial.update({name: {d: f"{name}_d{d}" for d in range(2, len(s))} for name, s in zip(output_names, output_shapes)})
        try:
            export_onnx(module, {**trace_at, **inputs}, output_names, path, dynamic_axes=spatial)
        except FrliteError as exc:
            raise SizeDependentGraph(f"the model does not trace at a reduced size: {exc}") from exc
        _specialise(path, example, output_shapes)
    return SkeletonExport({f"{name}.weight": inp for name, inp in zip(layers, inputs)})
