"""`frlite convert`: FR model -> ONNX / ORT / TFLite files in dense and idct form, one folder.

Steps (each reads what the previous wrote into the temp folder):
  1. load the model and its checkpoint; run it once on seeded inputs (rejects bad shapes early)
  2. dense ONNX (torch.onnx legacy exporter, batch-statistics norms made portable)
  3. idct: a weight-free skeleton ONNX (FR weights as graph inputs, converter/weight_inputs.py);
     the idct ONNX wires the in-graph IDCT to those inputs (converter/onnx/onnx_idct.py)
  4. ORT-format models (onnxruntime's own converter) for target ort-mobile
  5. TFLite: onnx2tf on the dense ONNX and on the skeleton; fp16 derived by a flatbuffer edit;
     idct by injecting the IDCT into the converted skeleton (converter/tflite/tflite_idct.py), so no
     step of an idct conversion ever holds the dense weights in a converter
  6. delegate compatibility reports for tflite-gpu / tflite-nnapi
  7. quick parity of every artifact against PyTorch; a mismatch fails the conversion
  7b. tflite-gpu / tflite-nnapi files also in fp16 arithmetic (converter/passes/fp16_check.py): the
     verdict is recorded (manifest, compat report, convert.log), an unsafe file is still written
  8. manifest.json + convert.log, then the temp folder becomes --out
Every export module is first rewritten exactly so fp16 arithmetic (phone GPU / NNAPI / XNNPACK
fp16) neither overflows nor cancels in its batch-statistics norms (converter/forms/fp16_rescale.py).
Shared work (export, the onnx2tf run) happens once however many modes and targets are asked.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import psutil
import torch
from torch import nn

from frlite.converter.fr.batch_stat_norm import clone_for_export
from frlite.converter.core.errors import FrliteError, UsageError
from frlite.converter.passes.fp16_check import FP16_TARGETS, check_fp16_arithmetic
from frlite.converter.fr.fr_layers import fr_layers
from frlite.converter.core.layouts import model_layout, onnx2tf_layout
from frlite.converter.models.memory_estimate import UnbatchedRecorder, check_forward_fits
from frlite.converter.core.manifest import Artifact, ArtifactParity, Manifest, TensorInfo
from frlite.converter.models.model_loading import load_fr_model
from frlite.converter.models.model_spec import portable_spec, spec_file
from frlite.converter.tflite.onnx2tf_runner import run_onnx2tf
from frlite.converter.onnx.onnx_export import export_onnx, simplify_onnx, summarize_onnx
from frlite.converter.onnx.onnx_idct import inject_idct_onnx, onnx_layer_outputs
from frlite.converter.core.output_folder import AtomicFolder
from frlite.converter.core.shape_spec import InputShape
from frlite.converter.models.summary import summarize_model
from frlite.converter.tflite.tflite_fold import dense_twin
from frlite.converter.tflite.tflite_file import load_model_object, name_io, read_tflite, save_model_object
from frlite.converter.tflite.tflite_fp16 import to_fp16
from frlite.converter.forms.factorized import describe_fusions, factorize_model, plan_as_json
from frlite.converter.forms.fp16_rescale import Fp16RescaleReport, apply_prescales, make_fp16_safe, prescale_stat_norms
from frlite.converter.fr.idct_rebuild import FRWeight
from frlite.converter.tflite.tflite_idct import fr_layer_outputs, inject_idct
from frlite.converter.forms.weight_inputs import SizeDependentGraph, SkeletonExport, export_skeleton_onnx, reduced_example
from frlite.runtimes.base import RunOptions

MODES = ("dense", "idct", "factorized")
TARGETS = ("onnx", "ort-mobile", "tflite-cpu", "tflite-gpu", "tflite-nnapi")
PRECISIONS = ("fp32", "fp16", "int8-dynamic")
TFLITE_TARGETS = ("tflite-cpu", "tflite-gpu", "tflite-nnapi")
# quick-parity tolerance on max |error| / max |reference| per precision: loose enough for the
# float noise a normalising network amplifies (UNet fp32 TFLite at 640x959: 2e-4), tight enough
# for any real conversion bug (a wrong layer gives errors of the order of the output itself)
QUICK_TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2, "int8-dynamic": 1e-1}
# ONNX Runtime level per mode where "all" is not best: its NCHWc layout pass wraps the factorized
# model's 1-5-channel convs in reorders of full-size tensors (UNet 320x480: 159 ms at "all",
# 85 ms at "extended"). Written into the manifest; frlite's runtimes and the .ort file use it.
ORT_LEVEL = {"factorized": "extended"}
_QUICK_RUN = RunOptions(threads=os.cpu_count() or 1, extra={"low_memory": True})


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
    seed: int = 0
    progress: Callable[[str], None] = lambda msg: None


def _check_choices(values: list[str], allowed: tuple[str, ...], flag: str) -> None:
    for v in values:
        if v not in allowed:
            raise UsageError(f"{flag} {v!r} is not one of: {', '.join(allowed)}")


def planned_files(modes: list[str], targets: list[str], precisions: list[str]) -> list[tuple[str, str, str]]:
    """(mode, target, precision) of every artifact a request writes: ONNX and ORT files are fp32
    only, factorized .tflite files fp32 / fp16."""
    out = []
    for mode in modes:
        for target in targets:
            for precision in precisions:
                if target in ("onnx", "ort-mobile") and precision != "fp32":
                    continue
                if target in TFLITE_TARGETS and mode == "factorized" and precision not in ("fp32", "fp16"):
                    continue
                out.append((mode, target, precision))
    return out


def _check_plan(req: ConvertRequest) -> None:
    """A request must write something for every value it names: a --precision no asked target
    produces (fp16 with --target onnx) would be silently ignored, and zero files is no conversion."""
    plan = planned_files(req.modes, req.targets, req.precisions)
    asked = f"--mode {' '.join(req.modes)} --target {' '.join(req.targets)} --precision {' '.join(req.precisions)}"
    if not plan:
        raise UsageError(f"{asked} writes no file (ONNX and ORT files are fp32 only); "
                         "add --precision fp32 or a tflite target")
    for flag, values, index in (("--mode", req.modes, 0), ("--target", req.targets, 1), ("--precision", req.precisions, 2)):
        unused = [v for v in values if all(p[index] != v for p in plan)]
        if unused:
            raise UsageError(f"{flag} {' '.join(unused)} writes no file with {asked} (ONNX and ORT files are fp32 only); "
                             "drop it or add a target that takes it")


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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "ai-edge-litert", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    out["frlite"] = version("frlite") if _has("frlite") else "dev"
    return out


def _has(pkg: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(pkg)
        return True
    except PackageNotFoundError:
        return False


def dense_export_module(model: nn.Module) -> nn.Module:
    """A copy with every FR layer baked into a plain torch layer and portable norms."""
    dense = clone_for_export(model)
    for name, layer in fr_layers(dense):
        if not name:
            return layer.to_dense()
        parent, _, child = name.rpartition(".")
        setattr(dense.get_submodule(parent) if parent else dense, child, layer.to_dense())
    return dense


def fr_weights(model: nn.Module) -> list[FRWeight]:
    out = []
    with torch.no_grad():
        for name, layer in fr_layers(model):
            box = layer.kept_box()
            out.append(FRWeight(f"{name}.weight" if name else "weight",
                                layer.spatial_weight().detach().float().numpy().copy(),
                                layer.weight[tuple(slice(0, k) for k in box)].detach().float().numpy().copy(), box))
            layer.drop_cached_weight()  # the copy above is the one kept
    return out


def _release_memory(first: bool = False) -> None:
    """Hand freed heap back to the OS between steps, so one step's peak is not the next one's
    floor (activations of a 640x959 forward pass are ~150 MB each)."""
    import ctypes
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
        if first:
            libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: blocks over 1 MiB mapped apart, freed at once
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class _Log:
    def __init__(self, progress: Callable[[str], None]) -> None:
        self.lines: list[str] = []
        self.progress = progress
        self.start = time.perf_counter()

    def __call__(self, msg: str) -> None:
        line = f"[{time.perf_counter() - self.start:7.1f}s] {msg}"
        self.lines.append(line)
        self.progress(line)


class _PeakMemory:
    """Peak RSS of this process (the kernel's high-water mark; children are measured by their runner)."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss

    def sample(self) -> int:
        import resource

        high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        self.peak = max(self.peak, self.proc.memory_info().rss, high_water)
        return self.peak


@dataclass
class ConvertResult:
    out: Path
    manifest: Manifest
    seconds: float
    peak_rss_bytes: int
    step_seconds: dict[str, float]


def convert(req: ConvertRequest) -> ConvertResult:
    _check_choices(req.modes, MODES, "--mode")
    _check_choices(req.targets, TARGETS, "--target")
    _check_choices(req.precisions, PRECISIONS, "--precision")
    if not req.inputs:
        raise UsageError("give at least one --input NAME:DIMS, e.g. --input input:1x3x640x959")
    # inputs over 1 M values: one parity sample, idct .tflite checked through its dense twin
    big_inputs = any(int(np.prod(s.shape)) > 1_000_000 for s in req.inputs)
    if req.parity_samples is None:
        req.parity_samples = 1 if big_inputs else 2
    if "int8-dynamic" in req.precisions and req.modes != ["dense"]:
        raise UsageError("--precision int8-dynamic applies to --mode dense only (idct rebuilds fp32 weights at run time)")
    _check_plan(req)
    _check_names(req)
    # --out is checked before any work: a bad one is bad usage and nothing runs
    writer = AtomicFolder(req.out, req.overwrite, inputs=[req.weights, spec_file(req.model_spec)], kind="convert")
    writer.check()
    log = _Log(req.progress)
    _release_memory(first=True)
    mem = _PeakMemory()
    steps: dict[str, float] = {}
    t_all = time.perf_counter()

    def step(name: str) -> Callable[[], None]:
        t0 = time.perf_counter()
        log(name)

        def done() -> None:
            steps[name] = time.perf_counter() - t0
            mem.sample()
            _release_memory()
        return done

    done = step(f"load {req.model_spec}" + (f" with {req.weights}" if req.weights else ""))
    loaded = load_fr_model(req.model_spec, req.weights)
    model = loaded.model
    check_forward_fits(model, req.inputs)  # before any real tensor of that size exists
    example, ref_outputs, out_names, layer_shapes = _probe(model, req)
    done()

    with writer as tmp:
        work = tmp / ".work"
        work.mkdir()
        artifacts: list[Artifact] = []
        weights = fr_weights(model)
        notes: dict[str, list[str]] = {}  # idct layers a converter rewrote beyond recognition
        layer_maps: dict[str, dict] = {}  # file -> FR layer -> tensor holding its output

        onnx_files: dict[str, Path] = {}
        (tmp / "onnx").mkdir()
        fp16_rewrites: dict[str, object] = {}
        norm_scales: list[Fp16RescaleReport] = []  # chosen once, on the first dense export module

        def safe_dense_module() -> nn.Module:
            """dense_export_module with its norms prescaled for fp16 (dense and idct share the constants)."""
            module = dense_export_module(model)
            if not norm_scales:
                norm_scales.append(prescale_stat_norms(module, tuple(example.values())))
                log(f"  {norm_scales[0].summary()}")
                fp16_rewrites["dense"] = {"norm_prescale": norm_scales[0].as_json(),
                                          "unsafe": [f"{n.name}: {n.reason}" for n in norm_scales[0].unsafe]}
            else:
                apply_prescales(module, norm_scales[0])
            return module

        if "dense" in req.modes:
            done = step("export dense ONNX")
            onnx_files["dense"] = tmp / "onnx" / "dense.onnx"
            export_onnx(safe_dense_module(), example, out_names, onnx_files["dense"])
            simplify_onnx(onnx_files["dense"])
            layer_maps[str(onnx_files["dense"].relative_to(tmp))] = onnx_layer_outputs(onnx_files["dense"], weights)
            done()
        onnx_inputs = [TensorInfo(n, list(t.shape), "float32", model_layout(t.dim()), n) for n, t in example.items()]
        onnx_outputs = [TensorInfo(n, list(o.shape), "float32", model_layout(o.ndim), n) for n, o in zip(out_names, ref_outputs[0])]
        skeleton: SkeletonExport | None = None
        measured: dict[tuple[str, str], float] = {}  # quick parity: one run per file, shared by its targets
        if "idct" in req.modes:
            onnx_files["idct"] = tmp / "onnx" / "idct.onnx"
            skeleton, layer_maps[str(onnx_files["idct"].relative_to(tmp))] = _idct_onnx(
                model, safe_dense_module, example, onnx_inputs, onnx_outputs, ref_outputs, weights, req, tmp, work, step,
                log, notes, measured)

        if "factorized" in req.modes:
            done = step("build factorized model (cost model per layer) and export its ONNX")
            fact_module, fact_plan = factorize_model(model, tuple(example.values()), fp16_safe=False)
            log(f"  {describe_fusions(model, fact_plan)}")
            rewrites = make_fp16_safe(fact_module, tuple(example.values()))
            for line in rewrites.summary():
                log(f"  {line}")
            fp16_rewrites["factorized"] = rewrites.as_json()
            onnx_files["factorized"] = tmp / "onnx" / "factorized.onnx"
            export_onnx(fact_module, example, out_names, onnx_files["factorized"])
            simplify_onnx(onnx_files["factorized"])
            chosen = sum(c.choice == "factorized" for c in fact_plan)
            log(f"  {chosen} of {len(fact_plan)} FR layers factorized; MACs {sum(c.dense_macs for c in fact_plan):,} dense -> "
                f"{sum(min(c.dense_macs, c.factorized_macs) for c in fact_plan):,}")
            done()

        for mode in req.modes:
            if "onnx" in req.targets or "ort-mobile" in req.targets:
                for target in [t for t in ("onnx", "ort-mobile") if t in req.targets]:
                    for precision in [p for p in req.precisions if p == "fp32"]:
                        artifacts.append(_onnx_artifact(tmp, onnx_files[mode], mode, target, precision,
                                                        onnx_inputs, onnx_outputs, work, log))
        tflite_targets = [t for t in req.targets if t in TFLITE_TARGETS]
        if tflite_targets:
            artifacts += _tflite_artifacts(tmp, example, out_names, ref_outputs, weights, req, tflite_targets, work,
                                           step, log, notes, layer_maps, layer_shapes, skeleton)
        for art in artifacts:
            if art.mode == "idct":
                art.notes = list(notes.get("onnx" if art.runtime == "onnxruntime" else art.path, []))
            art.layer_outputs = dict(layer_maps.get(art.path, {}))
            rewrite = fp16_rewrites.get("factorized" if art.mode == "factorized" else "dense", {})
            art.notes += [f"fp16 arithmetic: norm {u} (no exact rewrite keeps it finite)"
                          for u in rewrite.get("unsafe", [])]  # type: ignore[attr-defined]

        weights.clear()  # dense copies no later step reads: the parity runs get their memory
        for _, layer in fr_layers(model):
            layer.drop_cached_weight()
        _release_memory()
        done = step(f"quick parity of {len(artifacts)} artifacts on {req.parity_samples} seeded samples")
        from frlite.runtimes.loader import open_artifact

        failures = []
        for art in artifacts:
            key = (art.path, art.runtime)
            if key not in measured:
                checked = art
                if art.runtime == "tflite" and art.mode == "idct" and big_inputs:
                    # weights rebuilt once by the file's own ops, the rest run on XNNPACK (tflite_fold.py)
                    twin = work / f"twin_{Path(art.path).name}"
                    folded = dense_twin(tmp / art.path, twin)
                    checked = dataclasses.replace(art, path=str(twin.relative_to(tmp)))
                    log(f"  {art.path}: checked through its dense twin ({folded} rebuilt tensors folded by LiteRT)")
                measured[key] = _worst_error(open_artifact(tmp, checked, _QUICK_RUN),
                                             _samples(example, req), ref_outputs, out_names)
            worst = measured[key]
            tol = QUICK_TOLERANCE[art.precision]
            ok = worst <= tol  # False for NaN too: `worst > tol` would let a NaN output pass
            art.parity = ArtifactParity(len(ref_outputs), worst * 1.0, worst, tol, ok)
            log(f"  {art.path}: max |error| / scale = {worst:.2e} (tolerance {tol:.0e}) {'ok' if ok else 'MISMATCH'}")
            if not ok:
                failures.append(f"{art.path} (NaN/Inf in its output)" if not math.isfinite(worst)
                                else f"{art.path} ({worst:.2e} > {tol:.0e})")
        done()
        if failures:
            raise FrliteError("conversion does not match PyTorch on seeded inputs: " + "; ".join(failures)
                              + "; nothing was written (rerun with --debug and see the conversion log)")
        fp16_files = {a.path for a in artifacts if a.runtime == "tflite" and a.target in FP16_TARGETS
                      and a.precision in ("fp32", "fp16")}
        if fp16_files:
            # the GPU / NNAPI delegates compute in fp16 when allowed: measure it (converter/passes/fp16_check.py)
            done = step(f"fp16-arithmetic check of {len(fp16_files)} files for tflite-gpu / tflite-nnapi")
            check_fp16_arithmetic(tmp, artifacts, _samples(example, req), ref_outputs, out_names,
                                  QUICK_TOLERANCE["fp16"], _QUICK_RUN.threads, log)
            done()

        shutil.rmtree(work, ignore_errors=True)
        ckpt = loaded.checkpoint
        manifest = Manifest(
            factorization=plan_as_json(fact_plan) if "factorized" in req.modes else [],
            fp16_rewrites=fp16_rewrites,
            model_spec=portable_spec(req.model_spec),
            checkpoint=str(ckpt.path.resolve()) if ckpt else None,
            checkpoint_sha256=ckpt.sha256 if ckpt else None,
            model_inputs=onnx_inputs, model_outputs=onnx_outputs, artifacts=artifacts,
            versions=_versions(), created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            fr_layers=[{"name": s.name, "kind": s.kind, "shape": list(s.shape), "kept": s.kept, "box": list(s.box)}
                       for s in summarize_model(model).layers],
        )
        manifest.write(tmp)
        total = time.perf_counter() - t_all
        log(f"done in {total:.1f} s, peak memory {mem.sample() / 2**30:.2f} GiB (this process)")
        (tmp / "convert.log").write_text("\n".join(log.lines) + "\n")
    return ConvertResult(writer.out, manifest, total, mem.peak, steps)


def _worst_error(runtime, samples: list[dict[str, np.ndarray]], ref_outputs: list[list[np.ndarray]],  # type: ignore[no-untyped-def]
                 out_names: list[str]) -> float:
    """max over samples and outputs of max |got - ref| / max |ref|; inf when the file outputs any
    NaN/Inf (the references are finite, _probe checks)."""
    errs = []
    for sample, refs in zip(samples, ref_outputs):
        got = runtime.run(sample)
        for name, ref in zip(out_names, refs):
            if not np.isfinite(got[name]).all():
                return math.inf
            scale = float(np.abs(ref).max()) or 1.0
            errs.append(float(np.abs(got[name] - ref).max()) / scale)
    return max(errs)


def _idct_onnx(model: nn.Module, export_module: Callable[[], nn.Module], example: dict[str, torch.Tensor],
               onnx_inputs: list[TensorInfo],
               onnx_outputs: list[TensorInfo], ref_outputs: list[list[np.ndarray]], weights: list[FRWeight],
               req: ConvertRequest, tmp: Path, work: Path, step, log: _Log, notes: dict[str, list[str]],  # type: ignore[no-untyped-def]
               measured: dict[tuple[str, str], float]) -> tuple[SkeletonExport, dict[str, str]]:
    """The weight-free skeleton (work/skeleton.onnx) and tmp/onnx/idct.onnx built on it (returns the
    skeleton's weight inputs and the idct ONNX's FR layer outputs). Large inputs: traced at a
    reduced size, and the idct ONNX checked against PyTorch at once (that result is its quick
    parity); a graph that depends on the traced size is exported again at full size."""
    from frlite.runtimes.loader import open_artifact

    skeleton_onnx, dst = work / "skeleton.onnx", tmp / "onnx" / "idct.onnx"
    out_names = [o.name for o in onnx_outputs]
    out_shapes = [tuple(o.shape) for o in onnx_outputs]
    small = reduced_example(example)
    for trace_at in ([small] if small is not None else []) + [None]:
        where = "at full size" if trace_at is None else "traced at " + ", ".join(
            "x".join(map(str, t.shape)) for t in trace_at.values())
        done = step(f"export the weight-free skeleton ONNX (FR weights as graph inputs; {where})")
        try:
            skeleton = export_skeleton_onnx(export_module(), [n for n, _ in fr_layers(model)], example,
                                            out_names, skeleton_onnx, trace_at=trace_at, output_shapes=out_shapes)
        except SizeDependentGraph as exc:
            log(f"  {exc}; exporting at full size")
            continue
        finally:
            done()
        done = step("build idct ONNX (in-graph IDCT)")
        rep = inject_idct_onnx(skeleton_onnx, dst, weights, input_weights=skeleton.weight_inputs)
        done()
        if trace_at is not None:
            art = Artifact(mode="idct", target="onnx", precision="fp32", runtime="onnxruntime",
                           path=str(dst.relative_to(tmp)), size_bytes=0, sha256="", op_counts={},
                           inputs=onnx_inputs, outputs=onnx_outputs)
            worst = _worst_error(open_artifact(tmp, art, _QUICK_RUN), _samples(example, req), ref_outputs, out_names)
            if not worst <= QUICK_TOLERANCE["fp32"]:
                log(f"  the graph traced at a reduced size does not match PyTorch at the real size "
                    f"({worst:.2e}); exporting at full size")
                continue
            measured[(art.path, "onnxruntime")] = worst
        notes["onnx"] = [f"{layer} kept dense: {why}" for layer, why in rep.kept_dense.items()]
        for note in notes["onnx"]:
            log(f"  idct ONNX: {note}")
        return skeleton, rep.layer_outputs
    raise FrliteError("could not export the weight-free skeleton")  # unreachable: the full-size export raises itself


def _samples(example: dict[str, torch.Tensor], req: ConvertRequest) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(req.seed)
    return [{n: rng.random(tuple(t.shape), dtype=np.float32) for n, t in example.items()} for _ in range(req.parity_samples)]


def _probe(model: nn.Module, req: ConvertRequest) -> tuple[dict[str, torch.Tensor], list[list[np.ndarray]], list[str],
                                                          dict[str, tuple[int, ...]]]:
    """Run the model on the seeded samples: shapes are checked, references computed once, and
    each FR layer's output shape recorded (to find that output in the converted files)."""
    example = {s.name: torch.zeros(s.shape) for s in req.inputs}
    refs = []
    layer_shapes: dict[str, tuple[int, ...]] = {}

    def recorder(key: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:  # returns None: output untouched
            layer_shapes.setdefault(key, tuple(output.shape))
            module.drop_cached_weight()  # each dense weight lives only while its layer runs (124 MB for the UNet)
        return hook

    hooks = [layer.register_forward_hook(recorder(f"{name}.weight" if name else "weight")) for name, layer in fr_layers(model)]
    unbatched = UnbatchedRecorder(model)
    for sample in _samples(example, req):
        try:
            with torch.no_grad():
                out = model(*[torch.from_numpy(sample[n]) for n in example])
            unbatched.check(req.inputs)
        except UsageError:
            raise
        except Exception as exc:
            unbatched.check(req.inputs)  # the likelier cause, named plainly
            shapes = ", ".join(f"{s.name}:{'x'.join(map(str, s.shape))}" for s in req.inputs)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UsageError(f"the model rejects input shape {shapes}: {type(exc).__name__}: {first[:200]}; "
                             "check --input against what the model expects") from exc
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if not all(isinstance(o, torch.Tensor) for o in outs):
            raise UsageError("the model must return a tensor or a tuple of tensors")
        refs.append([o.detach().float().numpy() for o in outs])
    for h in hooks:
        h.remove()
    unbatched.remove()
    n_out = len(refs[0])
    names = req.output_names or (["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)])
    if len(names) != n_out:
        raise UsageError(f"--output-name gives {len(names)} names but the model has {n_out} outputs")
    for i, (name, ref) in enumerate(zip(names, refs[0] if refs else [])):
        bad = sum(int(np.count_nonzero(~np.isfinite(r[i]))) for r in refs)
        if bad:  # no conversion can match a NaN, and no tolerance check catches one
            raise FrliteError(f"PyTorch itself gives {bad:,} NaN/Inf values in output {name!r} on seeded inputs in [0, 1); "
                              "the model or its checkpoint is broken (check it with `frlite inspect`)")
    example = {n: torch.from_numpy(v) for n, v in _samples(example, req)[0].items()}
    return example, refs, names, layer_shapes


def _onnx_artifact(tmp: Path, onnx_path: Path, mode: str, target: str, precision: str,
                   inputs: list[TensorInfo], outputs: list[TensorInfo], work: Path, log: _Log) -> Artifact:
    t0 = time.perf_counter()
    summary = summarize_onnx(onnx_path)
    extra: dict[str, str] = {}
    path = onnx_path
    if target == "ort-mobile":
        out_dir = tmp / "ort" / mode
        out_dir.mkdir(parents=True)
        env = dict(os.environ)
        # the idct form must not be constant-folded into dense weights inside the .ort file
        env["ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL"] = {"idct": "disable"}.get(mode, ORT_LEVEL.get(mode, "all"))
        src = work / f"{mode}.onnx"
        shutil.copyfile(onnx_path, src)
        log(f"ORT format ({mode})")
        proc = subprocess.run([sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(src),
                               "--output_dir", str(out_dir), "--optimization_style", "Fixed"],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise FrliteError(f"onnxruntime's ORT-format converter failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:300]}")
        ort_files = sorted(out_dir.glob("*.ort"))
        configs = sorted(out_dir.glob("*.config"))
        if not ort_files:
            raise FrliteError(f"onnxruntime's ORT-format converter wrote no .ort file for {mode}")
        path = ort_files[0].rename(out_dir / "model.ort")
        if configs:
            extra["required_operators_config"] = str(configs[0].rename(out_dir / "required_operators.config").relative_to(tmp))
        extra["source_onnx"] = str(onnx_path.relative_to(tmp))
    return Artifact(mode=mode, target=target, precision=precision, runtime="onnxruntime",
                    path=str(path.relative_to(tmp)), size_bytes=path.stat().st_size, sha256=_sha256(path),
                    op_counts=summary.op_counts, inputs=inputs, outputs=outputs, extra_files=extra,
                    convert_seconds=time.perf_counter() - t0,
                    session_options={"graph_optimization_level": ORT_LEVEL[mode]} if mode in ORT_LEVEL else {})


def _tflite_io(summary, names: list[str], shapes: list[tuple[int, ...]], kind: str, by_sig: dict[str, int]) -> list[TensorInfo]:  # type: ignore[no-untyped-def]
    infos = []
    sig_names = list(by_sig)
    for i, (name, shape) in enumerate(zip(names, shapes)):
        layout, perm = onnx2tf_layout(len(shape))
        want = tuple(shape[p] for p in perm) if perm else tuple(shape)
        if name in by_sig:
            sig = name
        elif len(sig_names) == len(names):
            sig = sig_names[i]
        else:
            raise FrliteError(f"converted .tflite has {kind}s {sig_names}, cannot match {name}")
        got = tuple(summary.tensors[by_sig[sig]].shape)
        if got != want:
            raise FrliteError(f"converted .tflite {kind} {sig} has shape {got}, expected {want} ({layout}); "
                              "onnx2tf changed the layout in an unexpected way")
        infos.append(TensorInfo(sig, list(got), "float32", layout, name, perm))
    return infos


def _tflite_artifacts(tmp: Path, example: dict[str, torch.Tensor], out_names: list[str],
                      ref_outputs: list[list[np.ndarray]], weights: list[FRWeight], req: ConvertRequest,
                      targets: list[str], work: Path, step, log: _Log, notes: dict[str, list[str]],
                      layer_maps: dict[str, dict], layer_shapes: dict[str, tuple[int, ...]],
                      skeleton: SkeletonExport | None) -> list[Artifact]:  # type: ignore[no-untyped-def]
    tfl_dir = tmp / "tflite"
    tfl_dir.mkdir()
    int8 = work / "dense_int8.tflite" if "int8-dynamic" in req.precisions else None
    converted: dict[str, Path] = {}  # mode -> fp32 .tflite onnx2tf made (dense weights / weight inputs)
    seconds: dict[str, float] = {}
    sources = [("dense", tmp / "onnx" / "dense.onnx", "the dense ONNX (the slow step)", None),
               ("idct", work / "skeleton.onnx", "the weight-free skeleton ONNX",
                list(skeleton.weight_inputs.values()) if skeleton else None)]
    for mode, src, what, weight_inputs in sources:
        if mode not in req.modes:
            continue
        done = step(f"onnx2tf + TFLite converter on {what}")
        converted[mode] = work / f"{mode}_onnx2tf_fp32.tflite"
        res = run_onnx2tf(src, work / f"onnx2tf_{mode}", converted[mode], list(example), out_names,
                          int8 if mode == "dense" else None, weight_inputs=weight_inputs)
        log(f"  onnx2tf: {res.seconds:.1f} s, peak {res.peak_rss_bytes / 2**30:.2f} GiB")
        done()
        seconds[mode] = res.seconds
        shutil.copyfile(res.log_path, tmp / ("onnx2tf.log" if mode == "dense" else f"onnx2tf_{mode}.log"))

    files: dict[tuple[str, str], Path] = {}
    if "factorized" in req.modes:
        done = step("onnx2tf + TFLite converter on the factorized ONNX")
        fact_tfl = work / "factorized_fp32.tflite"
        fres = run_onnx2tf(tmp / "onnx" / "factorized.onnx", work / "onnx2tf_factorized", fact_tfl, list(example), out_names)
        log(f"  onnx2tf: {fres.seconds:.1f} s, peak {fres.peak_rss_bytes / 2**30:.2f} GiB")
        done()
        seconds["factorized"] = fres.seconds
        for precision in [p for p in req.precisions if p in ("fp32", "fp16")]:
            dst = tfl_dir / f"factorized_{precision}.tflite"
            m = load_model_object(fact_tfl)
            if precision == "fp16":
                to_fp16(m)  # the quick parity below decides whether fp16 bases are safe
            save_model_object(m, dst)
            files[("factorized", precision)] = dst
    done = step("derive fp16 / idct .tflite files")
    for mode in [m for m in req.modes if m != "factorized"]:
        for precision in req.precisions:
            dst = tfl_dir / f"{mode}_{precision.replace('-', '_')}.tflite"
            if precision == "int8-dynamic":
                assert int8 is not None
                shutil.copyfile(int8, dst)
            else:
                m = load_model_object(converted[mode])
                key = str(dst.relative_to(tmp))
                if precision == "fp16":
                    to_fp16(m)
                if mode == "idct":
                    assert skeleton is not None
                    rep = inject_idct(m, weights, shapes=layer_shapes, input_weights=skeleton.weight_inputs)
                    name_io(m, list(example), out_names)  # the model's own inputs only
                    layer_maps[key] = rep.layer_outputs
                    notes[key] = [f"{layer} kept dense: {why}" for layer, why in rep.kept_dense.items()]
                    for note in notes[key]:
                        log(f"  {key}: {note}")
                else:
                    layer_maps[key] = fr_layer_outputs(m, weights, layer_shapes)
                if mode == "dense" and precision == "fp32":
                    shutil.copyfile(converted[mode], dst)
                else:
                    save_model_object(m, dst)
            files[(mode, precision)] = dst
    done()
    summary_cache = {}
    artifacts = []
    in_names = list(example)
    in_shapes = [tuple(t.shape) for t in example.values()]
    out_shapes = [tuple(o.shape) for o in ref_outputs[0]]
    for (mode, precision), path in files.items():
        if path not in summary_cache:
            summary_cache[path] = read_tflite(path)
        s = summary_cache[path]
        ins = _tflite_io(s, in_names, in_shapes, "input", s.signature_inputs)
        outs = _tflite_io(s, out_names, out_shapes, "output", s.signature_outputs)
        for target in targets:
            extra = {}
            if target in ("tflite-gpu", "tflite-nnapi"):
                from frlite.converter.delegates.delegate_compat import write_compat_report

                extra = write_compat_report(tmp, path, target, precision)
            artifacts.append(Artifact(mode=mode, target=target, precision=precision, runtime="tflite",
                                      path=str(path.relative_to(tmp)), size_bytes=path.stat().st_size,
                                      sha256=_sha256(path), op_counts=s.op_counts, inputs=ins, outputs=outs,
                                      extra_files=extra, convert_seconds=seconds.get(mode, 0.0)))
    return artifacts
