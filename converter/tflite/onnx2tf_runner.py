"""The onnx2tf call: run the worker in a child process, measure it, turn failures into one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import onnx
import psutil

from frlite.converter.core.errors import FrliteError, UnsupportedLayerError


@dataclass
class IntegerRequest:
    precision: str   # int8 | int16x8
    io_dtype: str    # float | int8 | uint8
    out: Path


@dataclass
class Onnx2tfResult:
    tflite_fp32: Path
    int8_dynamic: Path | None
    seconds: float
    integer: dict[str, Path]          # precision -> full-integer file written
    integer_seconds: dict[str, float]
    integer_fallback: dict[str, str]  # precision -> why some ops stayed float ("" when none did)
    peak_rss_bytes: int
    log_path: Path


def _node_op(onnx_path: Path, node_name: str | None) -> str | None:
    """The node's op and its integer options ("Conv kernel_shape=3x3 strides=2x2 group=4"): the
    option combination a user needs to see to change the layer."""
    if not node_name:
        return None
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    for n in graph.node:
        # onnx2tf sanitises names (drops leading '/', replaces ':'), so compare loosely
        if n.name == node_name or n.name.lstrip("/").replace(":", "__") == node_name.lstrip("/").replace("wa/", "", 1):
            opts = []
            for a in n.attribute:
                v = onnx.helper.get_attribute_value(a)
                if isinstance(v, int) or (isinstance(v, list) and v and all(isinstance(x, int) for x in v)):
                    opts.append(f"{a.name}={'x'.join(map(str, v)) if isinstance(v, list) else v}")
            return " ".join([n.op_type, *opts])
    return None


def _last_error(log_path: Path) -> str:
    lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (errors or lines or ["no output"])[-1][:300]


def run_onnx2tf(onnx_path: Path, workdir: Path, tflite_out: Path, input_names: list[str], output_names: list[str],
                int8_dynamic_out: Path | None = None, timeout_s: float = 3600.0,
                weight_inputs: list[str] | None = None, integer: list[IntegerRequest] | None = None,
                calibration: Path | None = None) -> Onnx2tfResult:
    """Convert `onnx_path` to `tflite_out` in a child process. `weight_inputs`: graph inputs that
    are conv weights (the weight-free skeleton); they stay inputs of the .tflite, after
    `input_names` and named as in the ONNX. `integer`: full-integer files to quantize from the same
    converted graph, calibrated on `calibration` (an .npz of stacked samples per input name)."""
    onnx_path, workdir, tflite_out = onnx_path.resolve(), workdir.resolve(), tflite_out.resolve()
    int8_dynamic_out = int8_dynamic_out.resolve() if int8_dynamic_out else None
    workdir.mkdir(parents=True, exist_ok=True)
    req_path, res_path, log_path = workdir / "request.json", workdir / "result.json", workdir / "onnx2tf.log"
    req = {"onnx": str(onnx_path), "workdir": str(workdir / "run"), "tflite": str(tflite_out),
           "int8_dynamic": str(int8_dynamic_out) if int8_dynamic_out else None, "result": str(res_path),
           "input_names": input_names + list(weight_inputs or []), "output_names": output_names,
           "weight_inputs": list(weight_inputs or []),
           "integer": [{"precision": q.precision, "io_dtype": q.io_dtype, "out": str(q.out.resolve())} for q in integer or []],
           "calibration": str(calibration.resolve()) if calibration else None}
    req_path.write_text(json.dumps(req))
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # onnxsim & co. on PATH
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    # the checkout's root (above converter/), so the worker imports this frlite even if not installed;
    # never converter/ itself, where the onnx/ and tflite/ subpackages would shadow the libraries
    repo_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo_root + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    peak = 0
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "frlite.converter.tflite.onnx2tf_worker", str(req_path)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=repo_root)
        try:
            ps = psutil.Process(proc.pid)
            while proc.poll() is None:
                try:
                    rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
                    peak = max(peak, rss)
                except psutil.Error:
                    pass
                if time.perf_counter() - start > timeout_s:
                    raise FrliteError(f"onnx2tf took longer than {timeout_s:.0f} s and was stopped; see {log_path}")
                time.sleep(0.2)
        except BaseException:
            # timeout, Ctrl-C, SIGTERM/SIGHUP: the worker must not outlive us and keep writing
            # into a temp folder that is being removed
            proc.kill()
            proc.wait()
            raise
    seconds = time.perf_counter() - start
    if not res_path.exists():
        raise FrliteError(f"onnx2tf crashed (exit code {proc.returncode}): {_last_error(log_path)}")
    res = json.loads(res_path.read_text())
    if not res["ok"]:
        with log_path.open("a") as log:
            log.write("\n" + res.get("trace", ""))
        node = res.get("node")
        if res["stage"] == "onnx2tf" and node:
            op = _node_op(onnx_path, node) or "unknown op"
            raise UnsupportedLayerError(
                f"onnx2tf cannot convert node {node} ({op}): {res['error'][:160]}")
        raise FrliteError(f"{res['stage']} failed: {res['error'][:300]}")
    written = {q.precision: q.out for q in integer or []}
    return Onnx2tfResult(tflite_out, int8_dynamic_out, seconds, written,
                         {p: float(res["outputs"].get(p + "_seconds", 0.0)) for p in written},
                         {p: str(res["outputs"].get(p + "_float_ops", "")) for p in written}, peak, log_path)
