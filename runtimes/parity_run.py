"""`frlite parity`: the same inputs through PyTorch, ONNX Runtime and LiteRT, compared.

Reads the convert folder's manifest (artifacts, tensor names, layouts) and checks every file
it will run against the manifest's sha256, builds the reference (the FR model itself: from the
command line's --model, a built-in spec, or --trust-model-code; reference_model.py), runs every artifact in
every asked runtime variant, and returns a ParityReport the report writers turn into JSON,
Markdown and HTML. Timings live apart from the numbers, so two runs on the same inputs give
identical reports apart from `timings`.
"""
from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from frlite.converter.core.convert_folder import ConvertFolder
from frlite.converter.core.errors import UsageError
from frlite.converter.core.manifest import Artifact, Fp16Arith, TensorInfo

from frlite.runtimes.base import RunOptions
from frlite.runtimes.fp16_arith_runtime import Fp16ArithRuntime
from frlite.runtimes.fp16_executor import OpStat
from frlite.runtimes.fp16_verdict import measure
from frlite.runtimes.loader import open_artifact
from frlite.runtimes.parity_inputs import describe_samples, load_inputs
from frlite.converter.core.memory import release_memory
from frlite.converter.core.progress import Progress, plural
from frlite.converter.core.spawn import run_spawned
from frlite.converter.core.tolerances import FP16_ARITH_CEILING, INTEGER_GATES, INTEGER_PRECISIONS
from frlite.runtimes.parity_metrics import sqnr_db, DEFAULT_TOLERANCES, OutputMetrics, TaskMetrics, compare, guess_task, task_metrics
from frlite.runtimes.reference_model import ReferenceRequest, reference_runtime
from frlite.runtimes.report_decision import DecisionTable, add_results, convert_table

SCHEMA_VERSION = 1
RUNTIME_VARIANTS = {"onnxruntime": ["default", "no-opt"],
                    "tflite": ["xnnpack", "builtin", "reference", "fp16-arith", "fp32-arith"],
                    "executorch": ["default"]}
DEFAULT_VARIANTS = {"onnxruntime": ["default"], "tflite": ["xnnpack"], "executorch": ["default"]}
PARITY_RUNTIMES = ("torch", "onnxruntime", "tflite", "executorch")
# files meant for these targets also run in fp16 arithmetic by default: that is how the GPU
# delegate (precision loss allowed) and NNAPI (allow_fp16) compute, not as x86 XNNPACK does


@dataclass
class OutputResult:
    name: str
    task: str
    atol: float
    rtol: float
    samples: list[OutputMetrics]
    task_samples: list[TaskMetrics]
    pass_rate: float
    passed: bool


@dataclass
class RunResult:
    label: str            # e.g. "tflite/idct_fp16.tflite on tflite (xnnpack)"
    mode: str
    targets: list[str]
    precision: str
    path: str
    runtime: str
    variant: str
    outputs: list[OutputResult]
    passed: bool
    error: str | None = None
    fp16_arith: Fp16Arith | None = None  # variant fp16-arith: the measured verdict
    inputs: list[dict] | None = None     # the samples this run saw when not the report's (a phone's run)

    @property
    def worst_rel_error(self) -> float:
        """max |error| / max |reference| over outputs and samples; NaN when any value is NaN/Inf
        (Python's max() would skip a NaN that is not first)."""
        if self.nonfinite:
            return math.nan
        return max((m.max_abs_error / (m.ref_scale or 1.0) for o in self.outputs for m in o.samples), default=0.0)

    @property
    def nonfinite(self) -> str:
        """'' or why the numbers are meaningless: NaN/Inf counts in the runtime's or the reference's output."""
        got = sum(m.nonfinite for o in self.outputs for m in o.samples)
        ref = sum(m.ref_nonfinite for o in self.outputs for m in o.samples)
        parts = ([f"{got:,} NaN/Inf values in the output"] if got else []) + (
            [f"{ref:,} NaN/Inf values in the PyTorch reference"] if ref else [])
        return "; ".join(parts)


@dataclass
class ParityReport:
    schema_version: int
    folder: str
    model_spec: str
    checkpoint_sha256: str | None
    reference: str
    inputs: list[dict]
    tolerances: dict[str, dict[str, float]]
    environment: dict[str, object]
    results: list[RunResult]
    passed: bool
    layers: dict[str, dict] = field(default_factory=dict)  # label -> per-layer comparison (--layers)
    timings: dict[str, float] = field(default_factory=dict)
    decision: DecisionTable | None = None  # one row per file: size, verdicts, task, latency, coverage
    # for pictures, not in JSON: "reference", "input" and one entry per result label (a run with
    # its own samples also has "reference|<label>" and "input|<label>")
    samples_kept: dict[str, dict[str, list]] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("samples_kept")
        return d


