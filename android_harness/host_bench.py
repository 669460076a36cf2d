"""The benchmark protocol on this machine, with the LiteRT interpreter (and executorch.runtime for .pte).

Same steps as benchmark_model: init (load + allocate), first inference, warm-up runs, then
timed runs until both `runs` and `min_seconds` are met; min / median / mean / p90 / std in
microseconds and the process's peak RSS. Delegates: `xnnpack` (LiteRT's default) and `cpu`
(builtin kernels without default delegates); the GPU and NNAPI delegates exist only on a phone.
"""
from __future__ import annotations

import platform
import resource
import time
from pathlib import Path

import numpy as np

from frlite.converter.core.errors import UsageError
from frlite.runtimes.base import RunOptions, Runtime

from frlite.android_harness.bench_result import BenchResult, LatencyStats

HOST_DELEGATES = {"xnnpack": "xnnpack", "cpu": "builtin"}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def bench_host(path: Path, delegate: str, threads: int, runs: int, warmup: int, min_seconds: float,
               artifact: str | None = None, mode: str | None = None, precision: str | None = None) -> BenchResult:
    if delegate not in HOST_DELEGATES:
        raise UsageError(f"delegate {delegate!r} runs only on a phone; on the host use: {', '.join(HOST_DELEGATES)}")
    from frlite.runtimes.litert_runtime import LiteRTRuntime

    t0 = time.perf_counter()
    rt = LiteRTRuntime(path, RunOptions(threads=threads, variant=HOST_DELEGATES[delegate]))
    init_us = (time.perf_counter() - t0) * 1e6
    return _measure(rt, init_us, runs, warmup, min_seconds, artifact or str(path), mode, precision, delegate, threads)


def bench_host_pte(path: Path, inputs: list, outputs: list, threads: int, runs: int, warmup: int, min_seconds: float,
                   artifact: str | None = None, mode: str | None = None, precision: str | None = None) -> BenchResult:
    """The same protocol for an ExecuTorch program with executorch.runtime. `inputs` / `outputs`
    are the manifest's TensorInfo lists: a .pte's tensors are positional. Its delegate is the
    program's own (XNNPACK subgraphs, the rest on portable kernels): reported as "xnnpack"."""
    from frlite.runtimes.executorch_runtime import ExecutorchRuntime
    from frlite.runtimes.loader import tensor_spec

    specs = {t.name: tensor_spec(t) for t in inputs + outputs}
    t0 = time.perf_counter()
    rt = ExecutorchRuntime(path, RunOptions(threads=threads), specs, ([t.name for t in inputs], [t.name for t in outputs]))
    init_us = (time.perf_counter() - t0) * 1e6
    return _measure(rt, init_us, runs, warmup, min_seconds, artifact or str(path), mode, precision, "xnnpack", threads)


def _measure(rt: Runtime, init_us: float, runs: int, warmup: int, min_seconds: float, artifact: str,
             mode: str | None, precision: str | None, delegate: str, threads: int) -> BenchResult:
    """First inference, warm-up, then timed runs until both `runs` and `min_seconds` are met."""
    rng = np.random.default_rng(0)
    feeds = {s.name: rng.random(s.shape, dtype=np.float32).astype(s.dtype) for s in rt.inputs()}
    t0 = time.perf_counter()
    rt.run_native(feeds)
    first_us = (time.perf_counter() - t0) * 1e6
    warm = []
    for _ in range(warmup):
        t0 = time.perf_counter()
        rt.run_native(feeds)
        warm.append((time.perf_counter() - t0) * 1e6)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        rt.run_native(feeds)
        times.append((time.perf_counter() - t0) * 1e6)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return BenchResult("host", {"cpu": _cpu_name(), "machine": platform.machine()}, artifact, mode, precision,
                       delegate, threads, init_us, first_us, float(np.mean(warm)) if warm else None,
                       LatencyStats.from_samples(times), peak_mb)
