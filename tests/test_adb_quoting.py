"""Nothing from a file reaches the phone's shell unquoted (issue 11, item 3).

`adb shell A B` joins its words with spaces and the device's sh parses that string again. These
tests build the exact string the device would run and parse it back, with shlex and with a real
POSIX sh (which would execute any unquoted `;`, `$(...)` or backtick: the PWNED files below are
what such an escape would create). End to end, the scripted adb stand-in (tests/fake_adb) parses
every shell string with a real sh in the device's folder."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

from frlite.android_harness.adb_client import Adb, check_serial, device_command, quote_for_device
from frlite.android_harness.device_bench import DeviceBench, DeviceJob
from frlite.android_harness.device_runtime import open_on_device
from frlite.converter.core.errors import FrliteError, UsageError
from frlite.converter.core.manifest import TensorInfo

FAKE_DIR = REPO / "tests" / "fake_adb"
ARM64_ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x02\x00" + b"\xb7\x00" + b"\x00" * 44

HOSTILE = [
    "x;touch${IFS}PWNED1;",
    "x;touch${IFS}/data/local/tmp/PWNED;",
    "$(touch PWNED2)",
    "`touch PWNED3`",
    "a'b;touch PWNED4;'",
    'a"b;touch PWNED5;"',
    "a\ntouch PWNED6",
    "a b && touch PWNED7",
    "| touch PWNED8",
    "> PWNED9",
    "*",
    "~root",
    "$HOME",
    "back\\slash",
    "!event #comment",
    "",
    "-n",
    "tab\there",
    "ünïcode",
    "'",
]


def _sh_argv(command: str, cwd: Path) -> list[str]:
    """How a POSIX sh splits `command` into words (running it, as the device would)."""
    proc = subprocess.run(["sh", "-c", 'eval "set -- $1"; printf "%s\\0" "$@"', "sh", command],
                          capture_output=True, cwd=cwd, check=True)
    return proc.stdout.decode().split("\0")[:-1]


def _pwned(root: Path) -> list[Path]:
    return [p for p in root.rglob("*PWNED*")]


@pytest.mark.parametrize("name", HOSTILE)
def test_device_string_parses_back_with_shlex(name: str) -> None:
    argv = ["/data/local/tmp/frlite/benchmark_model", f"--input_layer={name}", name, "--num_runs=1"]
    assert shlex.split(device_command(argv)) == argv


@pytest.mark.parametrize("name", HOSTILE)
def test_device_string_runs_nothing_in_a_real_sh(name: str, tmp_path: Path) -> None:
    argv = ["benchmark_model", f"--input_layer={name}", f"--input_layer_value_files={name}:/data/local/tmp/in.raw", name]
    assert _sh_argv(device_command(argv), tmp_path) == argv
    assert _pwned(tmp_path) == [] and not Path("/data/local/tmp/PWNED").exists()


def test_unquoted_join_would_have_run_the_payload(tmp_path: Path) -> None:
    """The check above can fail: the old join (no quoting) really executes the name."""
    _sh_argv(" ".join(["getprop", f"--input_layer={HOSTILE[0]}"]), tmp_path)
    assert [p.name for p in _pwned(tmp_path)] == ["PWNED1"]


def test_plain_words_stay_as_they_are() -> None:
    for word in ["getprop", "-p", "/data/local/tmp/frlite", "--use_gpu=true", "--input_layer_shape=1,3,8,8:1,4"]:
        assert quote_for_device(word) == word


def test_nul_byte_is_refused() -> None:
    with pytest.raises(FrliteError, match="NUL byte"):
        device_command(["a\0b"])


@pytest.mark.parametrize("serial", ["a;b", "$(id)", "`id`", "-s", "", "a b", "x\ny", "../x", "serial'"])
def test_hostile_serials_are_refused(serial: str) -> None:
    with pytest.raises(UsageError, match="device serial"):
        check_serial(serial)


@pytest.mark.parametrize("serial", ["R58M123ABC", "emulator-5554", "192.168.1.5:5555", "adb-R58M._adb-tls-connect._tcp"])
def test_real_serial_forms_pass(serial: str) -> None:
    assert check_serial(serial) == serial


@pytest.fixture
def fake_adb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The scripted adb first on PATH, one phone PHONE1; returns the fake's state folder."""
    scen = tmp_path / "scenario.json"
    scen.write_text(json.dumps({"devices": [{"serial": "PHONE1", "state": "device", "model": "Pixel 8", "sdk": 34}],
                                "python": sys.executable}))
    monkeypatch.setenv("PATH", f"{FAKE_DIR}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_SCENARIO", str(scen))
    monkeypatch.setenv("FAKE_ADB_STATE", str(tmp_path / "state"))
    return tmp_path / "state"


