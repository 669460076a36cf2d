"""`frlite convert`: FR model -> ONNX / ORT / TFLite / ExecuTorch files in dense, idct and factorized form, one folder.

The request is checked first (bad usage runs nothing), then --out (AtomicFolder.check), then the
pass list CONVERT_PASSES runs over one ConvertContext (converter/passes/driver.py logs each pass's
time and peak memory; the manifest lists them):
  load_model -> open_output -> export_dense -> export_idct -> factorize -> export_integer (int8 /
  int16x8 forms) -> repair_* (exact ONNX rewrites, only when a graph has the pattern) -> onnx_artifacts
  -> onnx2tf -> tflite_files -> tflite_artifacts -> executorch_artifacts (.pte) -> annotate_artifacts
  -> integer_gate -> fp16_arith_check -> quick_parity -> build_manifest
then manifest.json and convert.log are written and the temp folder becomes --out. Each pass says
which modes / targets it serves (`applies`); shared work (export, the onnx2tf run) happens once
however many modes and targets are asked. New work (int8, ExecuTorch, onnx2tf repairs) is a new
pass inserted into the list (driver.insert_after), and `convert(req, passes=...)` runs any list.
Every export module is first rewritten exactly so fp16 arithmetic (phone GPU / NNAPI / XNNPACK
fp16) neither overflows nor cancels in its batch-statistics norms (converter/forms/fp16_rescale.py).
"""
from __future__ import annotations

import contextlib
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from frlite.converter.core.errors import UsageError
from frlite.converter.core.manifest import Manifest
from frlite.converter.core.memory import PeakMemory, release_memory
from frlite.converter.core.output_folder import AtomicFolder
from frlite.converter.models.model_spec import spec_file
from frlite.converter.passes.annotate_artifacts import AnnotateArtifacts
from frlite.converter.passes.build_manifest import BuildManifest
from frlite.converter.passes.context import (EXECUTORCH_PRECISIONS, INTEGER_PRECISIONS, IO_DTYPES, MODES,  # noqa: F401 (API)
                                             ORT_LEVEL, PRECISIONS, TARGETS, TFLITE_TARGETS,
                                             ConvertContext, ConvertLog, ConvertRequest)
from frlite.converter.passes.context import worst_error as _worst_error  # noqa: F401 (tests)
from frlite.converter.passes.driver import Pass, PassOrderError, run_passes
from frlite.converter.passes.export_dense import ExportDense, dense_export_module  # noqa: F401 (API)
from frlite.converter.passes.executorch_artifacts import ExecutorchArtifacts
from frlite.converter.passes.export_idct import ExportIdct
from frlite.converter.passes.export_integer import ExportInteger
from frlite.converter.passes.factorize import Factorize
from frlite.converter.passes.fp16_arith_check import Fp16ArithCheck
from frlite.converter.passes.integer_gate import IntegerGate
from frlite.converter.passes.load_model import LoadModel
from frlite.converter.passes.onnx2tf import Onnx2tf
from frlite.converter.passes.onnx_artifacts import OnnxArtifacts
from frlite.converter.passes.onnx_repair import REPAIR_PASSES
from frlite.converter.passes.open_output import OpenOutput, fr_weights  # noqa: F401 (API)
from frlite.converter.passes.quick_parity import QuickParity
from frlite.converter.passes.tflite_artifacts import TfliteArtifacts
from frlite.converter.passes.tflite_files import TfliteFiles

# the conversion, in order; data, so a new pass is inserted (driver.insert_after), not coded in
CONVERT_PASSES: tuple[Pass, ...] = (
    LoadModel(), OpenOutput(), ExportDense(), ExportIdct(), Factorize(), ExportInteger(), *REPAIR_PASSES, OnnxArtifacts(), Onnx2tf(), TfliteFiles(),
    TfliteArtifacts(), ExecutorchArtifacts(), AnnotateArtifacts(), IntegerGate(), Fp16ArithCheck(), QuickParity(), BuildManifest(),
)


def _check_choices(values: list[str], allowed: tuple[str, ...], flag: str) -> None:
    for v in values:
        if v not in allowed:
            raise UsageError(f"{flag} {v!r} is not one of: {', '.join(allowed)}")


def planned_files(modes: list[str], targets: list[str], precisions: list[str]) -> list[tuple[str, str, str]]:
    """(mode, target, precision) of every artifact a request writes: ONNX and ORT files are fp32
    only, factorized .tflite files fp32 / fp16 / full-integer."""
    out = []
    for mode in modes:
        for target in targets:
            for precision in precisions:
                if target in ("onnx", "ort-mobile") and precision != "fp32":
                    continue
                if target in TFLITE_TARGETS and mode == "factorized" and precision not in ("fp32", "fp16", *INTEGER_PRECISIONS):
                    continue
                if target == "executorch" and precision not in EXECUTORCH_PRECISIONS:
                    continue
                out.append((mode, target, precision))
    return out


def _check_plan(req: ConvertRequest) -> None:
    """A request must write something for every value it names: a --precision no asked target
    produces (fp16 with --target onnx) would be silently ignored, and zero files is no conversion."""
    plan = planned_files(req.modes, req.targets, req.precisions)
    asked = f"--mode {' '.join(req.modes)} --target {' '.join(req.targets)} --precision {' '.join(req.precisions)}"
    if not plan:
        raise UsageError(f"{asked} writes no file (ONNX and ORT files are fp32 only, .pte files fp32 / fp16); "
                         "add --precision fp32 or a tflite target")
    for flag, values, index in (("--mode", req.modes, 0), ("--target", req.targets, 1), ("--precision", req.precisions, 2)):
        unused = [v for v in values if all(p[index] != v for p in plan)]
        if unused:
            raise UsageError(f"{flag} {' '.join(unused)} writes no file with {asked} (ONNX and ORT files are fp32 only, .pte files fp32 / fp16); "
                             "drop it or add a target that takes it")


