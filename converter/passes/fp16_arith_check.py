"""Pass fp16_arith_check: the files that compute in fp16 on the phone are also run in its fp16
arithmetic, and the verdict recorded (manifest, compat report, convert.log); an unsafe file is
still written.

- tflite-gpu / tflite-nnapi .tflite files: the delegates compute in fp16 when allowed
  (converter/passes/fp16_check.py check_fp16_arithmetic: the file's own graph, fp16 storage).
- fp16 .pte files: XNNPACK computes in fp16, accumulating conv / linear in fp16 on ARMv8.2+
  (check_pte_fp16: the program exported for the .pte, walked op by op).
"""
from __future__ import annotations

from frlite.converter.core.progress import plural
from frlite.converter.core.tolerances import tolerance
from frlite.converter.passes.context import QUICK_RUN, ConvertContext
from frlite.converter.passes.driver import BasePass
from frlite.converter.passes.fp16_check import check_fp16_arithmetic, check_pte_fp16


def _fp16_files(ctx: ConvertContext) -> set[str]:
    return {a.path for a in ctx.artifacts if a.computes_in_fp16_on_delegates}


class Fp16ArithCheck(BasePass):
    def __init__(self) -> None:
        super().__init__("fp16_arith_check", needs=("tmp", "artifacts", "ref_outputs", "out_names"), adds=())

    def applies(self, ctx: ConvertContext) -> bool:
        return bool(_fp16_files(ctx)) or bool(ctx.pte_fp16_graphs)

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.tmp is not None and ctx.ref_outputs is not None and ctx.out_names is not None
        if _fp16_files(ctx):
            done = ctx.step(f"fp16-arithmetic check of {plural(len(_fp16_files(ctx)), 'file')} for tflite-gpu / tflite-nnapi")
            check_fp16_arithmetic(ctx.tmp, ctx.artifacts, ctx.samples(), ctx.ref_outputs, ctx.out_names,
                                  tolerance("fp16"), QUICK_RUN.threads, ctx.log,
                                  ctx.samples_described())
            done()
        if ctx.pte_fp16_graphs:
            done = ctx.step(f"fp16-arithmetic check of {plural(len(ctx.pte_fp16_graphs), 'fp16 .pte file')} "
                            "(XNNPACK on ARMv8.2+: fp16 storage and accumulators)")
            check_pte_fp16(ctx.tmp, ctx.artifacts, ctx.pte_fp16_graphs, ctx.samples(), ctx.ref_outputs, ctx.out_names,
                           tolerance("fp16"), QUICK_RUN.threads, ctx.log, ctx.samples_described(),
                           set(ctx.layer_shapes or {}))
            ctx.pte_fp16_graphs.clear()
            done()
