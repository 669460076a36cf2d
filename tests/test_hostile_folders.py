"""Convert folders are data (issue 11, items 1, 2, 8, 10 and the manifest part of 11).

One small real conversion (the FR decoder, dense, ONNX + TFLite) is copied per test and made
hostile: model code the manifest names, paths out of the folder, modified files, malformed
manifests, filters that select nothing. Every refusal is one stderr line, the right exit code,
no traceback, and nothing the folder names runs or is pushed. Cases that must prove a file's
code never ran or that nothing reached a phone run the real `frlite` command; the manifest
shape cases call the CLI's `main` in-process (no interpreter start-up per case).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from conftest import REPO, run_cli
from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.cli import main

SPEC = "tests.models.small_fr:decoder"
FAKE_ADB = REPO / "tests" / "fake_adb"
ARM64_ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x02\x00" + b"\xb7\x00" + b"\x00" * 44
MODEL_PY = """
from pathlib import Path
Path(__file__).with_name("MARKER").write_text("model.py ran")
from tests.models.small_fr import decoder

def build():
    return decoder()
"""


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted once; tests copy it (a few KB) before making it hostile."""
    out = tmp_path_factory.mktemp("hostile") / "dec"
    convert(ConvertRequest(SPEC, None, [parse_input_shape("input:1x8x10x12")], out,
                           modes=["dense"], targets=["onnx", "tflite-cpu"], precisions=["fp32"], parity_samples=1))
    return out


