"""Pass export_dense: the dense ONNX (every FR layer baked into a plain layer, norms portable and
prescaled so fp16 arithmetic stays finite)."""
from __future__ import annotations

from torch import nn

from frlite.converter.fr.batch_stat_norm import clone_for_export
from frlite.converter.fr.fr_layers import fr_layers
from frlite.converter.forms.fp16_rescale import apply_prescales, prescale_stat_norms
from frlite.converter.onnx.onnx_export import export_onnx, simplify_onnx
from frlite.converter.onnx.onnx_idct import onnx_layer_outputs
from frlite.converter.passes.context import INTEGER_PRECISIONS, ConvertContext
from frlite.converter.passes.driver import BasePass


def dense_export_module(model: nn.Module) -> nn.Module:
    """A copy with every FR layer baked into a plain torch layer and portable norms."""
    dense = clone_for_export(model)
    for name, layer in fr_layers(dense):
        if not name:
            return layer.to_dense()
        parent, _, child = name.rpartition(".")
        setattr(dense.get_submodule(parent) if parent else dense, child, layer.to_dense())
    return dense


def safe_dense_module(ctx: ConvertContext) -> nn.Module:
    """dense_export_module with its norms prescaled for fp16; the constants are chosen once, on
    the first module, and shared by the dense and idct forms (recorded in fp16_rewrites)."""
    assert ctx.model is not None and ctx.example is not None
    module = dense_export_module(ctx.model)
    if ctx.norm_scales is None:
        ctx.norm_scales = prescale_stat_norms(module, tuple(ctx.example.values()))
        ctx.log(f"  {ctx.norm_scales.summary()}")
        ctx.fp16_rewrites["dense"] = {"norm_prescale": ctx.norm_scales.as_json(),
                                      "unsafe": [f"{n.name}: {n.reason}" for n in ctx.norm_scales.unsafe]}
    else:
        apply_prescales(module, ctx.norm_scales)
    return module


class ExportDense(BasePass):
    def __init__(self) -> None:
        super().__init__("export_dense", needs=("tmp", "model", "example", "out_names", "weights"),
                         adds=("onnx_files.dense",))

    def applies(self, ctx: ConvertContext) -> bool:
        # integer files come from their own form (export_integer): only float files need this one
        return "dense" in ctx.req.modes and any(p not in INTEGER_PRECISIONS for p in ctx.req.precisions)

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.tmp is not None and ctx.example is not None and ctx.out_names is not None and ctx.weights is not None
        done = ctx.step("export dense ONNX")
        dst = ctx.onnx_files["dense"] = ctx.tmp / "onnx" / "dense.onnx"
        export_onnx(safe_dense_module(ctx), ctx.example, ctx.out_names, dst)
        simplify_onnx(dst)
        ctx.layer_maps[str(dst.relative_to(ctx.tmp))] = onnx_layer_outputs(dst, ctx.weights)
        done()
