"""What a user sees on the terminal: progress lines for long commands, no third-party noise.

LiteRT writes `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` to fd 2 from C++ in every
process that builds an interpreter (parity runs each file in a child process); frlite filters
fd 2 (converter/core/stderr_filter.py) unless --debug. Progress goes to stderr, --quiet drops it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from frlite.converter.core.progress import Progress, format_duration, plural
from frlite.converter.core.stderr_filter import filtered_stderr, is_noise
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.passes.convert_pipeline import ConvertRequest, convert

LITERT_INFO = "INFO: Created TensorFlow Lite"
MODEL = ("--model", "tests.models.small_fr:decoder")
# `[   4.3s] parity 1/1 tflite/dense_fp32.tflite on tflite (xnnpack): pass, 4.0 s`
PARITY_LINE = re.compile(r"^\[\s*\d+\.\d+s\] parity 1/1 tflite/dense_fp32\.tflite on tflite \(xnnpack\): pass, \d+\.\d+ s$", re.M)

# a child that builds a LiteRT interpreter (its C++ logs the INFO line on fd 2), then writes a real error
CHILD = """
import os, sys
from ai_edge_litert.interpreter import Interpreter
Interpreter(model_path=sys.argv[1]).allocate_tensors()
os.write(2, b"ERROR: a real LiteRT error stays visible\\n")
print("Traceback (most recent call last): stays too", file=sys.stderr)
"""


@pytest.fixture(scope="module")
def one_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small decoder as one fp32 .tflite: parity runs one child process."""
    out = tmp_path_factory.mktemp("term") / "out"
    convert(ConvertRequest("tests.models.small_fr:decoder", None, [parse_input_shape("input:1x8x10x12")], out,
                           modes=["dense"], targets=["tflite-cpu"], precisions=["fp32"]))
    return out