@pytest.fixture
def folder(converted: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "conv"
    shutil.copytree(converted, dst)
    return dst


class Replace:
    """Returned by a manifest change to replace the whole document."""

    def __init__(self, value: object) -> None:
        self.value = value


def edit_manifest(folder: Path, change: Callable[[Any], Any]) -> None:
    """Apply `change` to the parsed manifest in place (or replace it by returning Replace(new))."""
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    new = change(data)
    path.write_text(json.dumps(new.value if isinstance(new, Replace) else data))


def art(data: dict, suffix: str) -> dict:
    return next(a for a in data["artifacts"] if a["path"].endswith(suffix))


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def one_error_line(stderr: str, command: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith(f"frlite {command}: error: "), stderr
    return lines[0]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The CLI in-process: exit code and its single stderr line."""
    code = main(list(args))
    err = capsys.readouterr().err
    return code, one_error_line(err, args[0]) if code else err


def run_bench_on_phone(folder: Path, tmp: Path, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    binary = tmp / "benchmark_model"
    binary.write_bytes(ARM64_ELF)
    scen = tmp / "scenario.json"
    scen.write_text(json.dumps({"devices": [{"serial": "P", "state": "device"}], "python": sys.executable}))
    env = dict(os.environ, PATH=f"{FAKE_ADB}{os.pathsep}{os.environ['PATH']}", FAKE_ADB_SCENARIO=str(scen),
               FAKE_ADB_STATE=str(tmp / "adb_state"), PYTHONPATH=str(REPO))
    exe = Path(sys.executable).with_name("frlite")
    return subprocess.run([str(exe), "bench", str(folder), "--benchmark-binary", str(binary), "--out", str(tmp / "res"),
                           *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def adb_calls(tmp: Path) -> list[list[str]]:
    log = tmp / "adb_state" / "calls.jsonl"
    return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []


# -- item 1: a convert folder is data, never code ---------------------------------------------

def _ship_model_code(folder: Path) -> Path:
    (folder / "model.py").write_text(MODEL_PY)
    edit_manifest(folder, lambda d: d.update(model_spec="model:build"))
    return folder / "MARKER"


@pytest.mark.slow
def test_folder_model_code_is_refused_and_never_runs(folder: Path) -> None:
    marker = _ship_model_code(folder)
    r = run_cli("parity", str(folder), "--out", str(folder.parent / "rep"), cwd=folder)  # `model` importable from cwd
    line = one_error_line(r.stderr, "parity")
    assert r.returncode == 2 and "names the model code 'model:build'" in line and "--trust-model-code" in line
    assert not marker.exists() and not (folder.parent / "rep").exists()


def test_folder_model_code_is_refused_by_bench_parity_and_nothing_is_pushed(folder: Path, tmp_path: Path) -> None:
    marker = _ship_model_code(folder)
    r = run_bench_on_phone(folder, tmp_path, "--parity", cwd=folder)
    assert r.returncode == 2 and "--trust-model-code" in one_error_line(r.stderr, "bench")
    assert not marker.exists()
    assert not any(c[2:3] == ["push"] for c in adb_calls(tmp_path))


@pytest.mark.slow
def test_trust_model_code_flag_runs_the_folders_model(folder: Path) -> None:
    marker = _ship_model_code(folder)
    r = run_cli("parity", str(folder), "--trust-model-code", "--runtimes", "torch,onnxruntime", "--format", "json",
                "--out", str(folder.parent / "rep"))
    assert r.returncode == 0, r.stderr
    assert marker.read_text() == "model.py ran"


def test_model_named_on_the_command_line_is_the_reference(folder: Path) -> None:
    marker = _ship_model_code(folder)
    r = run_cli("parity", str(folder), "--model", SPEC, "--runtimes", "torch,onnxruntime", "--format", "json",
                "--out", str(folder.parent / "rep"))
    assert r.returncode == 0, r.stderr
    assert not marker.exists()
    assert json.loads((folder.parent / "rep" / "parity.json").read_text())["passed"] is True


def test_builtin_spec_needs_no_flag(folder: Path) -> None:
    from frlite.converter.core.convert_folder import ConvertFolder
    from frlite.runtimes.reference_model import ReferenceRequest, _spec

    edit_manifest(folder, lambda d: d.update(model_spec="unet"))
    assert _spec(ConvertFolder.open(folder), ReferenceRequest()) == ("unet", None)


@pytest.fixture
def with_checkpoint(folder: Path) -> tuple[Path, Path]:
    """The folder as if converted from a checkpoint: the decoder's own state_dict, sha recorded."""
    from tests.models.small_fr import decoder

    ckpt = folder.parent / "dec.pt"
    torch.save(decoder().state_dict(), ckpt)
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    edit_manifest(folder, lambda d: d.update(checkpoint=str(ckpt), checkpoint_sha256=sha))
    return folder, ckpt


def test_checkpoint_is_checked_against_the_manifest(with_checkpoint: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    folder, ckpt = with_checkpoint
    rep = str(folder.parent / "rep")
    code, _ = cli(capsys, "parity", str(folder), "--model", SPEC, "--runtimes", "torch,onnxruntime", "--format", "json", "--out", rep)
    assert code == 0  # the right checkpoint: the reference loads and matches
    want = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    other = folder.parent / "other.pt"
    state = torch.load(ckpt, weights_only=True)
    state["up1.weight"] = state["up1.weight"] * 2
    torch.save(state, other)
    got = hashlib.sha256(other.read_bytes()).hexdigest()
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC, "--weights", str(other), "--out", rep + "2")
    assert code == 2 and got[:12] in line and want[:12] in line and "not the checkpoint the folder was converted from" in line
    shutil.copyfile(other, ckpt)  # the manifest's own checkpoint path, replaced
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC, "--out", rep + "3")
    assert code == 2 and got[:12] in line and want[:12] in line


def test_weights_for_a_folder_converted_without_a_checkpoint_are_refused(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = folder.parent / "w.pt"
    torch.save({"x": torch.zeros(1)}, other)
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC, "--weights", str(other))
    assert code == 2 and "converted without a checkpoint" in line


# -- item 2: manifest paths stay inside the folder; files match their sha256 -----------------

@pytest.mark.parametrize("path,needle", [
    ("../../etc/passwd", "climbs out of the folder"),
    ("/etc/passwd", "is an absolute path"),
    ("tflite/../../outside.tflite", "climbs out of the folder"),
    ("", "is not a plain relative path"),
    (".", "names the folder itself"),
])
def test_artifact_path_outside_the_folder_is_refused(folder: Path, capsys: pytest.CaptureFixture[str], path: str, needle: str) -> None:
    edit_manifest(folder, lambda d: art(d, "dense_fp32.tflite").update(path=path))
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC)
    assert code == 2 and "artifacts[" in line and needle in line


def test_extra_file_outside_the_folder_is_refused(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_manifest(folder, lambda d: art(d, "dense.onnx")["extra_files"].update(notes="../../../home/secret.txt"))
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC)
    assert code == 2 and "extra_files.notes" in line and "climbs out" in line


