"""Every bench/ script runs on a fresh clone, as its docstring says, in a tiny configuration.

A fresh clone has no out/ folder and no demo output: each script must create what it writes,
convert what it reads, and stop on a failing step with the child's own message (issue 17:
bench_factorized printed only "conversion at 320x480 failed (1)"). The scripts run as a user
runs them (`python bench/x.py`, from another folder); the figures themselves are not checked,
only that each step ran and wrote its results. Whatever converts a model is marked slow.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO

BENCH = REPO / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("bench_*.py") if p.name != "bench_common.py")
TINY = "tests.models.small_fr:unet_small"  # the built-in UNet at width 8, FR-sparsified


def run_script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python bench/<name> ARGS` from `cwd` (not the repo: the scripts must not depend on it)."""
    r = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True, cwd=cwd, timeout=1200)
    assert "INFO: Created TensorFlow Lite" not in r.stderr, r.stderr  # the scripts filter LiteRT's noise too
    return r


def test_every_script_is_covered() -> None:
    assert SCRIPTS == ["bench_convert.py", "bench_executorch.py", "bench_factorized.py", "bench_fp16_arith.py",
                       "bench_fp16_safety.py", "bench_generality.py", "bench_integer.py", "bench_parity.py"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_starts_from_another_folder(name: str, tmp_path: Path) -> None:
    r = run_script(name, "--help", cwd=tmp_path)
    assert r.returncode == 0 and "usage:" in r.stdout, r.stderr


def test_a_failing_step_shows_the_childs_message(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from bench_common import FRLITE, run_step
    finally:
        sys.path.remove(str(BENCH))
    with pytest.raises(SystemExit) as exc:
        run_step([FRLITE, "convert", TINY, "--input", "input:1x3x16x16", "--out", str(tmp_path / "missing" / "out")],
                 "conversion at 16x16")
    msg = str(exc.value)
    assert msg.startswith("conversion at 16x16 failed (exit 2):") and "does not exist; create it first" in msg, msg


def test_fp16_safety_at_a_small_size(tmp_path: Path) -> None:
    r = run_script("bench_fp16_safety.py", "--size", "32x48", "--images", "1", "--forms", "factorized", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| factorized |")]
    assert [row.split(" | ")[1] for row in rows] == ["before", "after"], r.stdout


@pytest.mark.slow
def test_convert_bench_with_a_tiny_model(tmp_path: Path) -> None:
    out = tmp_path / "fresh" / "out" / "bench"  # nothing of it exists yet
    r = run_script("bench_convert.py", "--model", TINY, "--full-size", "32x48", "--size", "32x48", "--runs", "1",
                   "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((out / "bench_convert.json").read_text())
    assert set(data["conversion_32x48"]) == {"dense", "idct"} and len(data["latency_32x48"]) == 12  # 6 files x 1, 2 threads
    assert set(data["conversion_all_files_32x48"]) == {"seconds", "peak_bytes"}


@pytest.mark.slow
def test_factorized_bench_with_a_tiny_model(tmp_path: Path) -> None:
    out = tmp_path / "fresh" / "out" / "bench"
    r = run_script("bench_factorized.py", "--model", TINY, "--sizes", "32x48", "--threads", "1", "--runs", "1",
                   "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(json.loads((out / "bench_factorized.json").read_text())["32x48"]) == 6
    assert "spends its time" in r.stdout


@pytest.mark.slow
def test_executorch_bench_with_a_tiny_model(tmp_path: Path) -> None:
    out = tmp_path / "fresh" / "out" / "bench"
    r = run_script("bench_executorch.py", "--model", TINY, "--size", "32x48", "--threads", "1", "--runs", "1",
                   "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads((out / "bench_executorch.json").read_text())["32x48"]
    assert sorted({(x["mode"], x["runtime"]) for x in rows}) == [(m, rt) for m in ("dense", "factorized")
                                                                for rt in ("executorch", "onnxruntime", "tflite")]
    assert "ops on XNNPACK" in r.stdout


@pytest.mark.slow
def test_parity_and_fp16_arith_benches_convert_a_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "fresh" / "out" / "demo" / "unet"
    common = ("--folder", str(folder), "--model", TINY, "--size", "32x48", "--modes", "dense", "--images", "1")
    r = run_script("bench_parity.py", *common, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no convert folder at" in r.stdout and "exit code 0 (all pass)" in r.stdout, r.stdout
    assert (folder.parent / "parity_bench" / "parity.json").exists()
    r = run_script("bench_fp16_arith.py", *common, "--threads", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("fp16 arithmetic: ") == 2, r.stdout  # dense_fp32 and dense_fp16, each once


@pytest.mark.slow
def test_generality_bench_at_a_small_size(tmp_path: Path) -> None:
    if not (FIXTURES / "unet_fr.tar.xz").exists():
        pytest.fail(f"fixture {FIXTURES} missing: the repo expects ../shared beside the checkout")
    out = tmp_path / "fresh" / "out"
    r = run_script("bench_generality.py", "--fixture", str(FIXTURES), "--size", "32x48", "--runs", "1", "--out", str(out),
                   cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(json.loads((out / "bench_generality.json").read_text())["speedup"]) == {
        "built-in unet", "authors' UNet (file.py:factory)"}


@pytest.mark.slow
def test_integer_bench_with_a_tiny_model(tmp_path: Path) -> None:
    out = tmp_path / "results"
    r = run_script("bench_integer.py", "--model", TINY, "--size", "32x48", "--latency-size", "32x48", "--threads", "1",
                   "--runs", "1", "--dense-int16x8", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((out / "bench_integer.json").read_text())
    assert {row["file"] for row in data["accuracy"]} == {f"tflite/{m}_{p}.tflite" for m in ("dense", "factorized")
                                                         for p in ("int8", "int16x8")}
    assert "calibrated on noise: exit" in r.stdout and r.stdout.count("on uniform noise: ") == 4
    assert {"tflite/factorized_int8.tflite", "tflite/factorized_fp32.tflite", "tflite/dense_fp32.tflite"} <= set(
        data["latency"]["median_seconds"])
