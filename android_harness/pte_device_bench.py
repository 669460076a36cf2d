"""ExecuTorch programs (.pte) on a phone with the `executor_runner` the user supplies.

executor_runner (ExecuTorch's examples/portable/executor_runner, built for android arm64 with
the XNNPACK backend linked in) has no warm-up or minimum-time flags: frlite asks for
1 + warmup + runs executions and splits the per-iteration times it logs into the first
inference, the warm-up and the timed runs (output_parser.parse_executor_runner_output). Timing
runs use the runner's own inputs (all ones: latency does not depend on the values);
`--min-seconds` does not apply. `--parity` feeds real samples through the runner's `--inputs` /
`--output_file` instead (pte_device_runtime.py). Layout of the phone folder and clean-up are
DeviceBench's (device_bench.py).
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from frlite.converter.core.errors import UsageError

from frlite.android_harness.bench_result import BenchResult, LatencyStats
from frlite.android_harness.output_parser import parse_executor_runner_output

if TYPE_CHECKING:
    from frlite.android_harness.device_bench import DeviceBench, DeviceJob

RUNNER_NAME = "executor_runner"


def check_runner(runner: Path | None) -> Path:
    if runner is None:
        raise UsageError("the folder holds .pte files: give --executor-runner PATH (ExecuTorch's executor_runner built "
                         "for android arm64 with XNNPACK, docs/android.md); frlite downloads nothing")
    if not runner.is_file():
        raise UsageError(f"executor_runner {runner} does not exist; build it as docs/android.md shows")
    return runner


def runner_flags(remote_pte: str, threads: int, executions: int) -> list[str]:
    return [f"--model_path={remote_pte}", f"--num_executions={executions}", f"--cpu_threads={threads}"]


def bench_pte(dev: "DeviceBench", job: "DeviceJob", threads: int, runs: int, warmup: int) -> BenchResult:
    remote = dev.push_once(job.local)
    flags = runner_flags(remote, threads, 1 + warmup + runs)
    proc = dev.adb.shell(dev.serial, [dev.remote_path(RUNNER_NAME), *flags], timeout_s=dev.timeout_s, check=False)
    text = proc.stdout + proc.stderr
    out = parse_executor_runner_output(text)
    base = dict(backend="device", device=dev.facts.as_dict(), artifact=job.label, mode=job.mode, precision=job.precision,
                delegate="xnnpack", threads=threads, flags=flags, warnings=list(dev.warnings))
    if proc.returncode != 0 or not out.complete:
        last = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        return BenchResult(**base, init_us=None, first_inference_us=None, warmup_avg_us=None, latency=None,
                           peak_memory_mb=None, error=f"executor_runner failed (exit code {proc.returncode}): {last[0][:200]}")
    assert out.executions is not None and out.total_us is not None
    its = out.iterations_us
    if len(its) == out.executions and len(its) > 1 + warmup:
        first, warm, timed = its[0], its[1:1 + warmup], its[1 + warmup:]
        latency = LatencyStats.from_samples(timed)
        warm_avg = statistics.fmean(warm) if warm else None
    else:  # a runner that logs only the total: its mean over every execution, nothing finer
        mean = out.total_us / out.executions
        first, warm_avg = None, None
        latency = LatencyStats(out.executions, mean, mean, mean, None, 0.0)
        base["warnings"] = [*base["warnings"], "executor_runner logged no per-iteration times: the mean of all "
                            "executions, first one included"]
    return BenchResult(**base, init_us=out.load_us, first_inference_us=first, warmup_avg_us=warm_avg,
                       latency=latency, peak_memory_mb=None)
