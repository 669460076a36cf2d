"""Pass onnx_artifacts: the ONNX files as artifacts, and for ort-mobile the ORT-format model made
by onnxruntime's own converter (a subprocess; argv list, no shell)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from frlite.converter.core.errors import FrliteError
from frlite.converter.core.manifest import Artifact, TensorInfo
from frlite.converter.onnx.onnx_export import summarize_onnx
from frlite.converter.passes.context import ORT_LEVEL, ConvertContext, sha256
from frlite.converter.passes.driver import BasePass


class OnnxArtifacts(BasePass):
    def __init__(self) -> None:
        super().__init__("onnx_artifacts", needs=("tmp", "work", "onnx_inputs", "onnx_outputs"), adds=("artifacts",))

    def applies(self, ctx: ConvertContext) -> bool:
        return "onnx" in ctx.req.targets or "ort-mobile" in ctx.req.targets

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.tmp is not None and ctx.work is not None and ctx.onnx_inputs is not None and ctx.onnx_outputs is not None
        req = ctx.req
        for mode in req.modes:
            for target in [t for t in ("onnx", "ort-mobile") if t in req.targets]:
                for precision in [p for p in req.precisions if p == "fp32"]:
                    ctx.artifacts.append(onnx_artifact(ctx.tmp, ctx.onnx_files[mode], mode, target, precision,
                                                       ctx.onnx_inputs, ctx.onnx_outputs, ctx.work, ctx.log))


def onnx_artifact(tmp: Path, onnx_path: Path, mode: str, target: str, precision: str,  # type: ignore[no-untyped-def]
                  inputs: list[TensorInfo], outputs: list[TensorInfo], work: Path, log) -> Artifact:
    t0 = time.perf_counter()
    summary = summarize_onnx(onnx_path)
    extra: dict[str, str] = {}
    path = onnx_path
    if target == "ort-mobile":
        out_dir = tmp / "ort" / mode
        out_dir.mkdir(parents=True)
        env = dict(os.environ)
        # the idct form must not be constant-folded into dense weights inside the .ort file
        env["ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL"] = {"idct": "disable"}.get(mode, ORT_LEVEL.get(mode, "all"))
        src = work / f"{mode}.onnx"
        shutil.copyfile(onnx_path, src)
        log(f"ORT format ({mode})")
        proc = subprocess.run([sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(src),
                               "--output_dir", str(out_dir), "--optimization_style", "Fixed"],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise FrliteError(f"onnxruntime's ORT-format converter failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:300]}")
        ort_files = sorted(out_dir.glob("*.ort"))
        configs = sorted(out_dir.glob("*.config"))
        if not ort_files:
            raise FrliteError(f"onnxruntime's ORT-format converter wrote no .ort file for {mode}")
        path = ort_files[0].rename(out_dir / "model.ort")
        if configs:
            extra["required_operators_config"] = str(configs[0].rename(out_dir / "required_operators.config").relative_to(tmp))
        extra["source_onnx"] = str(onnx_path.relative_to(tmp))
    return Artifact(mode=mode, target=target, precision=precision, runtime="onnxruntime",
                    path=str(path.relative_to(tmp)), size_bytes=path.stat().st_size, sha256=sha256(path),
                    op_counts=summary.op_counts, inputs=inputs, outputs=outputs, extra_files=extra,
                    convert_seconds=time.perf_counter() - t0,
                    session_options={"graph_optimization_level": ORT_LEVEL[mode]} if mode in ORT_LEVEL else {})
