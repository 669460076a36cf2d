"""One benchmark result, the same schema for the host and for a phone (docs/android.md)."""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field


@dataclass
class LatencyStats:
    count: int
    min_us: float
    median_us: float
    mean_us: float
    p90_us: float | None
    std_us: float

    @staticmethod
    def from_samples(us: list[float]) -> "LatencyStats":
        ordered = sorted(us)
        p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))] if ordered else None
        return LatencyStats(len(us), ordered[0], statistics.median(ordered), statistics.fmean(ordered), p90,
                            statistics.pstdev(ordered) if len(ordered) > 1 else 0.0)


@dataclass
class BenchResult:
    backend: str                  # "host" or "device"
    device: dict[str, str]        # serial, model, abi, sdk, soc (host: cpu)
    artifact: str                 # path inside the convert folder (or the .tflite given)
    mode: str | None
    precision: str | None
    delegate: str                 # cpu, xnnpack, gpu, nnapi
    threads: int
    init_us: float | None
    first_inference_us: float | None
    warmup_avg_us: float | None
    latency: LatencyStats | None
    peak_memory_mb: float | None
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    numerics: str | None = None   # gpu / nnapi: which precision was asked for and why (fp16-arithmetic verdict)

    def to_json(self) -> dict:
        return asdict(self)
