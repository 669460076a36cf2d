"""`frlite bench` on phones, proven against a SCRIPTED STAND-IN adb (tests/fake_adb/adb): no
machine here has a phone. The stand-in replays the documented protocol and output forms; these
tests check the harness drives it correctly and handles every failure it can produce."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

FAKE_DIR = REPO / "tests" / "fake_adb"
ARM64_ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x02\x00" + b"\xb7\x00" + b"\x00" * 44  # e_machine = AArch64
X86_64_ELF = ARM64_ELF[:18] + b"\x3e\x00" + ARM64_ELF[20:]


def _device(serial: str, **kw) -> dict:  # type: ignore[no-untyped-def]
    return {"serial": serial, "state": "device", "model": "Pixel 8", "sdk": 34, **kw}


@pytest.fixture
def phone(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Returns run(devices, *args) -> CompletedProcess, with the stand-in adb first on PATH."""
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(ARM64_ELF)

    def run(devices: list[dict], *args: str, binary_path: Path | None = binary, timeout: str = "60") -> subprocess.CompletedProcess[str]:
        scen = tmp_path / "scenario.json"
        scen.write_text(json.dumps({"devices": devices, "python": sys.executable}))
        env = dict(os.environ, PATH=f"{FAKE_DIR}{os.pathsep}{os.environ['PATH']}", FRLITE_ADB_TIMEOUT=timeout,
                   FAKE_ADB_SCENARIO=str(scen), FAKE_ADB_STATE=str(tmp_path / "state"))
        extra = ["--benchmark-binary", str(binary_path)] if binary_path else []
        exe = Path(sys.executable).with_name("frlite")
        return subprocess.run([str(exe), "bench", *args, *extra, "--out", str(tmp_path / "res")],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=600)

    run.tmp = tmp_path  # type: ignore[attr-defined]
    return run


@pytest.fixture(scope="module")
def small_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
    from frlite.converter.core.shape_spec import parse_input_shape

    out = tmp_path_factory.mktemp("dev") / "out"
    convert(ConvertRequest("tests.models.small_fr:decoder", None, [parse_input_shape("input:1x8x10x12")], out,
                           modes=["dense", "idct"], targets=["tflite-cpu"], precisions=["fp32", "fp16"]))
    return out


