"""What `frlite convert` is asked (ConvertRequest) and the one object its passes share (ConvertContext).

Every pass reads and adds fields of the context instead of taking and filling a dozen
parameters and dicts: what a pass adds is a named field the next pass can declare it needs.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from frlite.converter.core.manifest import Artifact, Manifest, PassRecord, TensorInfo
from frlite.converter.core.layouts import model_layout
from frlite.converter.core.memory import PeakMemory, release_memory
from frlite.converter.core.shape_spec import InputShape
from frlite.converter.core.tolerances import INTEGER_PRECISIONS  # noqa: F401 (full-integer files, for NPUs)
from frlite.runtimes.base import RunOptions

MODES = ("dense", "idct", "factorized")
TARGETS = ("onnx", "ort-mobile", "tflite-cpu", "tflite-gpu", "tflite-nnapi", "executorch")
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8", "int16x8")
IO_DTYPES = ("float", "int8", "uint8")
TFLITE_TARGETS = ("tflite-cpu", "tflite-gpu", "tflite-nnapi")
# .pte programs: XNNPACK lowers the whole module in fp32 or in fp16 (module and I/O cast to half)
EXECUTORCH_PRECISIONS = ("fp32", "fp16")
# ONNX Runtime level per mode where "all" is not best: its NCHWc layout pass wraps the factorized
# model's 1-5-channel convs in reorders of full-size tensors (UNet 320x480: 159 ms at "all",
# 85 ms at "extended"). Written into the manifest; frlite's runtimes and the .ort file use it.
ORT_LEVEL = {"factorized": "extended"}
QUICK_RUN = RunOptions(threads=os.cpu_count() or 1, extra={"low_memory": True})


@dataclass
class ConvertRequest:
    model_spec: str
    weights: Path | None
    inputs: list[InputShape]
    out: Path
    modes: list[str] = field(default_factory=lambda: ["dense"])
    targets: list[str] = field(default_factory=lambda: ["onnx"])
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    output_names: list[str] | None = None
    overwrite: bool = False
    parity_samples: int | None = None  # None: 2 seeded samples, 1 when an input exceeds 1 M values
    # images / .npy / .npz in the model's input size: the check inputs instead of seeded samples
    input_files: list[str] | None = None
    seed: int = 0
    # full-integer precisions: calibration inputs (same files as --inputs takes) and the I/O type
    calibration_files: list[str] | None = None
    io_dtype: str = "float"
    integer_gate: float | None = None  # least task metric an integer file keeps (None: INTEGER_GATES)
    progress: Callable[[str], None] = lambda msg: None


class ConvertLog:
    """convert.log lines, each stamped with the seconds since the conversion started."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.lines: list[str] = []
        self.progress = progress
        self.start = time.perf_counter()

    def __call__(self, msg: str) -> None:
        line = f"[{time.perf_counter() - self.start:7.1f}s] {msg}"
        self.lines.append(line)
        self.progress(line)


