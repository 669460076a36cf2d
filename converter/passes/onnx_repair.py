"""Passes repair_*: the exact ONNX rewrites of converter/onnx/onnx_repairs.py, on the ONNX files
onnx2tf converts (dense, the idct mode's weight-free skeleton, factorized), one pass per repair.

A pass applies only when a graph it would rewrite has the pattern, so it is named in
convert.log and the manifest's `passes` exactly when it fires. For a repair only onnx2tf needs,
the repaired graph is a copy in the work folder (ctx.onnx2tf_sources) and the shipped ONNX files
stay as exported (ONNX Runtime runs the original ops right); a `shipped` repair (ONNX Runtime
refuses the original too) rewrites the shipped files and the skeleton in place, before the
onnx_artifacts pass hashes and checks them.
"""
from __future__ import annotations

import onnx

from frlite.converter.onnx.onnx_repairs import REPAIRS, OnnxRepair
from pathlib import Path

from frlite.converter.passes.context import ConvertContext
from frlite.converter.passes.driver import BasePass
from frlite.converter.passes.onnx2tf import onnx2tf_inputs, wants_tflite


class OnnxRepairPass(BasePass):
    def __init__(self, repair: OnnxRepair) -> None:
        super().__init__(repair.name, needs=("tmp", "work"), adds=())
        self.repair = repair

    def _files(self, ctx: ConvertContext) -> list[tuple[str, Path]]:
        """(label, file) this repair rewrites: onnx2tf's inputs, and for a shipped repair the
        shipped ONNX files as well."""
        files = [(m, p) for m, p in onnx2tf_inputs(ctx).items()] if wants_tflite(ctx) else []
        if self.repair.shipped:
            assert ctx.tmp is not None
            files += [(str(p.relative_to(ctx.tmp)), p) for p in ctx.onnx_files.values() if all(p != f for _, f in files)]
        return files

    def applies(self, ctx: ConvertContext) -> bool:
        return any(self.repair.sites(_scan_graph(ctx, src)) for _, src in self._files(ctx))

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.work is not None
        ctx.log(f"  {self.name}: {self.repair.what}")
        for mode, src in self._files(ctx):
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
            if self.repair.shipped:
                onnx.save(model, str(src))
            else:
                dst = ctx.work / f"{mode}_{self.name}.onnx"
                onnx.save(model, str(dst))
                ctx.onnx2tf_sources[mode] = dst
            ctx.weight_views.update(res.views)


def _scan_graph(ctx: ConvertContext, path: Path) -> onnx.GraphProto:
    """The graph of `path` with its weights' data dropped (shapes kept), loaded once per file
    version for all repair passes: the UNet's 124 MB dense ONNX is parsed once, not six times."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in ctx.onnx_scans:
        graph = onnx.load(str(path), load_external_data=False).graph
        for init in graph.initializer:
            init.ClearField("raw_data")
            init.ClearField("float_data")
        ctx.onnx_scans = {k: v for k, v in ctx.onnx_scans.items() if k[0] != str(path)}
        ctx.onnx_scans[key] = graph
    return ctx.onnx_scans[key]


REPAIR_PASSES: tuple[OnnxRepairPass, ...] = tuple(OnnxRepairPass(r) for r in REPAIRS)