def test_symlink_leading_out_of_the_folder_is_refused(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the file outside is byte-identical, so only the containment check can stop it
    outside = folder.parent / "outside.tflite"
    shutil.move(folder / "tflite" / "dense_fp32.tflite", outside)
    (folder / "tflite" / "dense_fp32.tflite").symlink_to(outside)
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC)
    assert code == 2 and "leads outside the folder" in line and "tflite/dense_fp32.tflite" in line


def test_symlink_inside_the_folder_is_followed(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = folder / "onnx" / "moved.onnx"
    shutil.move(folder / "onnx" / "dense.onnx", real)
    (folder / "onnx" / "dense.onnx").symlink_to(real)
    code, out = cli(capsys, "parity", str(folder), "--model", SPEC, "--runtimes", "torch,onnxruntime", "--format", "json",
                    "--out", str(folder.parent / "rep"))
    assert code == 0, out


def test_fifo_in_place_of_an_artifact_is_refused_without_reading(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = folder / "onnx" / "dense.onnx"
    target.unlink()
    os.mkfifo(target)  # a read would block forever
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC)
    assert code == 2 and "not a regular file" in line and "onnx/dense.onnx" in line


def _modify(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_modified_artifact_fails_parity(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _modify(folder / "onnx" / "dense.onnx")
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC, "--out", str(folder.parent / "rep"))
    assert code == 2 and "artifact onnx/dense.onnx" in line and "modified after conversion" in line
    assert not (folder.parent / "rep").exists()


def test_modified_artifact_fails_parity_layers(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _modify(folder / "tflite" / "dense_fp32.tflite")
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC, "--layers", "--runtimes", "torch,tflite")
    assert code == 2 and "artifact tflite/dense_fp32.tflite" in line and "modified after conversion" in line


def test_missing_artifact_is_named(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "onnx" / "dense.onnx").unlink()
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC)
    assert code == 2 and "onnx/dense.onnx" in line and "is missing" in line


def test_modified_artifact_fails_bench_host(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _modify(folder / "tflite" / "dense_fp32.tflite")
    code, line = cli(capsys, "bench", str(folder), "--host", "--runs", "1", "--out", str(tmp_path / "res"))
    assert code == 2 and "artifact tflite/dense_fp32.tflite" in line and "modified after conversion" in line
    assert not (tmp_path / "res").exists()


def test_modified_artifact_is_never_pushed_to_a_phone(folder: Path, tmp_path: Path) -> None:
    _modify(folder / "tflite" / "dense_fp32.tflite")
    r = run_bench_on_phone(folder, tmp_path)
    line = one_error_line(r.stderr, "bench")
    assert r.returncode == 2 and "tflite/dense_fp32.tflite" in line and "modified after conversion" in line
    assert not any("push" in c for c in adb_calls(tmp_path))


def test_path_out_of_the_folder_is_never_pushed_to_a_phone(folder: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    edit_manifest(folder, lambda d: art(d, "dense_fp32.tflite").update(path="exfil/../../secret.txt"))
    r = run_bench_on_phone(folder, tmp_path)
    assert r.returncode == 2 and "climbs out of the folder" in one_error_line(r.stderr, "bench")
    assert not any("push" in c for c in adb_calls(tmp_path))


def test_evaluate_converted_checks_the_files(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _modify(folder / "onnx" / "dense.onnx")
    img = tmp_path / "x.png"
    img.write_bytes(b"not read: the folder is checked first")
    ckpt = tmp_path / "dec.pt"
    from tests.models.small_fr import decoder

    torch.save(decoder().state_dict(), ckpt)
    code, line = cli(capsys, "evaluate", SPEC, "--weights", str(ckpt), "--images", str(img), "--masks", str(img),
                     "--converted", str(folder))
    assert code == 2 and "artifact onnx/dense.onnx" in line and "modified after conversion" in line


# -- the manifest itself: one strict reader -----------------------------------------------------

@pytest.mark.parametrize("change,needle", [
    (lambda d: Replace([d]), "the top level must be a JSON object, got a list"),
    (lambda d: Replace("manifest"), "the top level must be a JSON object, got a string"),
    (lambda d: d.pop("artifacts"), "artifacts is missing"),
    (lambda d: d.pop("model_inputs"), "model_inputs is missing"),
    (lambda d: art(d, "dense.onnx").pop("sha256"), "artifacts[0].sha256 is missing"),
    (lambda d: d.update(run_this="rm -rf /"), "run_this is not a known key"),
    (lambda d: art(d, "dense.onnx").update(hook="x"), "artifacts[0].hook is not a known key"),
    (lambda d: d.update(format_version=2), "format_version is 2, this frlite reads 1"),
    (lambda d: d.update(format_version="1"), "format_version is '1'"),
    (lambda d: d.pop("format_version"), "format_version is None"),
    (lambda d: d.update(model_spec=5), "model_spec must be a string, got an integer"),
    (lambda d: d.update(artifacts={"a": 1}), "artifacts must be a list, got an object"),
    (lambda d: d["artifacts"].__setitem__(0, "onnx/dense.onnx"), "artifacts[0] must be a JSON object"),
    (lambda d: d["model_inputs"][0].update(shape=["1", "8", "10", "12"]), "model_inputs[0].shape[0] must be an integer"),
    (lambda d: d["model_inputs"][0].update(shape=[1, 8, -10, 12]), "has a negative dimension"),
    (lambda d: d["model_inputs"][0].update(shape=[True, 8, 10, 12]), "must be an integer, got a boolean"),
    (lambda d: d["model_inputs"][0].update(shape=[100000] * 4), "elements, over"),
    (lambda d: d["model_inputs"][0].update(name=["input"]), "model_inputs[0].name must be a string, got a list"),
    (lambda d: d["model_inputs"][0].update(dtype="object"), "model_inputs[0].dtype is 'object', not one of"),
    (lambda d: art(d, "dense.onnx").update(size_bytes="3693"), "artifacts[0].size_bytes must be an integer"),
    (lambda d: art(d, "dense.onnx").update(sha256="00" * 16), "is not a sha256"),
    (lambda d: art(d, "dense.onnx").update(path=7), "artifacts[0].path must be a string"),
    (lambda d: art(d, "dense_fp32.tflite")["inputs"][0].update(perm_from_model=[0, 0, 1, 2]), "is not a permutation"),
    (lambda d: art(d, "dense_fp32.tflite")["inputs"][0].update(model_name="x"), "'x' is not one of the model's inputs"),
    (lambda d: art(d, "dense.onnx").update(session_options={"low_memory": "1"}), "session_options.low_memory is not a known key"),
    (lambda d: art(d, "dense.onnx").update(session_options={"graph_optimization_level": "max"}), "'max', not one of"),
    (lambda d: art(d, "dense_fp32.tflite")["layer_outputs"].update(x="name"), "must be a tensor index"),
    (lambda d: art(d, "dense.onnx").update(parity={"samples": 1}), "artifacts[0].parity.max_abs_error is missing"),
    (lambda d: d["model_outputs"][0].update(model_name="input"), "reuses the input name 'input'"),
    (lambda d: d.update(checkpoint="/some/ckpt.pt"), "checkpoint_sha256 and checkpoint must both be set"),
    (lambda d: d["artifacts"].append(dict(d["artifacts"][0])), "repeats dense/onnx/fp32"),
    (lambda d: art(d, "dense.onnx").update(target="tflite-cpu"), "is 'onnxruntime' but target tflite-cpu runs on tflite"),
    (lambda d: art(d, "dense.onnx").update(mode="sparse"), "artifacts[0].mode is 'sparse', not one of"),
])
def test_malformed_manifest_is_one_line_exit_2(folder: Path, capsys: pytest.CaptureFixture[str], change, needle: str) -> None:  # type: ignore[no-untyped-def]
    edit_manifest(folder, change)
    for command in (["parity", str(folder), "--model", SPEC], ["bench", str(folder), "--host", "--out", str(folder.parent / "b")]):
        code, line = cli(capsys, *command)
        assert code == 2 and needle in line, line
    assert not (folder.parent / "b").exists()


def test_unknown_runtime_is_named_not_skipped(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_manifest(folder, lambda d: art(d, "dense.onnx").update(runtime="tensorrt"))
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC)
    assert code == 2 and "artifacts[0].runtime is 'tensorrt', not one of: onnxruntime, tflite" in line


@pytest.mark.parametrize("content,needle", [
    (b"{\"format_version\": 1,", "is not valid JSON"),
    (b"\xff\xfe{}", "is not valid JSON"),
    (b"[" * 100000 + b"]" * 100000, "is not valid JSON"),
    (b"", "is not valid JSON"),
])
def test_unparsable_manifest(folder: Path, capsys: pytest.CaptureFixture[str], content: bytes, needle: str) -> None:
    (folder / "manifest.json").write_bytes(content)
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC)
    assert code == 2 and needle in line


def test_manifest_over_the_size_limit_is_not_read(folder: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRLITE_MANIFEST_MAX_BYTES", "1000")
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC)
    assert code == 2 and "over the limit of 1,000" in line and "FRLITE_MANIFEST_MAX_BYTES" in line


def test_manifest_that_is_a_fifo_or_a_device_is_refused(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "manifest.json").unlink()
    os.mkfifo(folder / "manifest.json")
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC)
    assert code == 2 and "not a regular file" in line
    (folder / "manifest.json").unlink()
    (folder / "manifest.json").symlink_to("/dev/zero")
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC)
    assert code == 2 and "not a regular file" in line


def test_known_sets_are_those_convert_writes() -> None:
    from frlite.converter.passes import convert_pipeline
    from frlite.converter.core import manifest_schema

    assert manifest_schema.MODES == convert_pipeline.MODES
    assert manifest_schema.TARGETS == convert_pipeline.TARGETS
    assert manifest_schema.PRECISIONS == convert_pipeline.PRECISIONS
    assert set(manifest_schema.SESSION_OPTIONS["graph_optimization_level"]) >= set(convert_pipeline.ORT_LEVEL.values())


# -- item 8: a parity run that compares nothing fails ------------------------------------------

def test_zero_artifacts(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_manifest(folder, lambda d: d.update(artifacts=[]))
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC)
    assert code == 2 and "lists no artifacts: there is nothing to compare" in line


def test_runtimes_torch_alone(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC, "--runtimes", "torch")
    assert code == 2 and "--runtimes torch alone compares nothing" in line


def test_runtimes_filter_that_selects_no_file(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_manifest(folder, lambda d: d.update(artifacts=[a for a in d["artifacts"] if a["runtime"] == "tflite"]))
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC, "--runtimes", "torch,onnxruntime")
    assert code == 2 and "selects none of the files" in line and "they run on: tflite" in line
    code, line = cli(capsys, "parity", str(folder), "--model", SPEC, "--variants", "no-opt")
    assert code == 2 and "--variants selects no variant" in line


# -- item 10: bench never writes into its input folder -----------------------------------------

def test_bench_leaves_target_byte_identical(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "parity").mkdir()
    (folder / "parity" / "parity.html").write_text("<html><body><h1>Parity</h1></body></html>")
    before = tree_digest(folder)
    code, _ = cli(capsys, "bench", str(folder), "--host", "--runs", "1", "--warmup", "0", "--min-seconds", "0",
                  "--delegate", "xnnpack", "--threads", "1", "--out", str(tmp_path / "res"))
    assert code == 0
    assert tree_digest(folder) == before
    assert "Latency (frlite bench)" in (tmp_path / "res" / "parity.html").read_text()
    code, line = cli(capsys, "bench", str(folder), "--host", "--out", str(folder / "bench"))
    assert code == 2 and "bench never writes into its input folder" in line
    assert tree_digest(folder) == before


def test_layer_map_naming_a_tensor_the_file_lacks_is_a_note(folder: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """--layers on a diverging file whose manifest maps a layer to a tensor index the file lacks."""
    import numpy as np

    from frlite.converter.tflite.tflite_file import load_model_object, save_model_object

    tfl = folder / "tflite" / "dense_fp32.tflite"
    model = load_model_object(tfl)
    biggest = max((b for b in model.buffers if b.data is not None and len(b.data) >= 64), key=lambda b: len(b.data))
    biggest.data = np.frombuffer((np.frombuffer(np.asarray(biggest.data, np.uint8).tobytes(), np.float32) * 1.5)
                                 .astype(np.float32).tobytes(), np.uint8)
    save_model_object(model, tfl)
    data = tfl.read_bytes()

    def record(d: dict) -> None:
        a = art(d, "dense_fp32.tflite")
        a.update(sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
        a["layer_outputs"] = {k: 10 ** 6 for k in a["layer_outputs"]}
    edit_manifest(folder, record)
    code = main(["parity", str(folder), "--model", SPEC, "--layers", "--runtimes", "torch,tflite", "--format", "json",
                 "--out", str(tmp_path / "rep")])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err  # the file fails; the layer map is reported, not raised
    (cmp,) = json.loads((tmp_path / "rep" / "parity.json").read_text())["layers"].values()
    assert cmp["note"].startswith("layers not compared:") and cmp["first_divergent"] is None
