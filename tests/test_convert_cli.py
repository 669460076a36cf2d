"""`frlite convert` bad input: one clear line, non-zero exit, no partial output folder."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli


def _one_line(result, *needles: str, code: int | None = None) -> str:  # type: ignore[no-untyped-def]
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith(("WARNING", "INFO", "W0000", "I0000", "E0000"))]
    assert result.returncode != 0
    if code is not None:
        assert result.returncode == code, result.stderr
    errors = [ln for ln in lines if ln.startswith("frlite convert: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _no_output(parent: Path, name: str = "out") -> None:
    assert not (parent / name).exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{name}.partial")]


CLS = "tests.models.small_fr:classifier"


def test_unknown_target(tmp_path: Path) -> None:
    r = run_cli("convert", CLS, "--input", "input:1x3x32x32", "--target", "tflite-dsp", "--out", str(tmp_path / "out"), cwd=REPO)
    _one_line(r, "--target 'tflite-dsp' is not one of", code=2)
    _no_output(tmp_path)


def test_shape_string_that_does_not_parse(tmp_path: Path) -> None:
    r = run_cli("convert", CLS, "--input", "input:1x3x32by32", "--out", str(tmp_path / "out"), cwd=REPO)
    _one_line(r, "'input:1x3x32by32' does not parse", "NAME:DIMS", code=2)
    _no_output(tmp_path)


def test_input_shape_the_model_rejects(tmp_path: Path) -> None:
    r = run_cli("convert", CLS, "--input", "input:1x5x32x32", "--out", str(tmp_path / "out"), cwd=REPO)
    _one_line(r, "rejects input shape input:1x5x32x32", code=2)
    _no_output(tmp_path)


@pytest.mark.slow  # a real conversion end to end (7 s): the fast suite keeps under 3 min
def test_op_onnx2tf_cannot_convert_is_named(tmp_path: Path) -> None:
    r = run_cli("convert", "tests.models.small_fr:with_custom_op", "--input", "input:1x3x8x8",
                "--target", "tflite-cpu", "--out", str(tmp_path / "out"), cwd=REPO)
    _one_line(r, "onnx2tf cannot convert node", "(Mystery)")
    _no_output(tmp_path)


def test_unwritable_out(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_cli("convert", CLS, "--input", "input:1x3x32x32", "--out", str(blocker / "out"), cwd=REPO)
    _one_line(r, "does not exist")
    existing = tmp_path / "out"
    existing.mkdir()
    r = run_cli("convert", CLS, "--input", "input:1x3x32x32", "--out", str(existing), cwd=REPO)
    _one_line(r, "already exists", "--overwrite")


def test_full_disk_leaves_nothing(tmp_path: Path) -> None:
    """A write limit (RLIMIT_FSIZE) stands in for a full disk: the first large write fails."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    exe = Path(sys.executable).with_name("frlite")
    r = subprocess.run([str(exe), "convert", CLS, "--input", "input:1x3x32x32", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, cwd=REPO, preexec_fn=limit, timeout=600)
    _one_line(r, "File too large")
    _no_output(tmp_path)


def test_convert_writes_manifest_and_log(tmp_path: Path) -> None:
    r = run_cli("convert", CLS, "--input", "input:1x3x32x32", "--mode", "dense,idct", "--target", "onnx",
                "--out", str(tmp_path / "out"), "--quiet", cwd=REPO)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["format_version"] == 1 and len(m["artifacts"]) == 2
    assert set(m["versions"]) >= {"torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "ai-edge-litert"}
    for a in m["artifacts"]:
        assert len(a["sha256"]) == 64 and a["size_bytes"] == os.path.getsize(tmp_path / "out" / a["path"])
    assert "quick parity" in (tmp_path / "out" / "convert.log").read_text()


def test_inputs_file_missing_is_bad_usage(tmp_path: Path) -> None:
    r = run_cli("convert", CLS, "--input", "input:1x3x32x32", "--inputs", str(tmp_path / "nope.npy"),
                "--out", str(tmp_path / "out"), cwd=REPO)
    _one_line(r, "nope.npy does not exist", code=2)
    _no_output(tmp_path)


def test_inputs_of_the_wrong_shape_are_bad_usage(tmp_path: Path) -> None:
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((1, 3, 16, 16), np.float32))
    r = run_cli("convert", CLS, "--input", "input:1x3x32x32", "--inputs", str(tmp_path / "x.npy"),
                "--out", str(tmp_path / "out"), cwd=REPO)
    _one_line(r, "x.npy: input input has shape (1, 3, 16, 16), the model expects (1, 3, 32, 32)", code=2)
    _no_output(tmp_path, "out")
