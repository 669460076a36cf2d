"""Pass onnx2tf: onnx2tf + the TFLite converter (in a child process, converter/tflite/onnx2tf_runner.py)
on the dense ONNX, the weight-free skeleton and the factorized ONNX: one run per form, shared by
every precision and tflite target (int8-dynamic comes out of the dense run)."""
from __future__ import annotations

import shutil

from frlite.converter.passes.context import TFLITE_TARGETS, ConvertContext
from frlite.converter.passes.driver import BasePass
from frlite.converter.tflite.onnx2tf_runner import run_onnx2tf


def wants_tflite(ctx: ConvertContext) -> bool:
    return any(t in TFLITE_TARGETS for t in ctx.req.targets)


class Onnx2tf(BasePass):
    def __init__(self) -> None:
        super().__init__("onnx2tf", needs=("tmp", "work", "example", "out_names"), adds=("tflite_converted",))

    def applies(self, ctx: ConvertContext) -> bool:
        return wants_tflite(ctx)

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.tmp is not None and ctx.work is not None and ctx.example is not None and ctx.out_names is not None
        req, tmp, work = ctx.req, ctx.tmp, ctx.work
        (tmp / "tflite").mkdir()
        int8 = work / "dense_int8.tflite" if "int8-dynamic" in req.precisions else None
        sources = [("dense", tmp / "onnx" / "dense.onnx", "the dense ONNX (the slow step)", None),
                   ("idct", work / "skeleton.onnx", "the weight-free skeleton ONNX",
                    list(ctx.skeleton.weight_inputs.values()) if ctx.skeleton else None),
                   ("factorized", tmp / "onnx" / "factorized.onnx", "the factorized ONNX", None)]
        for mode, src, what, weight_inputs in sources:
            if mode not in req.modes:
                continue
            done = ctx.step(f"onnx2tf + TFLite converter on {what}")
            dst = work / ("factorized_fp32.tflite" if mode == "factorized" else f"{mode}_onnx2tf_fp32.tflite")
            res = run_onnx2tf(src, work / f"onnx2tf_{mode}", dst, list(ctx.example), ctx.out_names,
                              int8 if mode == "dense" else None, weight_inputs=weight_inputs)
            ctx.log(f"  onnx2tf: {res.seconds:.1f} s, peak {res.peak_rss_bytes / 2**30:.2f} GiB")
            done()
            ctx.tflite_converted[mode] = dst
            ctx.tflite_seconds[mode] = res.seconds
            if mode != "factorized":  # its log was never kept (unchanged from before the pass list)
                shutil.copyfile(res.log_path, tmp / ("onnx2tf.log" if mode == "dense" else f"onnx2tf_{mode}.log"))