def _calls(tmp: Path) -> list[list[str]]:
    return [json.loads(ln) for ln in (tmp / "state" / "calls.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("delegate", ["cpu", "xnnpack", "gpu", "nnapi"])
def test_happy_path_per_delegate(phone, small_tflite: Path, delegate: str) -> None:  # type: ignore[no-untyped-def]
    r = phone([_device("PHONE1")], str(small_tflite / "tflite" / "dense_fp16.tflite"), "--delegate", delegate, "--threads", "2")
    assert r.returncode == 0, r.stderr
    (res,) = json.loads((phone.tmp / "res" / "bench.json").read_text())["results"]
    assert res["backend"] == "device" and res["device"]["model"] == "Pixel 8" and res["device"]["abi"] == "arm64-v8a"
    assert res["latency"]["count"] == 50 and res["latency"]["median_us"] > 0 and res["peak_memory_mb"] == 55.5
    if delegate == "gpu":
        assert "--gpu_precision_loss_allowed=true" in res["flags"]  # fp16 file: stated, not defaulted
        assert (res["delegated_nodes"], res["total_nodes"]) == (161, 161)
    if delegate == "nnapi":
        assert "--nnapi_allow_fp16=true" in res["flags"] and res["delegated_nodes"] == 143
    calls = _calls(phone.tmp)
    assert ["-s", "PHONE1", "shell", "getprop", "ro.product.cpu.abi"] in calls
    assert ["-s", "PHONE1", "shell", "mkdir", "-p", "/data/local/tmp/frlite"] in calls
    assert calls[-1] == ["-s", "PHONE1", "shell", "rm", "-rf", "/data/local/tmp/frlite"]  # cleaned up
    assert not any((phone.tmp / "state" / "PHONE1" / "data/local/tmp/frlite").glob("*"))
    assert (phone.tmp / "res" / "bench.md").exists() and (phone.tmp / "res" / "bench_latency.png").exists()


def test_gpu_fp32_file_disallows_precision_loss(phone, small_tflite: Path) -> None:  # type: ignore[no-untyped-def]
    r = phone([_device("P", newer=True, scientific=True)], str(small_tflite / "tflite" / "dense_fp32.tflite"), "--delegate", "gpu")
    assert r.returncode == 0, r.stderr
    (res,) = json.loads((phone.tmp / "res" / "bench.json").read_text())["results"]
    assert "--gpu_precision_loss_allowed=false" in res["flags"]
    assert res["latency"]["median_us"] == pytest.approx(2250, rel=0.01)  # parsed from INFO: + 2.25e+03 form


def test_apk_path_reads_logcat(phone, small_tflite: Path) -> None:  # type: ignore[no-untyped-def]
    r = phone([_device("P")], str(small_tflite / "tflite" / "idct_fp32.tflite"), "--apk", binary_path=None)
    assert r.returncode == 0, r.stderr
    (res,) = json.loads((phone.tmp / "res" / "bench.json").read_text())["results"]
    assert res["latency"]["count"] == 50
    assert any(c[2:5] == ["shell", "am", "start"] for c in _calls(phone.tmp))


@pytest.mark.slow
def test_two_devices_in_parallel_and_folder_target(phone, small_tflite: Path) -> None:  # type: ignore[no-untyped-def]
    r = phone([_device("A"), _device("B", model="Galaxy S24", sdk=35)], str(small_tflite),
              "--device", "A", "--device", "B", "--delegate", "xnnpack", "nnapi")
    assert r.returncode == 0, r.stderr
    results = json.loads((phone.tmp / "res" / "bench.json").read_text())["results"]
    assert len(results) == 2 * 4 * 2  # devices x files x delegates
    assert {x["device"]["serial"] for x in results} == {"A", "B"}
    md = (phone.tmp / "res" / "bench.md").read_text()
    assert "NNAPI is deprecated from Android 15" in md  # device B has API 35


@pytest.mark.slow
def test_on_device_parity_feeds_the_checker(phone, small_tflite: Path) -> None:  # type: ignore[no-untyped-def]
    """No parity report in TARGET: the phone's runs make one, in bench's --out."""
    r = phone([_device("P")], str(small_tflite), "--delegate", "gpu", "--parity", "--model", "tests.models.small_fr:decoder")
    assert r.returncode == 0, r.stdout + r.stderr
    res = phone.tmp / "res"
    assert not (res / "device_parity.json").exists()
    report = json.loads((res / "parity.json").read_text())
    runs = report["results"]
    assert len(runs) == 4 and all(p["passed"] for p in runs) and report["passed"] is True
    assert {p["runtime"] for p in runs} == {"tflite@P/gpu"}
    # the fp16 files were allowed fp16 on the GPU: judged as fp16 arithmetic, the fp32 ones as fp32
    assert {(p["precision"], p["variant"]) for p in runs} == {("fp32", "default"), ("fp16", "fp16-arith")}
    assert {p["path"] for p in runs} == {row["file"] for row in report["decision"]["rows"]}
    assert all(row["device"][0]["runtime"] == "tflite@P/gpu" for row in report["decision"]["rows"])
    assert any(any(a.startswith("--input_layer_value_files=") for a in c) for c in _calls(phone.tmp))
    page = (res / "parity.html").read_text()
    assert "<th>on device</th>" in page and page.count("alt='runtime mask over the input'") == 4
    assert "| tflite/dense_fp16.tflite | tflite@P/gpu (fp16-arith) | pass |" in (res / "parity.md").read_text()
    assert (res / ".frlite-output.json").exists()


@pytest.mark.slow
def test_phone_runs_join_the_folders_parity_report(phone, small_tflite: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """TARGET holds a parity report: bench --out gets it with the phone's runs added, the host
    runs' pictures kept, the latencies in the decision table; TARGET itself is not written."""
    import shutil

    folder = tmp_path / "conv"
    shutil.copytree(small_tflite, folder)
    exe = Path(sys.executable).with_name("frlite")
    done = subprocess.run([str(exe), "parity", str(folder), "--model", "tests.models.small_fr:decoder"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    before = {p.name: p.read_bytes() for p in (folder / "parity").iterdir()}
    host = json.loads(before["parity.json"])["results"]
    r = phone([_device("P")], str(folder), "--delegate", "xnnpack", "gpu", "--parity", "--model", "tests.models.small_fr:decoder")
    assert r.returncode == 0, r.stdout + r.stderr
    assert {p.name: p.read_bytes() for p in (folder / "parity").iterdir()} == before
    res = phone.tmp / "res"
    report = json.loads((res / "parity.json").read_text())
    labels = [x["label"] for x in report["results"]]
    assert labels[:len(host)] == [x["label"] for x in host]
    assert {x["runtime"] for x in report["results"][len(host):]} == {"tflite@P/xnnpack", "tflite@P/gpu"}
    assert len(labels) == len(host) + 4 * 2
    rows = report["decision"]["rows"]
    tfl = next(row for row in rows if row["file"] == "tflite/dense_fp32.tflite")
    assert tfl["fp32"]["measured_by"] == "parity" and tfl["task"]["pixel_agreement"] == 1.0
    assert {(x["where"], x["delegate"]) for x in tfl["latency"]} == {("P", "xnnpack"), ("P", "gpu")}
    assert sorted(d["runtime"] for d in tfl["device"]) == ["tflite@P/gpu", "tflite@P/xnnpack"]
    page = (res / "parity.html").read_text()
    assert page.count("<section class='run'") == len(labels)
    host_pictures = before["parity.html"].decode().count("alt='runtime mask over the input'")
    assert host_pictures == len(host) and page.count("alt='runtime mask over the input'") == len(labels)
    assert page.count("<h2 id='bench'>Latency (frlite bench)</h2>") == 1
    md = (res / "parity.md").read_text()
    row = re.search(r"\| tflite/dense_fp32\.tflite \| dense \|.*", md).group(0)  # the decision table's row
    assert re.search(r"\| P/xnnpack pass \S+, 4t \d+\.\d ms; P/gpu pass \S+, 4t \d+\.\d ms \|$", row), row
    # a second bench of the same phone and delegate replaces its runs, it does not add to them
    shutil.rmtree(res)
    r = phone([_device("P")], str(folder), "--delegate", "gpu", "--parity", "--model", "tests.models.small_fr:decoder")
    assert r.returncode == 0, r.stdout + r.stderr
    again = json.loads((res / "parity.json").read_text())["results"]
    assert len(again) == len(host) + 4


def test_a_tampered_parity_report_stops_bench_before_it_runs(phone, small_tflite: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    folder = tmp_path / "conv"
    shutil.copytree(small_tflite, folder)
    (folder / "parity").mkdir()
    (folder / "parity" / "parity.json").write_text(json.dumps({"schema_version": 1, "results": "many"}))
    r = phone([_device("P")], str(folder), "--delegate", "gpu")
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("frlite bench: error:")]
    assert r.returncode == 2 and len(err) == 1 and "parity.json" in err[0], r.stderr
    assert not (phone.tmp / "state" / "calls.jsonl").exists()  # no phone was touched
    assert not (phone.tmp / "res").exists()


@pytest.mark.parametrize("devices,args,needle", [
    ([], [], "no Android device found"),
    ([_device("P", state="unauthorized")], [], "unauthorized: accept the USB debugging prompt"),
    ([_device("A"), _device("B")], [], "several devices are connected (A, B); choose with --device"),
    ([_device("P", disk_full=True)], [], "no space left"),
    ([_device("P", abi="arm64-v8a")], ["--x86-binary"], "built for x86_64"),
])
def test_errors_are_one_line(phone, small_tflite: Path, devices, args, needle: str) -> None:  # type: ignore[no-untyped-def]
    binary = None
    if args == ["--x86-binary"]:
        binary = phone.tmp / "bm_x86"
        binary.write_bytes(X86_64_ELF)
        args = []
    kw = {"binary_path": binary} if binary else {}
    r = phone(devices, str(small_tflite / "tflite" / "dense_fp32.tflite"), *args, **kw)
    assert r.returncode != 0
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("frlite bench: error:")]
    assert len(err) == 1 and needle in err[0] and "Traceback" not in r.stderr, r.stderr


def test_crashing_binary_is_reported(phone, small_tflite: Path) -> None:  # type: ignore[no-untyped-def]
    r = phone([_device("P", crash=True)], str(small_tflite / "tflite" / "dense_fp32.tflite"))
    assert r.returncode == 1
    (res,) = json.loads((phone.tmp / "res" / "bench.json").read_text())["results"]
    assert "exit code 139" in res["error"] and "Segmentation fault" in res["error"]
    assert _calls(phone.tmp)[-1][-3:] == ["rm", "-rf", "/data/local/tmp/frlite"]


def test_missing_binary_says_where_to_get_it(phone, small_tflite: Path) -> None:  # type: ignore[no-untyped-def]
    r = phone([_device("P")], str(small_tflite / "tflite" / "dense_fp32.tflite"), binary_path=phone.tmp / "nope")
    assert r.returncode == 2 and "download benchmark_model for android_arm64" in r.stderr


def test_host_backend(small_tflite: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("frlite")
    r = subprocess.run([str(exe), "bench", str(small_tflite), "--host", "--threads", "1", "--runs", "3",
                        "--min-seconds", "0", "--out", str(tmp_path / "b")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "b" / "bench.json").read_text())["results"]
    assert len(results) == 4 * 2 and all(x["backend"] == "host" for x in results)
    lat = results[0]["latency"]
    assert lat["count"] >= 3 and lat["min_us"] <= lat["median_us"] <= lat["p90_us"]


@pytest.mark.slow
def test_chart_joins_the_parity_html_in_out_only(small_tflite: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "conv"
    shutil.copytree(small_tflite, folder)
    exe = Path(sys.executable).with_name("frlite")
    assert subprocess.run([str(exe), "parity", str(folder), "--format", "html", "--model", "tests.models.small_fr:decoder"],
                          capture_output=True, cwd=REPO).returncode == 0
    before = (folder / "parity" / "parity.html").read_bytes()
    r = subprocess.run([str(exe), "bench", str(folder), "--host", "--runs", "2", "--min-seconds", "0", "--delegate", "xnnpack",
                        "--out", str(tmp_path / "b")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert (folder / "parity" / "parity.html").read_bytes() == before  # the input folder is never written
    page = (tmp_path / "b" / "parity.html").read_text()
    assert page.count("<h2 id='bench'>Latency (frlite bench)</h2>") == 1 and "alt='latency chart'" in page
    assert page.startswith(before.decode()[:200])


@pytest.mark.slow
def test_host_latency_joins_the_decision_table(small_tflite: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "conv"
    shutil.copytree(small_tflite, folder)
    exe = Path(sys.executable).with_name("frlite")
    assert subprocess.run([str(exe), "parity", str(folder), "--model", "tests.models.small_fr:decoder"],
                          capture_output=True, cwd=REPO).returncode == 0
    r = subprocess.run([str(exe), "bench", str(folder), "--host", "--runs", "2", "--min-seconds", "0", "--threads", "1",
                        "--delegate", "xnnpack", "--out", str(tmp_path / "b")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    bench = {x["artifact"]: x for x in json.loads((tmp_path / "b" / "bench.json").read_text())["results"]}
    report = json.loads((tmp_path / "b" / "parity.json").read_text())
    assert report["results"] == json.loads((folder / "parity" / "parity.json").read_text())["results"]
    assert report["decision"]["benched"] is True
    for row in report["decision"]["rows"]:
        (lat,) = row["latency"]
        assert (lat["where"], lat["delegate"], lat["threads"]) == ("host", "xnnpack", 1)
        assert lat["median_ms"] == pytest.approx(bench[row["file"]]["latency"]["median_us"] / 1e3)
    md = (tmp_path / "b" / "parity.md").read_text()
    assert "not benched" not in md and re.search(r"\| xnnpack 1t \d+\.\d ms \|", md)


def test_a_device_that_stops_answering_times_out(phone, small_tflite: Path) -> None:  # type: ignore[no-untyped-def]
    r = phone([_device("P", hang=True)], str(small_tflite / "tflite" / "dense_fp32.tflite"), timeout="2")
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("frlite bench: error:")]
    assert r.returncode != 0 and len(err) == 1 and "timed out after 2 s on P" in err[0], r.stderr