@dataclass
class _FileRun:
    outputs: list[dict[str, np.ndarray]]
    op_stats: list[list[OpStat]] | None = None  # fp16/fp32-arith: per sample, every op's max |value|
    producers: dict[int, int] | None = None


def judged_tolerance(precision: str, variant: str) -> tuple[float, float]:
    """(atol relative to the reference's scale, rtol) a run is judged by: fp16 arithmetic as
    fp16, whatever the file stores; else the file's precision."""
    return DEFAULT_TOLERANCES.get("fp16" if variant == "fp16-arith" else precision, (1e-3, 0.0))


def compare_run(label: str, arts: list[Artifact], runtime: str, variant: str, model_outputs: list[TensorInfo],
                refs: list[dict[str, np.ndarray]], outs: list[dict[str, np.ndarray]], atol: float | None,
                rtol: float | None, task: str | None, verdict: Fp16Arith | None = None,
                inputs: list[dict] | None = None) -> RunResult:
    """One file's outputs on one runtime against the reference, sample by sample: the metrics
    and verdict every parity result carries (host runs here, phone runs from `frlite bench --parity`)."""
    art = arts[0]
    a_rel, r_tol = judged_tolerance(art.precision, variant)
    if verdict is not None and verdict.safe and verdict.judged_by == "task":
        a_rel = FP16_ARITH_CEILING  # the fp16 task gate held: outputs are bounded by the ceiling
    out_results = []
    for spec in model_outputs:
        name = spec.model_name
        the_task = task or guess_task(tuple(spec.shape))
        finite = [np.abs(r[name])[np.isfinite(r[name])] for r in refs]  # a NaN reference fails in compare()
        scale = max((float(f.max()) for f in finite if f.size), default=0.0) or 1.0
        use_atol = atol if atol is not None else a_rel * scale
        use_rtol = rtol if rtol is not None else r_tol
        mets = [compare(r[name], o[name], use_atol, use_rtol) for r, o in zip(refs, outs)]
        for m, o in zip(mets, outs):  # a NaN / Inf in an output fails, whatever the tolerance
            if not np.all(np.isfinite(o[name])):
                m.passed = False
        tms = [task_metrics(the_task, r[name], o[name]) for r, o in zip(refs, outs)]
        if art.precision in INTEGER_PRECISIONS and atol is None and rtol is None:
            # integer files: the value bound only catches garbage; the task gate convert ran judges
            metric, least = integer_gate(art, the_task)
            for m, tm, r, o in zip(mets, tms, refs, outs):
                got = sqnr_db(r[name], o[name]) if metric == "sqnr_db" else getattr(tm, metric)
                m.passed = bool(m.passed and got is not None and got >= least)
        rate = sum(m.passed for m in mets) / len(mets)
        out_results.append(OutputResult(name, the_task, use_atol, use_rtol, mets, tms, rate, rate == 1.0))
    ok = all(o.passed for o in out_results) and (verdict is None or verdict.safe)
    return RunResult(label, art.mode, [a.target for a in arts], art.precision, art.path, runtime, variant,
                     out_results, ok, fp16_arith=verdict, inputs=inputs)


def integer_gate(art: Artifact, task: str) -> tuple[str, float]:
    """(metric, least value) a full-integer file is judged by: the gate its conversion used, else the
    default for the task (converter/core/tolerances.py INTEGER_GATES)."""
    if art.integer is not None and art.integer.task == task:
        return art.integer.metric, art.integer.threshold
    return INTEGER_GATES[task]


def tolerance_table(atol: float | None = None, rtol: float | None = None) -> dict[str, dict[str, float]]:
    """The report's `tolerances`: per precision, plus `given` when --atol / --rtol were passed."""
    table = {p: {"atol_times_ref_scale": a, "rtol": r} for p, (a, r) in DEFAULT_TOLERANCES.items()}
    if atol is not None or rtol is not None:
        table["given"] = {"atol": atol if atol is not None else -1, "rtol": rtol if rtol is not None else -1}
    return table


