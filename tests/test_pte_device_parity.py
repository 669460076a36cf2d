"""`frlite bench --parity` on .pte files: the phone's executor_runner fed the samples through
--inputs and read back through --output_file, proven against the SCRIPTED STAND-IN adb
(tests/fake_adb/adb), whose runner runs the pushed program with executorch.runtime on the
pushed bytes: a wrong dtype, byte count or output index in frlite fails these tests."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.core.tolerances import TOLERANCES
from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
from tests.test_android_device import ARM64_ELF, _device, phone  # noqa: F401 (fixture)

MODEL = "tests.models.small_fr:decoder"
PHONE_DIR = "data/local/tmp"

# slow: every test converts a .pte pair first (7 s) and the stand-in starts executorch.runtime per run
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pte_pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dense program in fp32 and in fp16 (input 1x8x10x12, output 1x3x40x48)."""
    out = tmp_path_factory.mktemp("ptepar") / "out"
    convert(ConvertRequest(MODEL, None, [parse_input_shape("input:1x8x10x12")], out,
                           modes=["dense"], targets=["executorch"], precisions=["fp32", "fp16"]))
    return out


def _bench(phone, folder: Path, device: dict, *extra: str):  # type: ignore[no-untyped-def]
    """bench --parity on one stand-in phone that already holds a file of its owner's."""
    runner = phone.tmp / "executor_runner"
    runner.write_bytes(ARM64_ELF)
    own = phone.tmp / "state" / device["serial"] / PHONE_DIR / "keep.bin"
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_bytes(b"the owner's")
    return phone([device], str(folder), "--executor-runner", str(runner), "--parity", "--model", MODEL, *extra)


def _phone_files(phone, serial: str) -> list[str]:  # type: ignore[no-untyped-def]
    root = phone.tmp / "state" / serial
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _runner_argv(phone) -> list[list[str]]:  # type: ignore[no-untyped-def]
    rows = [json.loads(ln) for ln in (phone.tmp / "state" / "device_shell.jsonl").read_text().splitlines()]
    return [r["argv"] for r in rows if r["argv"] and r["argv"][0].endswith("/executor_runner")]


def test_pte_parity_on_the_phone_fp32_and_fp16(phone, pte_pair: Path) -> None:  # type: ignore[no-untyped-def]
    r = _bench(phone, pte_pair, _device("P"), "--threads", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    runs = json.loads((phone.tmp / "res" / "parity.json").read_text())["results"]
    assert {(x["path"], x["runtime"], x["variant"]) for x in runs} == {
        ("executorch/dense_fp32.pte", "executorch@P/xnnpack", "default"),
        ("executorch/dense_fp16.pte", "executorch@P/xnnpack", "default")}
    assert all(x["passed"] for x in runs)
    (o32,), (o16,) = ([x["outputs"][0] for x in runs if x["precision"] == p] for p in ("fp32", "fp16"))
    # judged by each precision's tolerance (same reference, same scale): fp16 the looser one
    assert o16["atol"] / o32["atol"] == pytest.approx(TOLERANCES["fp16"] / TOLERANCES["fp32"])
    s32, s16 = o32["samples"][0], o16["samples"][0]
    assert s32["max_abs_error"] <= 1e-5 * s32["ref_scale"]  # the phone ran the real program on the real sample
    assert 0 < s16["max_abs_error"] <= TOLERANCES["fp16"] * s16["ref_scale"]  # fp16 rounding shows
    parity_calls = [a for a in _runner_argv(phone) if any(f.startswith("--inputs=") for f in a)]
    assert parity_calls[0][1:] == ["--model_path=/data/local/tmp/frlite/dense_fp32.pte",
                                   "--inputs=/data/local/tmp/frlite/dense_fp32_s0_in0.bin",
                                   "--output_file=/data/local/tmp/frlite/dense_fp32_s0_out",
                                   "--num_executions=1", "--cpu_threads=2"]
    assert len(parity_calls) == 2
    rows = json.loads((phone.tmp / "res" / "parity.json").read_text())["decision"]["rows"]
    assert {row["device"][0]["runtime"] for row in rows} == {"executorch@P/xnnpack"}
    assert "| executorch/dense_fp16.pte | executorch@P/xnnpack (default) | pass |" in (phone.tmp / "res" / "parity.md").read_text()
    assert _phone_files(phone, "P") == [f"{PHONE_DIR}/keep.bin"]  # everything frlite put there is gone, nothing else


def test_an_output_of_the_wrong_size_is_named(phone, pte_pair: Path) -> None:  # type: ignore[no-untyped-def]
    r = _bench(phone, pte_pair, _device("P", corrupt_output=True))
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("frlite bench: error:")]
    assert r.returncode == 1 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    assert re.search(r"/data/local/tmp/frlite/dense_fp(32|16)_s0_out-0\.bin holds [\d,]+ B, expected exactly output 0 "
                     r"\(output: 1x3x40x48 float(32|16), [\d,]+ B\)", err[0]), err[0]
    assert _phone_files(phone, "P") == [f"{PHONE_DIR}/keep.bin"]


@pytest.mark.parametrize(("mode", "code", "said"), [
    ("reject", 2, "refused a flag (ERROR: unknown command line flag 'inputs')"),
    ("ignore", 1, "wrote no /data/local/tmp/frlite/dense_fp32_s0_out-0.bin, expected output 0"),
])
def test_a_runner_without_the_io_flags_says_which_it_needs(phone, pte_pair: Path, mode: str, code: int,  # type: ignore[no-untyped-def]
                                                           said: str) -> None:
    r = _bench(phone, pte_pair, _device("P", runner_io=mode))
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("frlite bench: error:")]
    assert r.returncode == code and len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    assert said in err[0] and "needs an executor_runner with --inputs and --output_file (ExecuTorch 1.0 or later" in err[0]
    assert _phone_files(phone, "P") == [f"{PHONE_DIR}/keep.bin"]
