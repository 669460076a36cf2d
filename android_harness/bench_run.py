"""`frlite bench`: every .tflite of a target (one file or a convert folder) x every delegate, and
every .pte once, on the host or on one or more phones (in parallel), plus on-device parity of
both kinds of file when asked."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING
from dataclasses import dataclass, field
from pathlib import Path

from frlite.converter.core.convert_folder import ConvertFolder
from frlite.converter.core.errors import UsageError
from frlite.converter.core.progress import Progress
from frlite.runtimes.parity_inputs import Sample, load_inputs
from frlite.runtimes.reference_model import ReferenceRequest

from frlite.android_harness.adb_client import Adb
from frlite.android_harness.bench_result import BenchResult
from frlite.android_harness.device_runtime import open_on_device
from frlite.android_harness.device_bench import DEVICE_DELEGATES, DeviceBench, DeviceJob, select_devices
from frlite.android_harness.host_bench import HOST_DELEGATES, bench_host, bench_host_pte

if TYPE_CHECKING:
    from frlite.runtimes.parity_run import RunResult


@dataclass
class BenchRequest:
    target: Path
    devices: list[str] | None
    host: bool
    delegates: list[str]
    threads: int = 4
    runs: int = 50
    warmup: int = 5
    min_seconds: float = 1.0
    binary: Path | None = None
    apk: bool = False
    parity: bool = False
    executor_runner: Path | None = None  # ExecuTorch's executor_runner for the phone, for .pte files
    adb: str | None = None
    reference: ReferenceRequest = field(default_factory=ReferenceRequest)  # for --parity
    progress: Progress = field(default_factory=Progress)  # a line per finished file x delegate (x phone)


def _jobs(target: Path) -> tuple[list[DeviceJob], ConvertFolder | None]:
    """What to run: a lone .tflite file, or every .tflite of a convert folder, each checked
    against the manifest's sha256 before it is run or pushed (ConvertFolder.artifact_file)."""
    if target.is_file() and target.suffix == ".tflite":
        from frlite.converter.tflite.tflite_file import read_tflite

        # a lone file: its precision is what its weights are stored in (fp16 constants -> fp16)
        fp16 = any(t.dtype == "float16" and t.const_bytes for t in read_tflite(target).tensors)
        return [DeviceJob(target, target.name, "fp16" if fp16 else "fp32")], None
    if target.is_dir() and (target / "manifest.json").exists():
        folder = ConvertFolder.open(target)
        arts = folder.manifest.artifacts
        seen: set[str] = set()
        runnable = []
        for art in arts:
            if art.runtime in ("tflite", "executorch") and art.path not in seen:
                seen.add(art.path)
                runnable.append(art)
        if not runnable:
            raise UsageError(f"{target} holds no .tflite or .pte artifact; convert with --target tflite-cpu/gpu/nnapi or executorch")
        folder.verify_all(runnable)  # every file before the first runs
        # the fp16-arithmetic verdict convert measured for the file (any of its tflite-* targets)
        verdicts = {a.path: a.fp16_arith for a in arts if a.fp16_arith is not None}
        jobs = [DeviceJob(folder.artifact_file(a), a.path, a.precision, a.mode, a.inputs, a.outputs,
                          fp16_arith=verdicts.get(a.path), runtime=a.runtime) for a in runnable]
        return jobs, folder
    if target.is_file() and target.suffix == ".pte":
        raise UsageError(f"{target}: a .pte's tensors are positional; bench the `frlite convert` folder holding it")
    raise UsageError(f"{target} is neither a .tflite file nor a `frlite convert` folder")


def _delegates(job: DeviceJob, asked: list[str]) -> list[str]:
    """The delegates a file runs with: each asked one for a .tflite; a .pte once, as "xnnpack"
    (the program itself decides which ops XNNPACK runs)."""
    return ["xnnpack"] if job.runtime == "executorch" else list(asked)


