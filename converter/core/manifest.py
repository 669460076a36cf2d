"""`manifest.json`: the contract between `frlite convert` and every later step.

Parity and bench read artifacts, tensor names, shapes, dtypes and layouts from here; nothing
downstream guesses a layout from a shape. Bump FORMAT_VERSION on incompatible changes.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from frlite.converter.core.errors import FrliteError, ManifestError, UsageError
from frlite.converter.core.manifest_schema import manifest_from_json
from frlite.converter.core.bounded_read import read_bounded

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


# the delegates that store and compute in fp16 when precision loss is allowed
FP16_DELEGATE_TARGETS = ("tflite-gpu", "tflite-nnapi")

@dataclass
class TensorInfo:
    """One input or output of an artifact as the runtime sees it.

    `layout` names the axes (e.g. "NCHW", "NHWC"); `perm_from_model` turns an array in the
    PyTorch model's layout into this one (None when identical).
    """

    name: str
    shape: list[int]
    dtype: str
    layout: str
    model_name: str
    perm_from_model: list[int] | None = None


@dataclass
class ArtifactParity:
    """The quick parity check run right after conversion (the check inputs vs PyTorch)."""

    samples: int
    max_abs_error: float
    max_rel_to_scale: float
    tolerance: float
    passed: bool


# Fp16Arith.arithmetic: the .tflite delegates' model, and XNNPACK's on ARMv8.2+ (fp16 accumulators)
STORAGE_ONLY = "fp16 storage, fp32 accumulation"
FP16_ACCUMULATION = "fp16 storage, fp16 accumulation in conv / linear"


@dataclass
class Fp16Arith:
    """The measured verdict for running the file in fp16 arithmetic (GPU delegate with precision
    loss allowed, NNAPI with allow_fp16; an fp16 .pte on XNNPACK): the file's own graph (for a
    .pte, the program exported for it), every op's output rounded to IEEE half
    (runtimes/fp16_executor), compared with PyTorch fp32 on the same inputs."""

    verdict: str                          # safe | unsafe
    worst_rel_to_scale: float | None      # max |error| / max |reference|; None when not finite
    pixel_agreement: float | None         # segmentation outputs: argmax equal per pixel
    samples: int
    tolerance: float                      # on worst_rel_to_scale
    first_overflow: dict[str, Any] | None = None  # op_index, op_type, output, max_abs, layer
    message: str = ""                     # the one line shown in logs and reports
    judged_by: str = "value"              # value tolerance | task gate | overflow (tolerances.py)
    inputs: str = ""                      # what it was measured on ("2 seeded random samples", files)
    arithmetic: str = STORAGE_ONLY        # what was rounded to half: storage only, or accumulators too

    @property
    def safe(self) -> bool:
        return self.verdict == "safe"


@dataclass
class IntegerCheck:
    """A full-integer file (int8 / int16x8): what it was calibrated on, the task gate convert ran on
    it against PyTorch fp32 (converter/core/tolerances.py INTEGER_GATES) and the layers that lose
    the most (runtimes/quant_layers.py: SQNR of every op output against the file's fp32 twin)."""

    activations: str                      # int8 | int16
    io_dtype: str                         # float | int8 | uint8
    calibration: list[dict[str, Any]]     # per sample: source and sha256 (Sample.record)
    task: str                             # segmentation | classification | none
    metric: str                           # pixel_agreement | top1_agreement | sqnr_db
    value: float | None                   # worst over the check inputs (None: not finite)
    threshold: float
    passed: bool
    inputs: str                           # what the gate ran on
    output_sqnr_db: float | None = None   # the outputs' SQNR against PyTorch fp32, worst sample
    worst_layers: list[dict[str, Any]] = field(default_factory=list)  # LayerError records, worst first
    layers: list[dict[str, Any]] = field(default_factory=list)        # every compared op output, graph order
    plan: list[dict[str, Any]] = field(default_factory=list)  # per-layer precision decisions (forms)
    message: str = ""


@dataclass
class Artifact:
    mode: str                # dense | idct | factorized
    target: str              # onnx | ort-mobile | tflite-cpu | tflite-gpu | tflite-nnapi | executorch
    precision: str           # fp32 | fp16 | int8-dynamic | int8 | int16x8
    runtime: str             # onnxruntime | tflite | executorch
    path: str                # relative to the folder
    size_bytes: int
    sha256: str
    op_counts: dict[str, int]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    extra_files: dict[str, str] = field(default_factory=dict)
    parity: ArtifactParity | None = None
    convert_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    # FR layer (weight name) -> the file's tensor holding that layer's output (tflite: index,
    # onnx: value name), found through the weight's values; used by `frlite parity --layers`
    layer_outputs: dict[str, Any] = field(default_factory=dict)
    # ONNX Runtime session settings the file is meant to run with (e.g. graph_optimization_level)
    session_options: dict[str, str] = field(default_factory=dict)
    # tflite files for gpu / nnapi targets: measured fp16-arithmetic verdict (None: not measured)
    fp16_arith: Fp16Arith | None = None
    # full-integer files: calibration, task gate and per-layer quantization error (None: not integer)
    integer: IntegerCheck | None = None

    @property
    def computes_in_fp16_on_delegates(self) -> bool:
        """A float .tflite meant for the GPU / NNAPI delegates, which compute in fp16 when allowed:
        the files convert and parity measure an fp16-arithmetic verdict for."""
        return self.runtime == "tflite" and self.target in FP16_DELEGATE_TARGETS and self.precision in ("fp32", "fp16")


@dataclass
class PassRecord:
    """One pass of `frlite convert` that ran (converter/passes/driver.py): its wall time and the
    peak RSS of the converting process while it ran."""

    name: str
    seconds: float
    peak_rss_bytes: int


@dataclass
class Manifest:
    model_spec: str
    checkpoint: str | None
    checkpoint_sha256: str | None
    model_inputs: list[TensorInfo]
    model_outputs: list[TensorInfo]
    artifacts: list[Artifact]
    versions: dict[str, str]
    created: str
    format_version: int = FORMAT_VERSION
    input_scaling: dict[str, Any] = field(default_factory=lambda: {"images": "float32 / 255, RGB, NCHW"})
    fr_layers: list[dict[str, Any]] = field(default_factory=list)
    # --mode factorized: per FR layer the cost model's choice (factorized or dense) and its MACs
    factorization: list[dict[str, Any]] = field(default_factory=list)
    # exact rewrites that keep fp16 arithmetic finite and precise, per mode ("dense" also covers
    # idct): constants chosen on the conversion's example, layers that could not be made safe
    fp16_rewrites: dict[str, Any] = field(default_factory=dict)
    # the conversion's passes in the order they ran (absent in folders written before passes existed)
    passes: list[PassRecord] = field(default_factory=list)
    # what quick parity, the fp16 rewrites and the fp16 verdicts ran on: per sample its source
    # (a file name or "random(seed=S)[i]") and the sha256 of each input array
    check_inputs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_NAME
        path.write_text(self.to_json() + "\n")
        return path

    def artifact(self, mode: str, target: str, precision: str = "fp32") -> Artifact:
        for a in self.artifacts:
            if (a.mode, a.target, a.precision) == (mode, target, precision):
                return a
        raise FrliteError(f"manifest has no {mode}/{target}/{precision} artifact; convert it first")


def manifest_limit() -> int:
    """Largest manifest.json read, in bytes: FRLITE_MANIFEST_MAX_BYTES, default 16 MiB (the UNet's
    manifest with three modes, two targets and two precisions is under 100 KB)."""
    raw = os.environ.get("FRLITE_MANIFEST_MAX_BYTES", "")
    if raw:
        if not raw.isdigit() or int(raw) <= 0:
            raise UsageError(f"FRLITE_MANIFEST_MAX_BYTES={raw!r} is not a positive whole number of bytes")
        return int(raw)
    return 16 << 20


def read_manifest(folder: str | Path) -> Manifest:
    """The folder's manifest, validated in full (manifest_schema.py) before any of it is used.

    Bounded read of a regular file; malformed JSON, unknown or missing keys, wrong types,
    unknown runtimes and unsafe paths are ManifestError (one line, exit 2)."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise ManifestError(f"{folder} is not a folder; pass a folder written by `frlite convert`")
    if not path.exists() and not path.is_symlink():
        raise ManifestError(f"{folder} has no {MANIFEST_NAME}; pass a folder written by `frlite convert`")
    limit = manifest_limit()
    data = read_bounded(path, "manifest", ManifestError, limit, " (FRLITE_MANIFEST_MAX_BYTES raises it)")
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ManifestError(f"{path} is not valid JSON ({first}); re-convert") from exc
    return manifest_from_json(parsed, str(path), FORMAT_VERSION)
