"""Pass build_manifest: drop the work folder and describe the folder (manifest.json is written
by convert() after the last pass, so it lists every pass that ran)."""
from __future__ import annotations

import datetime as _dt
import shutil

from frlite.converter.core.manifest import Manifest
from frlite.converter.forms.factorized import plan_as_json
from frlite.converter.models.model_spec import portable_spec
from frlite.converter.models.summary import summarize_model
from frlite.converter.passes.context import ConvertContext
from frlite.converter.passes.driver import BasePass


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "ai-edge-litert", "executorch", "numpy", "frlite"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "dev" if pkg == "frlite" else "missing"
    return out


class BuildManifest(BasePass):
    def __init__(self) -> None:
        super().__init__("build_manifest", needs=("tmp", "work", "loaded", "model", "onnx_inputs", "onnx_outputs",
                                                  "artifacts"), adds=("manifest",))

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.work is not None and ctx.model is not None
        shutil.rmtree(ctx.work, ignore_errors=True)
        ckpt = ctx.loaded.checkpoint
        ctx.manifest = Manifest(
            factorization=plan_as_json(ctx.fact_plan) if "factorized" in ctx.req.modes else [],
            fp16_rewrites=ctx.fp16_rewrites,
            model_spec=portable_spec(ctx.req.model_spec),
            checkpoint=str(ckpt.path.resolve()) if ckpt else None,
            checkpoint_sha256=ckpt.sha256 if ckpt else None,
            model_inputs=ctx.onnx_inputs or [], model_outputs=ctx.onnx_outputs or [], artifacts=ctx.artifacts,
            versions=versions(), created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            fr_layers=[{"name": s.name, "kind": s.kind, "shape": list(s.shape), "kept": s.kept, "box": list(s.box)}
                       for s in summarize_model(ctx.model).layers],
            check_inputs=[s.record() for s in ctx.loaded_samples or []],
        )
