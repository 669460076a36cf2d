"""Pass onnx2tf: onnx2tf + the TFLite converter (in a child process, converter/tflite/onnx2tf_runner.py)
on the dense ONNX, the weight-free skeleton and the factorized ONNX (or their repaired copies,
converter/passes/onnx_repair.py): one run per form, shared by every precision and tflite target
(int8-dynamic comes out of the dense run), and one more per integer-ready form for int8 / int16x8
(converter/passes/export_integer.py).

When onnx2tf cannot convert a form, the other forms are still tried, then the conversion stops
with one line naming the node and the modes that did convert ("--mode factorized converts it"):
a convert folder is all that was asked or nothing, never a partial one (docs/coverage.md).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from frlite.converter.core.errors import FrliteError, UnsupportedLayerError
import numpy as np

from frlite.converter.passes.context import INTEGER_PRECISIONS, TFLITE_TARGETS, ConvertContext
from frlite.converter.passes.driver import BasePass
from frlite.converter.tflite.onnx2tf_runner import IntegerRequest, run_onnx2tf

_WHAT = {"dense": "the dense ONNX (the slow step)", "idct": "the weight-free skeleton ONNX",
         "factorized": "the factorized ONNX"}


def float_files(ctx: ConvertContext) -> bool:
    """Whether any float file (fp32, fp16, int8-dynamic) is asked, beside integer ones."""
    return any(p not in INTEGER_PRECISIONS for p in ctx.req.precisions)


def wants_tflite(ctx: ConvertContext) -> bool:
    return any(t in TFLITE_TARGETS for t in ctx.req.targets)


def onnx2tf_inputs(ctx: ConvertContext) -> dict[str, Path]:
    """mode -> the ONNX file onnx2tf converts for it: the export, or a repair pass's copy. None
    when only integer files are asked: those come from the integer-ready forms (export_integer)."""
    assert ctx.tmp is not None and ctx.work is not None
    if not float_files(ctx):
        return {}
    exported = {"dense": ctx.tmp / "onnx" / "dense.onnx", "idct": ctx.work / "skeleton.onnx",
                "factorized": ctx.tmp / "onnx" / "factorized.onnx"}
    return {m: ctx.onnx2tf_sources.get(m, exported[m]) for m in exported if m in ctx.req.modes}


def failure_line(failed: dict[str, str], converted: list[str]) -> str:
    """One line for forms onnx2tf could not convert, naming the modes that do convert."""
    parts = [f"--mode {mode}: {why}" for mode, why in failed.items()]
    works = (f"--mode {' '.join(converted)} converts it" if converted
             else "no asked mode converts it (try --mode factorized)" if "factorized" not in failed
             else "no mode converts it")
    return "; ".join(parts) + f"; {works}"


def _calibration_file(ctx: ConvertContext) -> Path | None:
    """The --calibration samples as one .npz (stacked per input) for the worker, or None."""
    assert ctx.work is not None
    if not any(p in INTEGER_PRECISIONS for p in ctx.req.precisions):
        return None
    samples = ctx.calibration_samples()
    path = ctx.work / "calibration.npz"
    np.savez(path, **{name: np.stack([s.arrays[name] for s in samples]) for name in samples[0].arrays})
    return path


class Onnx2tf(BasePass):
    def __init__(self) -> None:
        super().__init__("onnx2tf", needs=("tmp", "work", "example", "out_names"), adds=("tflite_converted", "integer_twins"))

    def applies(self, ctx: ConvertContext) -> bool:
        return wants_tflite(ctx)

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.tmp is not None and ctx.work is not None and ctx.example is not None and ctx.out_names is not None
        req, tmp, work = ctx.req, ctx.tmp, ctx.work
        (tmp / "tflite").mkdir()
        int8 = work / "dense_int8.tflite" if "int8-dynamic" in req.precisions else None
        failed: dict[str, str] = {}
        for mode, src in onnx2tf_inputs(ctx).items():
            weight_inputs = list(ctx.skeleton.weight_inputs.values()) if mode == "idct" and ctx.skeleton else None
            done = ctx.step(f"onnx2tf + TFLite converter on {_WHAT[mode]}")
            dst = work / ("factorized_fp32.tflite" if mode == "factorized" else f"{mode}_onnx2tf_fp32.tflite")
            try:
                res = run_onnx2tf(src, work / f"onnx2tf_{mode}", dst, list(ctx.example), ctx.out_names,
                                  int8 if mode == "dense" else None, weight_inputs=weight_inputs)
            except FrliteError as exc:  # onnx2tf or the TFLite converter refused this form
                ctx.log(f"  {exc}")
                failed[mode] = str(exc)
                done()
                continue
            ctx.log(f"  onnx2tf: {res.seconds:.1f} s, peak {res.peak_rss_bytes / 2**30:.2f} GiB")
            done()
            ctx.tflite_converted[mode] = dst
            ctx.tflite_seconds[mode] = res.seconds
            if mode != "factorized":  # its log was never kept (unchanged from before the pass list)
                shutil.copyfile(res.log_path, tmp / ("onnx2tf.log" if mode == "dense" else f"onnx2tf_{mode}.log"))
        self._integer(ctx, failed)
        if failed:
            raise UnsupportedLayerError(failure_line(failed, list(ctx.tflite_converted) or
                                                     list(dict.fromkeys(m for m, _ in ctx.integer_twins))))

    @staticmethod
    def _integer(ctx: ConvertContext, failed: dict[str, str]) -> None:
        """One more onnx2tf run per integer-ready form (export_integer): its fp32 file is the twin the
        integer file is compared with op by op, and the integer file comes out of the same run."""
        assert ctx.work is not None and ctx.example is not None and ctx.out_names is not None
        req, work = ctx.req, ctx.work
        calibration = _calibration_file(ctx)
        for (mode, precision), src in ctx.integer_sources.items():
            done = ctx.step(f"onnx2tf + TFLite converter on the {precision}-ready {mode} ONNX, then quantization")
            try:
                res = run_onnx2tf(src, work / f"onnx2tf_{mode}_{precision}", work / f"{mode}_{precision}_twin_fp32.tflite",
                                  list(ctx.example), ctx.out_names, calibration=calibration,
                                  integer=[IntegerRequest(precision, req.io_dtype, work / f"{mode}_{precision}.tflite")])
            except FrliteError as exc:
                ctx.log(f"  {exc}")
                failed.setdefault(mode, str(exc))
                done()
                continue
            ctx.log(f"  onnx2tf: {res.seconds:.1f} s, peak {res.peak_rss_bytes / 2**30:.2f} GiB; {precision}: quantized in "
                    f"{res.integer_seconds[precision]:.1f} s on {len(ctx.calibration_samples())} calibration sample(s)")
            ctx.integer_twins[(mode, precision)] = res.tflite_fp32
            ctx.tflite_seconds.setdefault(mode, res.seconds)
            ctx.tflite_integer[(mode, precision)] = res.integer[precision]
            if res.integer_fallback[precision]:
                ctx.integer_fallback[(mode, precision)] = res.integer_fallback[precision]
                ctx.log(f"    some ops stay float (no integer kernel): {res.integer_fallback[precision][:160]}")
            done()