@pytest.mark.slow
def test_parity_shows_progress_and_no_litert_noise(one_file: Path, tmp_path: Path) -> None:
    r = run_cli("parity", str(one_file), *MODEL, "--runtimes", "torch,tflite", "--out", str(tmp_path / "a"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert LITERT_INFO not in r.stderr + r.stdout
    assert PARITY_LINE.search(r.stderr), r.stderr
    assert re.search(r"^\[\s*\d+\.\d+s\] PyTorch reference 2/2 random\(seed=0\)\[1\]: \d+\.\d+ s$", r.stderr, re.M), r.stderr
    assert re.search(r"^\[\s*\d+\.\d+s\] 1 file checked against the manifest; PyTorch reference on 2 inputs$", r.stderr, re.M), r.stderr
    assert re.search(r"^\[\s*\d+\.\d+s\] 1 run to compare \(1 file x", r.stderr, re.M), r.stderr
    assert "parity" not in r.stdout.split("report:")[0].replace("parity.", "")  # progress stays off stdout

    q = run_cli("parity", str(one_file), *MODEL, "--runtimes", "torch,tflite", "--out", str(tmp_path / "b"), "--quiet")
    assert q.returncode == 0, q.stdout + q.stderr
    assert q.stderr == "", q.stderr
    assert "pass  tflite/dense_fp32.tflite on tflite (xnnpack)" in q.stdout  # the results themselves stay


@pytest.mark.slow
def test_bench_host_shows_progress_without_noise(one_file: Path, tmp_path: Path) -> None:
    r = run_cli("bench", str(one_file), "--host", "--delegate", "xnnpack", "--runs", "2", "--warmup", "0",
                "--min-seconds", "0", "--out", str(tmp_path / "bench"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert LITERT_INFO not in r.stderr + r.stdout
    assert re.search(r"^\[\s*\d+\.\d+s\] bench 1/1 tflite/dense_fp32\.tflite \(xnnpack\): \d+\.\d+ s$", r.stderr, re.M), r.stderr


def _child(model: Path) -> None:
    subprocess.run([sys.executable, "-c", CHILD, str(model)], check=True, timeout=120)  # stderr: inherited fd 2


@pytest.mark.slow
def test_filter_drops_the_litert_line_of_a_child_and_keeps_errors(one_file: Path, capfd: pytest.CaptureFixture[str]) -> None:
    model = one_file / "tflite" / "dense_fp32.tflite"
    _child(model)
    unfiltered = capfd.readouterr().err
    assert LITERT_INFO in unfiltered  # the noise is real: no environment variable of ours hides it
    with filtered_stderr():
        _child(model)
        os.write(2, b"frlite's own line, no newline at the end")
    err = capfd.readouterr().err
    assert LITERT_INFO not in err
    assert "ERROR: a real LiteRT error stays visible\n" in err and "Traceback (most recent call last): stays too" in err
    assert err.endswith("frlite's own line, no newline at the end")
    with filtered_stderr(enabled=False):  # --debug
        _child(model)
    assert LITERT_INFO in capfd.readouterr().err


@pytest.mark.parametrize(("line", "noise"), [
    (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", True),
    (b"W0000 00:00:1764600000.123456   12345 gpu_device.cc:2344] Cannot dlopen some GPU libraries.", True),
    (b"I1201 17:16:33.123456  4242 cpu_feature_guard.cc:210] This TensorFlow binary is optimized", True),
    (b"2026-12-01 17:16:33.123456: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on.", True),
    (b"E1201 17:16:33.123456  4242 op_kernel.cc:1] a real error", False),
    (b"ERROR: Didn't find op for builtin opcode", False),
    (b"frlite parity: error: --runtimes 'x' is not one of: torch, onnxruntime, tflite", False),
    (b"[    4.3s] parity 1/4 tflite/dense_fp32.tflite on tflite (xnnpack): pass, 4.0 s", False),
    (b"[cpuinfo_utils.cpp:125] CPU info and manual query on # of cpus dont match.", True),
    (b"[threadpool.cpp:66] Resetting threadpool to 2 threads.", True),
    (b"Failed to load /v/site-packages/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so: Could not load this library: x", True),
    (b"[method.cpp:790] Missing operator: [0] aten::mean.out", False),  # ExecuTorch's real errors stay visible
])
def test_noise_pattern(line: bytes, noise: bool) -> None:
    assert is_noise(line) is noise


def test_counted_steps_estimate_what_is_left() -> None:
    lines: list[str] = []
    steps = Progress(lines.append).steps(3, "parity")
    steps.finished("a", 2.0, "pass")
    steps.finished("b", 4.0)
    steps.finished("c", 1.0, "FAIL")
    assert [line.split("] ", 1)[1] for line in lines] == [
        "parity 1/3 a: pass, 2.0 s; about 4.0 s left", "parity 2/3 b: 4.0 s; about 3.0 s left", "parity 3/3 c: FAIL, 1.0 s"]
    assert [format_duration(s) for s in (5.25, 245, 3725)] == ["5.2 s", "4 min 05 s", "1 h 02 min"]
    assert (plural(1, "file"), plural(3, "run")) == ("1 file", "3 runs")


@pytest.mark.slow
def test_convert_log_names_each_file_once_with_its_targets(overflowing_out: Path) -> None:
    """One .tflite serves tflite-cpu and tflite-gpu: its quick-parity and fp16 lines appear once each."""
    log = (overflowing_out / "convert.log").read_text().splitlines()
    for name in ("dense_fp32", "dense_fp16"):
        lines = [line for line in log if f"tflite/{name}.tflite (" in line]
        assert len(lines) == 2, lines  # fp16-arithmetic line first: that pass runs before quick parity
        assert "(tflite-gpu): fp16 arithmetic: unsafe" in lines[0]
        assert "(tflite-cpu, tflite-gpu): max |error| / scale" in lines[1]
    assert any("quick parity of 2 files (4 artifacts) on 2 seeded random samples" in line for line in log), log