def _run_file(folder: str, art: Artifact, threads: int, variant: str,
              samples: list[dict[str, np.ndarray]]) -> _FileRun:
    """Run one file on every sample. Called in a fresh process per file: runtimes keep their
    arenas (and XNNPACK / im2col buffers) until the process ends, so running them one after
    another in one process would add their peaks up (8.8 GB for the UNet at 640x959)."""
    rt = open_artifact(Path(folder), art, RunOptions(threads=threads, variant=variant))
    outs = [rt.run(s) for s in samples]
    inner = getattr(rt, "inner", rt)
    if isinstance(inner, Fp16ArithRuntime):
        return _FileRun(outs, inner.runs, inner.producers())
    return _FileRun(outs)


def environment(threads: int) -> dict[str, object]:
    from importlib.metadata import PackageNotFoundError, version

    def installed(pkg: str) -> str:
        try:
            return version(pkg)
        except PackageNotFoundError:  # executorch in an environment set up before it joined the lock
            return "missing"

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "python": platform.python_version(),
            "versions": {p: installed(p) for p in ("torch", "onnxruntime", "ai-edge-litert", "onnx", "numpy", "executorch")}}


def _select(folder: ConvertFolder, runtimes: list[str], chosen: dict[str, list[str]]) -> dict[tuple[str, str], list[Artifact]]:
    """The manifest's artifacts grouped by file (one tflite file serves cpu, gpu and nnapi
    targets), keeping those the --runtimes / --variants filters run; none is an error."""
    files: dict[tuple[str, str], list[Artifact]] = {}
    for art in folder.manifest.artifacts:
        if art.runtime in runtimes:
            files.setdefault((art.path, art.runtime), []).append(art)
    held = sorted({a.runtime for a in folder.manifest.artifacts})
    if not files:
        raise UsageError(f"--runtimes {','.join(runtimes)} selects none of the files of {folder.root} "
                         f"(they run on: {', '.join(held)}); nothing would be compared")
    if not any(chosen.get(rt) for _, rt in files):
        raise UsageError(f"--variants selects no variant of the runtimes of {folder.root}'s files "
                         f"({'; '.join(f'{rt}: ' + ','.join(RUNTIME_VARIANTS[rt]) for rt in held)}); nothing would be compared")
    return {k: v for k, v in files.items() if chosen.get(k[1])}


def _file_variants(runtime: str, arts: list[Artifact], chosen: dict[str, list[str]], default_fp16: bool) -> list[str]:
    """The variants one file runs in: the chosen ones of its runtime, plus fp16-arith by default
    for a file meant for the GPU / NNAPI delegates."""
    variants = list(chosen.get(runtime, []))
    if default_fp16 and any(a.computes_in_fp16_on_delegates for a in arts):
        variants.append("fp16-arith")
    return variants


