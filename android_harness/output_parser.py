"""Parse what the official TFLite / LiteRT `benchmark_model` tools print.

Every form seen in the wild is accepted: lines with or without the `INFO: ` prefix, numbers in
plain or scientific notation (1.24e+06), the newer `p5= median= p95=` fields, and the benchmark
APK's logcat form (`11-24 10:00:00.000  1234  1234 I tflite  : ...`). Times are microseconds.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PREFIX = re.compile(r"^(?:.*?\s[VDIWEF]\s+tflite\s*:\s*|INFO:\s*|I\d{4} [\d:.]+\s+\d+\s+\S+\]\s*)")
_TIMINGS = re.compile(rf"Inference timings in us:\s*Init:\s*({_NUM}),\s*First inference:\s*({_NUM}),"
                      rf"\s*Warmup \(avg\):\s*({_NUM}),\s*Inference \(avg\):\s*({_NUM})")
_STATS = re.compile(rf"count=({_NUM})(?P<rest>(?:\s+\w+=(?:{_NUM}))+)")
_FIELD = re.compile(rf"(\w+)=({_NUM})")
_MEM_DELTA = re.compile(rf"Memory footprint delta from the start of the tool \(MB\):\s*init=({_NUM})\s+overall=({_NUM})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*({_NUM})")
_REPLACING = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]*)\)")
_RUNS_LINE = re.compile(r"Running benchmark for at least (\d+) iterations")


@dataclass
class RunStats:
    count: int
    first: float | None = None
    curr: float | None = None
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    std: float | None = None
    p5: float | None = None
    median: float | None = None
    p95: float | None = None


@dataclass
class BenchmarkOutput:
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    warmup: RunStats | None = None
    inference: RunStats | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    peak_memory_mb: float | None = None
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    delegate_name: str | None = None
    partitions: list[tuple[int, int, str]] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def complete(self) -> bool:
        return self.inference_avg_us is not None


def _clean(line: str) -> str:
    return _PREFIX.sub("", line.strip())


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    """Read every known line; unknown lines are ignored. The last stats line of the run is the
    inference one; an earlier one (fewer runs) is the warm-up."""
    out = BenchmarkOutput()
    stats: list[RunStats] = []
    for raw in text.splitlines():
        line = _clean(raw)
        if m := _TIMINGS.search(line):
            out.init_us, out.first_inference_us, out.warmup_avg_us, out.inference_avg_us = (float(g) for g in m.groups())
        elif m := _STATS.search(line):
            fields = {k: float(v) for k, v in _FIELD.findall(m.group("rest"))}
            known = {k: fields.get(k) for k in ("first", "curr", "min", "max", "avg", "std", "p5", "median", "p95")}
            stats.append(RunStats(int(float(m.group(1))), **known))
        elif m := _MEM_DELTA.search(line):
            out.memory_init_mb, out.memory_overall_mb = float(m.group(1)), float(m.group(2))
        elif m := _PEAK.search(line):
            out.peak_memory_mb = float(m.group(1))
        elif m := _REPLACING.search(line):
            delegated, total, name = int(m.group(1)), int(m.group(2)), m.group(3)
            out.partitions.append((delegated, total, name))
            out.delegated_nodes = (out.delegated_nodes or 0) + delegated
            out.total_nodes, out.delegate_name = total, name
    if stats:
        out.inference = stats[-1]
        if len(stats) > 1:
            out.warmup = stats[-2]
    return out


# ExecuTorch's executor_runner (examples/portable/executor_runner) logs through ET_LOG:
# `I 00:00:00.012345 executorch:executor_runner.cpp:315] Model loaded in 12.5 ms.` (times in ms)
_ET_PREFIX = re.compile(r"^(?:.*?\s[VDIWEF]\s+\S+\s*:\s*)?(?:[DIEWF] [\d:.]+ executorch:\S+\]\s*)?")
_ET_LOADED = re.compile(rf"Model loaded in ({_NUM}) ms")
_ET_ITER = re.compile(rf"Iteration (\d+) of (\d+): ({_NUM}) ms")
_ET_TOTAL = re.compile(rf"Model executed successfully (\d+) time\(s\) in ({_NUM}) ms")


@dataclass
class RunnerOutput:
    """What executor_runner printed, in microseconds: the load time, each execution's time (runners
    before per-iteration logging print only the total) and the total."""

    load_us: float | None = None
    iterations_us: list[float] = field(default_factory=list)
    executions: int | None = None
    total_us: float | None = None

    @property
    def complete(self) -> bool:
        return self.executions is not None and self.total_us is not None


def parse_executor_runner_output(text: str) -> RunnerOutput:
    out = RunnerOutput()
    for raw in text.splitlines():
        line = _ET_PREFIX.sub("", raw.strip())
        if m := _ET_LOADED.search(line):
            out.load_us = float(m.group(1)) * 1e3
        elif m := _ET_ITER.search(line):
            out.iterations_us.append(float(m.group(3)) * 1e3)
        elif m := _ET_TOTAL.search(line):
            out.executions, out.total_us = int(m.group(1)), float(m.group(2)) * 1e3
    return out