def run_bench(req: BenchRequest) -> tuple[list[BenchResult], "DeviceRuns | None"]:
    jobs, folder = _jobs(req.target)
    results: list[BenchResult] = []
    if req.host:
        for d in req.delegates:
            if d not in HOST_DELEGATES:
                raise UsageError(f"--delegate {d!r} runs only on a phone; on the host use: {', '.join(HOST_DELEGATES)}")
        from frlite.converter.core.spawn import run_spawned

        # one fresh process per file x delegate, so each peak RSS is that run's own
        # a .pte runs once: its delegation is fixed in the program (XNNPACK subgraphs, the rest portable)
        steps = req.progress.steps(sum(len(_delegates(job, req.delegates)) for job in jobs), "bench")
        for job in jobs:
            for d in _delegates(job, req.delegates):
                t0 = time.perf_counter()
                if job.runtime == "executorch":
                    results.append(run_spawned(bench_host_pte, job.local, job.inputs, job.outputs, req.threads, req.runs,
                                               req.warmup, req.min_seconds, job.label, job.mode, job.precision))
                else:
                    results.append(run_spawned(bench_host, job.local, d, req.threads, req.runs, req.warmup,
                                               req.min_seconds, job.label, job.mode, job.precision))
                steps.finished(f"{job.label} ({d})", time.perf_counter() - t0)
        return results, None
    for d in req.delegates:
        if d not in DEVICE_DELEGATES:
            raise UsageError(f"--delegate {d!r} is not one of: {', '.join(DEVICE_DELEGATES)}")
    if req.parity and folder is None:
        raise UsageError("--parity needs a `frlite convert` folder as TARGET (its manifest says how to compare)")
    adb = Adb(req.adb)
    serials = select_devices(adb, req.devices)
    if any(d in ("gpu", "nnapi") for d in req.delegates):
        from frlite.android_harness.precision_policy import choose

        for job in [j for j in jobs if j.runtime == "tflite"]:  # once per file, before any phone is touched
            choice = choose(job.local, job.precision, job.fp16_arith)  # type: ignore[arg-type]
            job.allow_fp16, job.numerics = choice.allow_fp16, choice.reason
    samples = None
    reference = None
    if req.parity:
        from frlite.runtimes.reference_model import reference_runtime

        assert folder is not None
        samples = load_inputs(None, folder.manifest.model_inputs, 1, 0)
        reference = reference_runtime(folder, req.reference)  # before anything is pushed
    steps = req.progress.steps(len(serials) * sum(len(_delegates(job, req.delegates)) for job in jobs), "bench")

    def one_device(serial: str) -> tuple[list[BenchResult], dict]:
        out: list[BenchResult] = []
        device_outputs: dict = {}
        with DeviceBench(adb, serial, req.binary, req.apk, runner=req.executor_runner,
                         runtimes={job.runtime for job in jobs}) as dev:
            for job in jobs:
                for d in _delegates(job, req.delegates):
                    t0 = time.perf_counter()
                    res, _ = dev.bench(job, d, req.threads, req.runs, req.warmup, req.min_seconds)
                    out.append(res)
                    if samples is not None and res.error is None:
                        phone = open_on_device(dev, job, d, req.threads)  # the phone as a Runtime: model layout in and out
                        device_outputs[(job.label, phone.name)] = [phone.run(s.arrays) for s in samples]
                    steps.finished(f"{serial} {job.label} ({d})", time.perf_counter() - t0, "ERROR" if res.error else "")
        return out, device_outputs

    parity_outputs: dict = {}
    with ThreadPoolExecutor(max_workers=len(serials)) as pool:
        for res, outs in pool.map(one_device, serials):
            results += res
            parity_outputs.update(outs)
    parity = None
    if samples is not None:
        assert folder is not None and reference is not None
        parity = _device_parity(folder, reference, samples, parity_outputs, jobs)
    return results, parity


@dataclass
class DeviceRuns:
    """`--parity`: the phones' outputs compared with PyTorch, as parity results (runtime
    `tflite@<serial>/<delegate>`, or `executorch@<serial>/xnnpack` for a .pte), with what the
    report's pictures need."""

    results: list[RunResult]
    inputs: list[dict]                      # source and sha256 per sample, as in parity.json
    kept: dict[str, dict[str, list]]        # report.samples_kept entries for these runs


def _device_parity(folder: ConvertFolder, ref, samples: list[Sample], outputs: dict,  # type: ignore[no-untyped-def]
                   jobs: list[DeviceJob]) -> DeviceRuns:
    """The phone's outputs compared with PyTorch by the parity checker's own comparison
    (runtimes/parity_run.compare_run): the same metrics, tolerances and verdicts as a host run."""
    from frlite.runtimes.parity_run import compare_run  # imports the runtimes: only for --parity

    manifest = folder.manifest
    refs = [ref.run(s.arrays) for s in samples]
    inputs = [s.record() for s in samples]
    numerics = {j.label: j.allow_fp16 for j in jobs}
    results, kept = [], {}
    for (path, runtime), outs in outputs.items():
        arts = [a for a in manifest.artifacts if a.path == path]
        delegate = runtime.rsplit("/", 1)[1]
        # the GPU / NNAPI delegate allowed to compute in fp16 is judged as fp16 arithmetic
        variant = "fp16-arith" if numerics.get(path) and delegate in ("gpu", "nnapi") else "default"
        label = f"{path} on {runtime} ({variant})"
        res = compare_run(label, arts, runtime, variant, manifest.model_outputs, refs, outs, None, None, None,
                          inputs=inputs)
        results.append(res)
        kept[label] = {o.name: [out[o.name] for out in outs] for o in res.outputs}
        kept[f"reference|{label}"] = {n: [r[n] for r in refs] for n in refs[0]}
        kept[f"input|{label}"] = {n: [s.arrays[n] for s in samples] for n in samples[0].arrays}
    return DeviceRuns(results, inputs, kept)
