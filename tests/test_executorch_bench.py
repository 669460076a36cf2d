"""`frlite bench` on .pte files: on the host with executorch.runtime, on a phone with the user's
executor_runner, proven against the SCRIPTED STAND-IN adb (tests/fake_adb/adb), whose
executor_runner prints the ET_LOG lines of ExecuTorch's examples/portable/executor_runner."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from frlite.android_harness.output_parser import parse_executor_runner_output
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
from tests.test_android_device import ARM64_ELF, X86_64_ELF, _calls, _device, phone  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[1]


def _folder(tmp_path_factory: pytest.TempPathFactory, targets: list[str]) -> Path:
    out = tmp_path_factory.mktemp("etbench") / "out"
    convert(ConvertRequest("tests.models.small_fr:decoder", None, [parse_input_shape("input:1x8x10x12")], out,
                           modes=["dense"], targets=targets, precisions=["fp32"]))
    return out


@pytest.fixture(scope="module")
def pte_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .pte alone: no onnx2tf run, so the fast tests stay fast (19 s -> 7 s per worker)."""
    return _folder(tmp_path_factory, ["executorch"])


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .pte beside a .tflite of the same model, for the end-to-end flows (slow)."""
    return _folder(tmp_path_factory, ["executorch", "tflite-cpu"])


@pytest.fixture
def runner(tmp_path: Path) -> Path:
    path = tmp_path / "executor_runner"
    path.write_bytes(ARM64_ELF)
    return path


def test_parser_reads_executor_runner_log_lines() -> None:
    text = ("I 00:00:00.000100 executorch:executor_runner.cpp:233] Resetting threadpool with num threads = 2\n"
            "I 00:00:00.012000 executorch:executor_runner.cpp:356] Model loaded in 12.500000 ms.\n"
            "I 00:00:00.100000 executorch:executor_runner.cpp:590] Iteration 1 of 2: 30.000000 ms\n"
            "11-24 10:00:00.000  4321  4321 I ExecuTorch: Iteration 2 of 2: 2.5e+01 ms\n"
            "I 00:00:00.200000 executorch:executor_runner.cpp:598] Model executed successfully 2 time(s) in 55.000000 ms.\n")
    out = parse_executor_runner_output(text)
    assert out.load_us == 12500.0 and out.iterations_us == [30000.0, 25000.0]
    assert (out.executions, out.total_us) == (2, 55000.0) and out.complete
    assert not parse_executor_runner_output("E 00:00:00.0 executorch:executor_runner.cpp:306] assert failed").complete


@pytest.mark.slow  # a bench flow end to end (the fast suite is unit-level)
def test_host_bench_runs_pte_with_executorch_runtime(mixed_folder: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("frlite")
    r = subprocess.run([str(exe), "bench", str(mixed_folder), "--host", "--threads", "1", "--runs", "3",
                        "--min-seconds", "0", "--out", str(tmp_path / "b")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "b" / "bench.json").read_text())["results"]
    pte = [x for x in results if x["artifact"].endswith(".pte")]
    # the .tflite runs with each host delegate, the .pte once: its delegation is in the program
    assert len(results) == 2 + 1 and len(pte) == 1
    assert pte[0]["delegate"] == "xnnpack" and pte[0]["backend"] == "host"
    lat = pte[0]["latency"]
    assert lat["count"] >= 3 and 0 < lat["min_us"] <= lat["median_us"]
    assert "executorch/dense_fp32.pte" in (tmp_path / "b" / "bench.md").read_text()


def test_device_bench_runs_the_users_executor_runner(phone, pte_folder: Path, runner: Path) -> None:  # type: ignore[no-untyped-def]
    r = phone([_device("PHONE1")], str(pte_folder), "--threads", "2", "--runs", "7", "--warmup", "2",
              "--executor-runner", str(runner))
    assert r.returncode == 0, r.stderr
    results = json.loads((phone.tmp / "res" / "bench.json").read_text())["results"]
    (res,) = [x for x in results if x["artifact"] == "executorch/dense_fp32.pte"]
    assert res["backend"] == "device" and res["delegate"] == "xnnpack" and res["error"] is None
    assert res["flags"] == ["--model_path=/data/local/tmp/frlite/dense_fp32.pte", "--num_executions=10", "--cpu_threads=2"]
    # the stand-in's times: 20 ms per execution at 2 threads, the first 1.5x, loads in 8.25 ms
    assert res["init_us"] == 8250.0 and res["first_inference_us"] == pytest.approx(30000.0)
    assert res["latency"]["count"] == 7 and res["latency"]["median_us"] == pytest.approx(20000.0, rel=0.03)
    calls = _calls(phone.tmp)
    assert ["-s", "PHONE1", "shell", "chmod", "+x", "/data/local/tmp/frlite/executor_runner"] in calls
    assert calls[-1] == ["-s", "PHONE1", "shell", "rm", "-rf", "/data/local/tmp/frlite"]


def test_an_older_runner_gives_the_mean_and_says_so(phone, pte_folder: Path, runner: Path) -> None:  # type: ignore[no-untyped-def]
    r = phone([_device("PHONE1", old_runner=True)], str(pte_folder), "--runs", "4", "--warmup", "1",
              "--executor-runner", str(runner))
    assert r.returncode == 0, r.stderr
    (res,) = [x for x in json.loads((phone.tmp / "res" / "bench.json").read_text())["results"] if x["artifact"].endswith(".pte")]
    assert res["latency"]["count"] == 6 and res["first_inference_us"] is None
    assert any("no per-iteration times" in w for w in res["warnings"])


@pytest.mark.parametrize(("make", "needle"), [
    (None, "give --executor-runner PATH"),
    (X86_64_ELF, "is built for x86_64, device PHONE1 is arm64-v8a; use the android_arm64 executor_runner"),
])
def test_runner_problems_are_one_line(phone, pte_folder: Path, tmp_path: Path, make, needle: str) -> None:  # type: ignore[no-untyped-def]
    args = []
    if make is not None:
        bad = tmp_path / "executor_runner"
        bad.write_bytes(make)
        args = ["--executor-runner", str(bad)]
    r = phone([_device("PHONE1")], str(pte_folder), *args)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # a bench --parity flow end to end
def test_phone_parity_covers_tflite_and_pte_of_one_folder(phone, mixed_folder: Path, runner: Path) -> None:  # type: ignore[no-untyped-def]
    r = phone([_device("P")], str(mixed_folder), "--delegate", "xnnpack", "--executor-runner", str(runner),
              "--parity", "--model", "tests.models.small_fr:decoder")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((phone.tmp / "res" / "parity.json").read_text())
    assert {(x["path"], x["runtime"]) for x in report["results"]} == {
        ("tflite/dense_fp32.tflite", "tflite@P/xnnpack"), ("executorch/dense_fp32.pte", "executorch@P/xnnpack")}
    assert all(x["passed"] for x in report["results"])
    cells = {row["file"]: [d["runtime"] for d in row["device"]] for row in report["decision"]["rows"]}
    assert cells["executorch/dense_fp32.pte"] == ["executorch@P/xnnpack"] and cells["tflite/dense_fp32.tflite"] == ["tflite@P/xnnpack"]
    md = (phone.tmp / "res" / "parity.md").read_text()
    assert re.search(r"\| executorch/dense_fp32\.pte \| dense \|.*\| P/xnnpack pass \S+, 4t \d+\.\d ms \|", md), md