@dataclass
class ConvertContext:
    """All state of one conversion. Fields start empty (None); a pass's `adds` names the fields it
    sets, a pass's `needs` the ones it reads, and the driver checks them before running it."""

    req: ConvertRequest
    log: ConvertLog
    mem: PeakMemory
    exits: contextlib.ExitStack               # the output folder's context lives here
    writer: Any                               # AtomicFolder for --out, checked before any pass ran
    big_inputs: bool = False                  # an input over 1 M values: 1 parity sample, idct checked via twin
    loaded_samples: list[Any] | None = None   # the check inputs (Sample records), loaded once by samples()
    # load_model
    loaded: Any = None                        # LoadedModel (model + checkpoint)
    model: nn.Module | None = None
    example: dict[str, torch.Tensor] | None = None
    ref_outputs: list[list[np.ndarray]] | None = None
    out_names: list[str] | None = None
    layer_shapes: dict[str, tuple[int, ...]] | None = None
    # open_output
    tmp: Path | None = None                   # the temp folder that becomes --out
    work: Path | None = None                  # tmp/.work, removed before the manifest is written
    weights: list[Any] | None = None          # FRWeight per FR layer (dense copies, freed before parity)
    onnx_inputs: list[TensorInfo] | None = None
    onnx_outputs: list[TensorInfo] | None = None
    # export passes
    onnx_files: dict[str, Path] = field(default_factory=dict)  # mode -> tmp/onnx/<mode>.onnx
    skeleton: Any = None                      # SkeletonExport of the idct form
    fact_plan: list[Any] | None = None
    export_modules: dict[str, nn.Module] = field(default_factory=dict)  # mode -> module its files come from (factorized)
    fp16_rewrites: dict[str, object] = field(default_factory=dict)
    norm_scales: Any = None                   # Fp16RescaleReport, chosen once on the first dense export module
    # onnx repair passes (converter/passes/onnx_repair.py)
    onnx2tf_sources: dict[str, Path] = field(default_factory=dict)  # mode -> repaired ONNX onnx2tf converts instead
    weight_views: dict[str, Any] = field(default_factory=dict)      # weight (input / initializer) -> WeightView a repair gave it
    onnx_scans: dict[tuple, Any] = field(default_factory=dict)      # (path, mtime, size) -> weight-free graph the repairs scan
    # tflite passes
    tflite_converted: dict[str, Path] = field(default_factory=dict)  # mode -> fp32 .tflite onnx2tf made
    tflite_seconds: dict[str, float] = field(default_factory=dict)   # mode -> onnx2tf seconds
    tflite_files: dict[tuple[str, str], Path] = field(default_factory=dict)  # (mode, precision) -> tmp/tflite/...
    # (mode, int8 | int16x8) -> the integer-ready ONNX (export_integer), its per-layer decisions, and
    # the fp32 .tflite of that form (the twin integer files are compared with op by op)
    integer_sources: dict[tuple[str, str], Path] = field(default_factory=dict)
    integer_plans: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    integer_twins: dict[tuple[str, str], Path] = field(default_factory=dict)
    tflite_integer: dict[tuple[str, str], Path] = field(default_factory=dict)  # (mode, int8|int16x8) -> work file
    integer_fallback: dict[tuple[str, str], str] = field(default_factory=dict)  # why some ops stayed float
    calibration: list[Any] | None = None     # Sample records the integer files were calibrated on (calibration_samples)
    integer_checks: dict[str, dict] = field(default_factory=dict)    # file -> the integer gate's record
    # executorch_artifacts: fp16 .pte path -> (the exported program's op graph its fp16 verdict walks,
    # its delegation report, rewritten with the verdict)
    pte_fp16_graphs: dict[str, tuple[torch.fx.GraphModule, Any]] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)       # idct layers a converter rewrote beyond recognition
    layer_maps: dict[str, dict] = field(default_factory=dict)       # file -> FR layer -> tensor holding its output
    measured: dict[tuple[str, str], float] = field(default_factory=dict)  # quick parity per (file, runtime)
    manifest: Manifest | None = None
    steps: dict[str, float] = field(default_factory=dict)            # convert.log step -> seconds
    pass_records: list[PassRecord] = field(default_factory=list)      # passes that ran (driver)
    # fields added so far (driver); convert() sets the first five before any pass
    provided: set[str] = field(default_factory=lambda: {"req", "log", "mem", "exits", "writer"})

    def step(self, name: str) -> Callable[[], None]:
        """Log a step's start; the returned `done()` records its time and frees memory."""
        t0 = time.perf_counter()
        self.log(name)

        def done() -> None:
            self.steps[name] = time.perf_counter() - t0
            self.mem.sample()
            release_memory()
        return done

    def samples(self) -> list[dict[str, np.ndarray]]:
        """The check inputs (the same every call): the user's --inputs files, all of them, else
        `parity_samples` seeded uniform [0, 1) samples. They feed the PyTorch references, the fp16
        rewrites' measurements (the first one), quick parity and the fp16-arithmetic verdict."""
        return [s.arrays for s in self._check_inputs()]

    def samples_described(self) -> str:
        """What the checks ran on, for convert.log and the fp16 verdict."""
        from frlite.runtimes.parity_inputs import describe_samples

        return describe_samples(self._check_inputs())

    def calibration_samples(self) -> list[Any]:
        """The --calibration inputs (Sample records), read like --inputs: loaded once."""
        from frlite.runtimes.parity_inputs import load_inputs

        if self.calibration is None:
            self.calibration = load_inputs(self.req.calibration_files, self._input_specs(), 0, self.req.seed)
        return self.calibration

    def _input_specs(self) -> list[TensorInfo]:
        return [TensorInfo(s.name, list(s.shape), "float32", model_layout(len(s.shape)), s.name) for s in self.req.inputs]

    def _check_inputs(self) -> list[Any]:
        from frlite.runtimes.parity_inputs import load_inputs

        if self.loaded_samples is None:
            assert self.req.parity_samples is not None
            self.loaded_samples = load_inputs(self.req.input_files, self._input_specs(), self.req.parity_samples, self.req.seed)
        return self.loaded_samples


def targets_by_file(artifacts: list[Artifact]) -> dict[tuple[str, str], list[str]]:
    """(path, runtime) -> the targets that file serves, in manifest order (one .tflite serves
    tflite-cpu, -gpu and -nnapi): what each file's one log line names."""
    out: dict[tuple[str, str], list[str]] = {}
    for art in artifacts:
        out.setdefault((art.path, art.runtime), []).append(art.target)
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def worst_error(runtime, samples: list[dict[str, np.ndarray]], ref_outputs: list[list[np.ndarray]],  # type: ignore[no-untyped-def]
                out_names: list[str]) -> float:
    """max over samples and outputs of max |got - ref| / max |ref|; inf when the file outputs any
    NaN/Inf (the references are finite, load_model checks)."""
    errs = []
    for sample, refs in zip(samples, ref_outputs):
        got = runtime.run(sample)
        for name, ref in zip(out_names, refs):
            if not np.isfinite(got[name]).all():
                return math.inf
            scale = float(np.abs(ref).max()) or 1.0
            errs.append(float(np.abs(got[name] - ref).max()) / scale)
    return max(errs)
