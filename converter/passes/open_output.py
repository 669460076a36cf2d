"""Pass open_output: enter the temp folder that becomes --out, and take the FR weights' copies.

The folder was checked before any pass ran (convert()); from here on an error removes the temp
folder and leaves --out as it was (converter/core/output_folder.py).
"""
from __future__ import annotations

import torch
from torch import nn

from frlite.converter.core.layouts import model_layout
from frlite.converter.core.manifest import TensorInfo
from frlite.converter.fr.fr_layers import fr_layers, fr_weight_key
from frlite.converter.fr.idct_rebuild import FRWeight
from frlite.converter.passes.context import ConvertContext
from frlite.converter.passes.driver import BasePass


def fr_weights(model: nn.Module) -> list[FRWeight]:
    """Each FR layer's spatial weight and kept coefficients, as numpy copies for the IDCT builders."""
    out = []
    with torch.no_grad():
        for name, layer in fr_layers(model):
            box = layer.kept_box()
            out.append(FRWeight(fr_weight_key(name),
                                layer.spatial_weight().detach().float().numpy().copy(),
                                layer.weight[tuple(slice(0, k) for k in box)].detach().float().numpy().copy(), box))
            layer.drop_cached_weight()  # the copy above is the one kept
    return out


class OpenOutput(BasePass):
    def __init__(self) -> None:
        super().__init__("open_output", needs=("model", "example", "ref_outputs", "out_names"),
                         adds=("tmp", "work", "weights", "onnx_inputs", "onnx_outputs"))

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.model is not None and ctx.example is not None and ctx.ref_outputs is not None and ctx.out_names
        ctx.tmp = ctx.exits.enter_context(ctx.writer)
        ctx.work = ctx.tmp / ".work"
        ctx.work.mkdir()
        ctx.weights = fr_weights(ctx.model)
        (ctx.tmp / "onnx").mkdir()
        ctx.onnx_inputs = [TensorInfo(n, list(t.shape), "float32", model_layout(t.dim()), n) for n, t in ctx.example.items()]
        ctx.onnx_outputs = [TensorInfo(n, list(o.shape), "float32", model_layout(o.ndim), n)
                            for n, o in zip(ctx.out_names, ctx.ref_outputs[0])]