def run_parity(folder: str | Path, inputs: list[str] | None = None, samples: int = 2, seed: int = 0,
               runtimes: list[str] | None = None, variants: list[str] | None = None,
               atol: float | None = None, rtol: float | None = None, task: str | None = None,
               threads: int = 1, keep_outputs: bool = True, layers: bool = False,
               reference: ReferenceRequest | None = None, progress: Progress | None = None) -> ParityReport:
    """`progress` gets a line per finished step (the reference, each file x variant run, each
    layer comparison) with its time and an estimate of what is left; None prints nothing."""
    progress = progress or Progress()
    runtimes = runtimes or list(PARITY_RUNTIMES)
    for r in runtimes:
        if r not in PARITY_RUNTIMES:
            raise UsageError(f"--runtimes {r!r} is not one of: {', '.join(PARITY_RUNTIMES)}")
    if "torch" not in runtimes:
        raise UsageError("--runtimes must include torch: PyTorch is the reference")
    if set(runtimes) == {"torch"}:
        raise UsageError("--runtimes torch alone compares nothing: add onnxruntime, tflite and/or executorch")
    if task is not None and task not in ("segmentation", "classification", "none"):
        raise UsageError(f"--task {task!r} is not one of: segmentation, classification, none")
    chosen: dict[str, list[str]] = {k: list(v) for k, v in DEFAULT_VARIANTS.items()}
    if variants:
        for v in variants:
            owner = next((rt for rt, vs in RUNTIME_VARIANTS.items() if v in vs), None)
            if owner is None:
                raise UsageError(f"--variants {v!r} is not one of: {', '.join(sum(RUNTIME_VARIANTS.values(), []))}")
        chosen = {rt: [v for v in vs if v in variants] for rt, vs in RUNTIME_VARIANTS.items()}
    conv = ConvertFolder.open(folder)
    manifest = conv.manifest
    files = _select(conv, runtimes, chosen)
    conv.verify_all([a for arts in files.values() for a in arts])  # before any file or model runs
    table = convert_table(conv)  # reads the compat reports the manifest lists: a bad one stops the run before it starts
    default_fp16 = not variants
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    data = load_inputs(inputs, manifest.model_inputs, samples, seed)
    reference_rt = reference_runtime(conv, reference)
    # progress starts once the inputs and the reference model are known good: bad input stays one error line
    progress(f"{plural(len(files), 'file')} checked against the manifest; PyTorch reference on {plural(len(data), 'input')}")
    ref_steps = progress.steps(len(data), "PyTorch reference")
    refs = []
    for s in data:
        t1 = time.perf_counter()
        refs.append(reference_rt.run(s.arrays))
        ref_steps.finished(s.source, time.perf_counter() - t1)
    release_memory()
    timings["reference"] = time.perf_counter() - t0
    data_described = describe_samples(data)
    runs = sum(len(_file_variants(runtime, arts, chosen, default_fp16)) for (_, runtime), arts in files.items())
    progress(f"{plural(runs, 'run')} to compare ({plural(len(files), 'file')} x their variants), each in its own process")
    steps = progress.steps(runs, "parity")
    results: list[RunResult] = []
    kept: dict[str, dict[str, list]] = {"reference": {n: [r[n] for r in refs] for n in refs[0]},
                                        "input": {n: [s.arrays[n] for s in data] for n in data[0].arrays}} if keep_outputs else {}
    for (path, runtime), arts in files.items():
        art = arts[0]
        for variant in _file_variants(runtime, arts, chosen, default_fp16):
            label = f"{path} on {runtime} ({variant})"
            t1 = time.perf_counter()
            try:
                run = run_spawned(_run_file, str(conv.root), art, threads, variant, [s.arrays for s in data])
                outs = run.outputs
            except Exception as exc:  # a runtime that cannot run the file is a failed comparison
                results.append(RunResult(label, art.mode, [a.target for a in arts], art.precision, path, runtime,
                                         variant, [], False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"))
                steps.finished(label, time.perf_counter() - t1, "ERROR")
                continue
            timings[label] = time.perf_counter() - t1
            verdict = None
            if variant == "fp16-arith" and run.op_stats is not None:
                a_rel, _ = judged_tolerance(art.precision, variant)
                verdict = measure(run.op_stats, refs, outs, a_rel, art.layer_outputs, run.producers,
                                  task=task, inputs=data_described)
            res = compare_run(label, arts, runtime, variant, manifest.model_outputs, refs, outs, atol, rtol, task, verdict)
            results.append(res)
            if keep_outputs:
                kept[label] = {o.name: [out[o.name] for out in outs] for o in res.outputs}
            steps.finished(label, timings[label], "pass" if res.passed else "FAIL")
    tol_table = tolerance_table(atol, rtol)
    layer_reports: dict[str, dict] = {}
    if layers:
        from frlite.runtimes.layer_compare import LayerComparison, compare_layers

        for res in results:
            if res.passed and not res.error and res.precision not in INTEGER_PRECISIONS:
                continue  # per-layer detail where a file diverges, and for every integer file (what it lost where)
            if res.variant.endswith("-arith"):
                continue  # the fp16 verdict names the first overflowing op and its FR layer itself
            art = next(a for a in manifest.artifacts if a.path == res.path and a.runtime == res.runtime)
            a_rel, _ = DEFAULT_TOLERANCES.get(art.precision, (1e-3, 0.0))
            progress(f"comparing every FR layer of {res.label}")
            if art.runtime == "executorch":
                from frlite.runtimes.executorch_runtime import LAYERS_NOTE

                layer_reports[res.label] = asdict(LayerComparison([], None, a_rel, f"layers not compared: {LAYERS_NOTE}"))
                continue
            try:
                cmp = compare_layers(reference_rt.model, conv.root, art, data[0].arrays, a_rel)
            except Exception as exc:  # a layer map the file does not hold (the manifest is input): a note, not a crash
                cmp = LayerComparison([], None, a_rel, f"layers not compared: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
            layer_reports[res.label] = asdict(cmp)
    timings["total"] = time.perf_counter() - t0
    return ParityReport(
        SCHEMA_VERSION, str(conv.root), manifest.model_spec, manifest.checkpoint_sha256, "torch",
        [s.record() for s in data], tol_table, environment(threads),
        results, bool(results) and all(r.passed for r in results), layer_reports, timings, add_results(table, results), kept)