def _check_integer(req: ConvertRequest) -> None:
    """Full-integer precisions: calibrated, TFLite, and not idct."""
    _check_choices([req.io_dtype], IO_DTYPES, "--io-dtype")
    ints = [p for p in req.precisions if p in INTEGER_PRECISIONS]
    if not ints:
        if req.calibration_files or req.io_dtype != "float" or req.integer_gate is not None:
            raise UsageError("--calibration, --io-dtype and --integer-gate apply to --precision int8 / int16x8 only; "
                             "add one or drop them")
        return
    if "idct" in req.modes:
        # integer kernels take constant weights whose per-channel scales are fixed at conversion; an
        # idct file computes its weights at run time, so its integer form is the dense int8 file
        raise UsageError(f"--precision {' '.join(ints)} applies to --mode dense and factorized: idct rebuilds its "
                         "weights in fp32 at run time, which integer kernels cannot take (use --mode dense for the "
                         "same weights quantized)")
    if req.integer_gate is not None and not math.isfinite(req.integer_gate):
        raise UsageError("--integer-gate must be a number (a fraction of pixels / samples, or dB)")
    if not req.calibration_files:
        raise UsageError(f"--precision {' '.join(ints)} needs --calibration FILES: a few typical inputs (images or "
                         ".npy/.npz at the --input size) to measure activation ranges on")
    if req.io_dtype != "float" and "int16x8" in ints:
        raise UsageError("--io-dtype int8/uint8 applies to --precision int8; int16x8 files take float inputs")


# why idct has no .pte (measured with executorch 1.5.1: a conv whose weight is computed in the
# graph is not lowered, and is not folded either; tests/test_executorch_convert.py)
IDCT_EXECUTORCH_REFUSAL = ("--mode idct --target executorch: XNNPACK takes a conv only with constant weights, so every "
                           "conv of an idct .pte (weights rebuilt in the graph) would run on ExecuTorch's slow portable "
                           "kernels; use --mode dense (the same weights, baked) or --mode factorized")


_TENSOR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")  # what --input names allow (shape_spec.py)


def _check_names(req: ConvertRequest) -> None:
    """Output names become graph tensor names next to the inputs': a clash makes an invalid ONNX."""
    names = req.output_names or []
    for n in names:
        if not _TENSOR_NAME.match(n):
            raise UsageError(f"--output-name {n!r} is not a valid tensor name; use letters, digits, _ . - "
                             "(not starting with a digit)")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"--output-name {', '.join(dupes)} is given more than once; each output needs its own name")
    clash = sorted(set(names) & {s.name for s in req.inputs})
    if clash:
        raise UsageError(f"--output-name {', '.join(clash)} is also an --input name; inputs and outputs need distinct names")


@dataclass
class ConvertResult:
    out: Path
    manifest: Manifest
    seconds: float
    peak_rss_bytes: int
    step_seconds: dict[str, float]


def check_request(req: ConvertRequest) -> None:
    """Everything about the request itself, before any work (bad usage runs nothing)."""
    _check_choices(req.modes, MODES, "--mode")
    _check_choices(req.targets, TARGETS, "--target")
    _check_choices(req.precisions, PRECISIONS, "--precision")
    if not req.inputs:
        raise UsageError("give at least one --input NAME:DIMS, e.g. --input input:1x3x640x959")
    if "int8-dynamic" in req.precisions and req.modes != ["dense"]:
        raise UsageError("--precision int8-dynamic applies to --mode dense only (idct rebuilds fp32 weights at run time)")
    if "executorch" in req.targets and "idct" in req.modes:
        raise UsageError(IDCT_EXECUTORCH_REFUSAL)
    _check_integer(req)
    _check_plan(req)
    _check_names(req)


def convert(req: ConvertRequest, passes: Sequence[Pass] = CONVERT_PASSES) -> ConvertResult:
    """Check the request and --out, run `passes` over one context, write manifest.json and
    convert.log, and turn the temp folder into --out (nothing is left behind on error)."""
    # inputs over 1 M values: one parity sample, idct .tflite checked through its dense twin
    big_inputs = any(int(np.prod(s.shape)) > 1_000_000 for s in req.inputs)
    if req.parity_samples is None:
        req.parity_samples = 1 if big_inputs else 2
    check_request(req)
    # --out is checked before any work: a bad one is bad usage and nothing runs
    inputs = [req.weights, spec_file(req.model_spec), *map(Path, req.input_files or []),
              *map(Path, req.calibration_files or [])]
    writer = AtomicFolder(req.out, req.overwrite, inputs=inputs, kind="convert")
    writer.check()
    log = ConvertLog(req.progress)
    release_memory(first=True)
    mem = PeakMemory()
    t_all = time.perf_counter()
    with contextlib.ExitStack() as exits:  # open_output enters the writer here: an error anywhere undoes it
        ctx = ConvertContext(req=req, log=log, mem=mem, exits=exits, writer=writer, big_inputs=big_inputs)
        run_passes(ctx, passes)
        if ctx.tmp is None or ctx.manifest is None:
            raise PassOrderError("internal error: the pass list has no open_output or build_manifest pass")
        ctx.manifest.passes = list(ctx.pass_records)
        ctx.manifest.write(ctx.tmp)
        total = time.perf_counter() - t_all
        log(f"done in {total:.1f} s, peak memory {mem.sample() / 2**30:.2f} GiB (this process)")
        (ctx.tmp / "convert.log").write_text("\n".join(log.lines) + "\n")
    return ConvertResult(writer.out, ctx.manifest, total, mem.peak, ctx.steps)
