"""Pass export_idct: the weight-free skeleton ONNX (FR weights as graph inputs) and the idct ONNX
that wires the in-graph IDCT to those inputs (converter/onnx/onnx_idct.py).

Large inputs: traced at a reduced size, and the idct ONNX checked against PyTorch at once (that
result is its quick parity); a graph that depends on the traced size is exported again at full size.
"""
from __future__ import annotations

from frlite.converter.core.errors import FrliteError
from frlite.converter.core.manifest import Artifact
from frlite.converter.core.tolerances import tolerance
from frlite.converter.forms.weight_inputs import SizeDependentGraph, export_skeleton_onnx, reduced_example
from frlite.converter.fr.fr_layers import fr_layers
from frlite.converter.onnx.onnx_idct import inject_idct_onnx
from frlite.converter.passes.context import QUICK_RUN, ConvertContext, worst_error
from frlite.converter.passes.driver import BasePass
from frlite.converter.passes.export_dense import safe_dense_module


class ExportIdct(BasePass):
    def __init__(self) -> None:
        super().__init__("export_idct", needs=("tmp", "work", "model", "example", "weights", "onnx_inputs", "onnx_outputs"),
                         adds=("skeleton", "onnx_files.idct"))

    def applies(self, ctx: ConvertContext) -> bool:
        return "idct" in ctx.req.modes

    def run(self, ctx: ConvertContext) -> None:
        from frlite.runtimes.loader import open_artifact

        assert ctx.tmp is not None and ctx.work is not None and ctx.model is not None and ctx.example is not None
        assert ctx.onnx_inputs is not None and ctx.onnx_outputs is not None and ctx.weights is not None
        tmp = ctx.tmp
        skeleton_onnx, dst = ctx.work / "skeleton.onnx", tmp / "onnx" / "idct.onnx"
        out_names = [o.name for o in ctx.onnx_outputs]
        out_shapes = [tuple(o.shape) for o in ctx.onnx_outputs]
        small = reduced_example(ctx.example)
        for trace_at in ([small] if small is not None else []) + [None]:
            where = "at full size" if trace_at is None else "traced at " + ", ".join(
                "x".join(map(str, t.shape)) for t in trace_at.values())
            done = ctx.step(f"export the weight-free skeleton ONNX (FR weights as graph inputs; {where})")
            try:
                skeleton = export_skeleton_onnx(safe_dense_module(ctx), [n for n, _ in fr_layers(ctx.model)], ctx.example,
                                                out_names, skeleton_onnx, trace_at=trace_at, output_shapes=out_shapes)
            except SizeDependentGraph as exc:
                ctx.log(f"  {exc}; exporting at full size")
                continue
            finally:
                done()
            done = ctx.step("build idct ONNX (in-graph IDCT)")
            rep = inject_idct_onnx(skeleton_onnx, dst, ctx.weights, input_weights=skeleton.weight_inputs)
            done()
            if trace_at is not None:
                art = Artifact(mode="idct", target="onnx", precision="fp32", runtime="onnxruntime",
                               path=str(dst.relative_to(tmp)), size_bytes=0, sha256="", op_counts={},
                               inputs=ctx.onnx_inputs, outputs=ctx.onnx_outputs)
                worst = worst_error(open_artifact(tmp, art, QUICK_RUN), ctx.samples(), ctx.ref_outputs or [], out_names)
                if not worst <= tolerance("fp32"):
                    ctx.log(f"  the graph traced at a reduced size does not match PyTorch at the real size "
                            f"({worst:.2e}); exporting at full size")
                    continue
                ctx.measured[(art.path, "onnxruntime")] = worst
            ctx.notes["onnx"] = [f"{layer} kept dense: {why}" for layer, why in rep.kept_dense.items()]
            for note in ctx.notes["onnx"]:
                ctx.log(f"  idct ONNX: {note}")
            ctx.skeleton = skeleton
            ctx.onnx_files["idct"] = dst
            ctx.layer_maps[str(dst.relative_to(tmp))] = rep.layer_outputs
            return
        raise FrliteError("could not export the weight-free skeleton")  # unreachable: the full-size export raises itself
