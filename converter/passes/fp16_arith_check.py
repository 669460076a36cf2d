"""Pass fp16_arith_check: tflite-gpu / tflite-nnapi files also run in fp16 arithmetic (the delegates
compute in fp16 when allowed; converter/passes/fp16_check.py). The verdict is recorded (manifest,
compat report, convert.log); an unsafe file is still written."""
from __future__ import annotations

from frlite.converter.core.progress import plural
from frlite.converter.core.tolerances import tolerance
from frlite.converter.passes.context import QUICK_RUN, ConvertContext
from frlite.converter.passes.driver import BasePass
from frlite.converter.passes.fp16_check import check_fp16_arithmetic


def _fp16_files(ctx: ConvertContext) -> set[str]:
    return {a.path for a in ctx.artifacts if a.computes_in_fp16_on_delegates}


class Fp16ArithCheck(BasePass):
    def __init__(self) -> None:
        super().__init__("fp16_arith_check", needs=("tmp", "artifacts", "ref_outputs", "out_names"), adds=())

    def applies(self, ctx: ConvertContext) -> bool:
        return bool(_fp16_files(ctx))

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.tmp is not None and ctx.ref_outputs is not None and ctx.out_names is not None
        done = ctx.step(f"fp16-arithmetic check of {plural(len(_fp16_files(ctx)), 'file')} for tflite-gpu / tflite-nnapi")
        check_fp16_arithmetic(ctx.tmp, ctx.artifacts, ctx.samples(), ctx.ref_outputs, ctx.out_names,
                              tolerance("fp16"), QUICK_RUN.threads, ctx.log,
                              ctx.samples_described())
        done()