def _device_shell(state: Path) -> list[dict]:
    return [json.loads(ln) for ln in (state / "device_shell.jsonl").read_text().splitlines()]


def test_adb_shell_reaches_the_device_as_the_intended_argv(fake_adb: Path) -> None:
    Adb().shell("PHONE1", ["getprop", *HOSTILE], check=False)
    (seen,) = _device_shell(fake_adb)
    assert seen["argv"] == ["getprop", *HOSTILE] and shlex.split(seen["command"]) == seen["argv"]
    assert _pwned(fake_adb) == []


def test_hostile_serial_never_reaches_adb(fake_adb: Path) -> None:
    with pytest.raises(UsageError, match="device serial"):
        Adb().shell("PHONE1;touch PWNED", ["getprop", "ro.product.model"])
    assert not (fake_adb / "calls.jsonl").exists()


def test_cli_refuses_a_hostile_device_serial(fake_adb: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"  # never read: the serial is refused first
    exe = Path(sys.executable).with_name("frlite")
    r = subprocess.run([str(exe), "bench", str(model), "--device", "x;touch${IFS}PWNED;", "--benchmark-binary", str(model),
                        "--out", str(tmp_path / "res")], capture_output=True, text=True, cwd=REPO, env=dict(os.environ))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "device serial" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not (fake_adb / "calls.jsonl").exists() and not (tmp_path / "res").exists()


@pytest.fixture(scope="module")
def small_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
    from frlite.converter.core.shape_spec import parse_input_shape

    out = tmp_path_factory.mktemp("q") / "out"
    convert(ConvertRequest("tests.models.small_fr:decoder", None, [parse_input_shape("input:1x8x10x12")], out,
                           modes=["dense"], targets=["tflite-cpu"], precisions=["fp32"]))
    return out / "tflite" / "dense_fp32.tflite"


@pytest.mark.slow  # a real conversion end to end (7 s): the fast suite keeps under 3 min
def test_hostile_tensor_name_end_to_end(fake_adb: Path, small_tflite: Path, tmp_path: Path) -> None:
    """On-device parity with a tensor name from a (hostile) manifest: the device's benchmark_model
    receives it as one literal argument and the phone's shell runs nothing."""
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(ARM64_ELF)
    name = "x;touch${IFS}PWNED;"
    job = DeviceJob(small_tflite, "dense_fp32.tflite", "fp32", "dense",
                    [TensorInfo(name, [1, 10, 12, 8], "float32", "NHWC", "input", [0, 2, 3, 1])],
                    [TensorInfo("output", [1, 20, 24, 6], "float32", "NHWC", "output", [0, 2, 3, 1])])
    sample = {"input": np.zeros((1, 8, 10, 12), np.float32)}
    with DeviceBench(Adb(), "PHONE1", binary, apk=False) as dev:
        # the real benchmark_model would not find an input of that name either
        with pytest.raises(FrliteError, match="benchmark_model failed"):
            open_on_device(dev, job, "xnnpack").run(sample)
    run = next(s for s in _device_shell(fake_adb) if s["argv"] and s["argv"][0].endswith("/benchmark_model"))
    assert f"--input_layer={name}" in run["argv"]
    assert any(a.startswith(f"--input_layer_value_files={name}:/data/local/tmp/frlite/") for a in run["argv"])
    assert shlex.split(run["command"]) == run["argv"]
    assert _pwned(fake_adb) == []


def test_tensor_name_with_list_separator_is_refused(fake_adb: Path, small_tflite: Path, tmp_path: Path) -> None:
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(ARM64_ELF)
    job = DeviceJob(small_tflite, "dense_fp32.tflite", "fp32", "dense",
                    [TensorInfo("a,b:c", [1, 10, 12, 8], "float32", "NHWC", "input", [0, 2, 3, 1])], [])
    with DeviceBench(Adb(), "PHONE1", binary, apk=False) as dev:
        with pytest.raises(FrliteError, match="separate its --input_layer lists"):
            open_on_device(dev, job, "xnnpack").run({"input": np.zeros((1, 8, 10, 12), np.float32)})
    assert not any("--input_layer=" in " ".join(s["argv"] or []) for s in _device_shell(fake_adb))
