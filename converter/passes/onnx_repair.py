"""Passes repair_*: the exact ONNX rewrites of converter/onnx/onnx_repairs.py, on the ONNX files
onnx2tf converts (dense, the idct mode's weight-free skeleton, factorized), one pass per repair.

A pass applies only when a graph it would feed to onnx2tf has the pattern, so it is named in
convert.log and the manifest's `passes` exactly when it fires. The repaired graph is a copy in
the work folder (ctx.onnx2tf_sources); the shipped ONNX files stay as exported: ONNX Runtime
runs the original ops right, and the repair only exists for onnx2tf.
"""
from __future__ import annotations

import onnx

from frlite.converter.onnx.onnx_repairs import REPAIRS, OnnxRepair
from frlite.converter.passes.context import ConvertContext
from frlite.converter.passes.driver import BasePass
from frlite.converter.passes.onnx2tf import onnx2tf_inputs, wants_tflite


class OnnxRepairPass(BasePass):
    def __init__(self, repair: OnnxRepair) -> None:
        super().__init__(repair.name, needs=("work",), adds=())
        self.repair = repair

    def applies(self, ctx: ConvertContext) -> bool:
        if not wants_tflite(ctx):
            return False
        return any(self.repair.sites(onnx.load(str(src), load_external_data=False).graph)
                   for src in onnx2tf_inputs(ctx).values())

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.work is not None
        ctx.log(f"  {self.name}: {self.repair.what}")
        for mode, src in onnx2tf_inputs(ctx).items():
            model = onnx.load(str(src))
            if not self.repair.sites(model.graph):
                continue
            res = self.repair.apply(model)
            for node, how in res.rewritten.items():
                ctx.log(f"    {mode}: {node}: {how}")
            for node, why in res.left.items():
                ctx.log(f"    {mode}: {node} left as it is: {why}")
            if not res.rewritten:
                continue
            onnx.checker.check_model(model)
            dst = ctx.work / f"{mode}_{self.name}.onnx"
            onnx.save(model, str(dst))
            ctx.onnx2tf_sources[mode] = dst
            ctx.weight_views.update(res.views)


REPAIR_PASSES: tuple[OnnxRepairPass, ...] = tuple(OnnxRepairPass(r) for r in REPAIRS)
