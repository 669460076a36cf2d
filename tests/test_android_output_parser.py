"""Every documented benchmark_model output form parses to the same numbers."""
from __future__ import annotations

import pytest

from frlite.android_harness.output_parser import parse_benchmark_output

CLASSIC = """STARTING!
Log parameter values verbosely: [0]
Graph: [/data/local/tmp/frlite/model.tflite]
Loaded model /data/local/tmp/frlite/model.tflite
Replacing 161 out of 161 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 partitions for the whole graph.
The input model file size (MB): 124.138
Initialized session in 812.5ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=3 first=412345 curr=398765 min=398765 max=412345 avg=405000 std=5560
Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=399001 curr=401234 min=395000 max=410000 avg=400123 std=2345
Inference timings in us: Init: 812500, First inference: 412345, Warmup (avg): 405000, Inference (avg): 400123
Memory footprint delta from the start of the tool (MB): init=201.25 overall=312.5
Overall peak memory footprint (MB) via periodic monitoring: 330.1
"""

NEWER = "\n".join("INFO: " + ln if ln else ln for ln in """Replacing 148 out of 161 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 3 partitions for the whole graph.
count=3 first=1.24e+06 curr=1.2e+06 min=1.2e+06 max=1.24e+06 avg=1.22e+06 std=16329 p5=1.2e+06 median=1.22e+06 p95=1.24e+06
count=50 first=1.21e+06 curr=1.19e+06 min=1.18e+06 max=1.25e+06 avg=1.2e+06 std=12000 p5=1.18e+06 median=1.2e+06 p95=1.24e+06
Inference timings in us: Init: 2.5e+05, First inference: 1.24e+06, Warmup (avg): 1.22e+06, Inference (avg): 1.2e+06
Memory footprint delta from the start of the tool (MB): init=150 overall=420.75
Overall peak memory footprint (MB) via periodic monitoring: 433""".splitlines())

LOGCAT = "\n".join(f"11-24 10:00:0{i}.123  4321  4321 I tflite  : {ln}" for i, ln in enumerate(CLASSIC.splitlines()) if ln)


@pytest.mark.parametrize("text", [CLASSIC, LOGCAT], ids=["classic", "logcat"])
def test_classic_and_logcat_forms(text: str) -> None:
    out = parse_benchmark_output(text)
    assert out.complete
    assert (out.init_us, out.first_inference_us, out.warmup_avg_us, out.inference_avg_us) == (812500, 412345, 405000, 400123)
    assert out.inference.count == 50 and out.inference.std == 2345 and out.inference.median is None
    assert out.warmup.count == 3 and out.warmup.avg == 405000
    assert (out.memory_init_mb, out.memory_overall_mb, out.peak_memory_mb) == (201.25, 312.5, 330.1)
    assert (out.delegated_nodes, out.total_nodes, out.delegate_name) == (161, 161, "TfLiteGpuDelegateV2")


def test_newer_info_prefix_and_scientific_notation() -> None:
    out = parse_benchmark_output(NEWER)
    assert out.inference_avg_us == 1.2e6 and out.init_us == 2.5e5
    assert out.inference.median == 1.2e6 and out.inference.p5 == 1.18e6 and out.inference.p95 == 1.24e6
    assert out.peak_memory_mb == 433 and out.memory_overall_mb == 420.75
    assert (out.delegated_nodes, out.total_nodes) == (148, 161)


def test_incomplete_output_is_flagged() -> None:
    out = parse_benchmark_output("STARTING!\nLoaded model x\nERROR: Failed to allocate tensors\n")
    assert not out.complete and out.inference is None
