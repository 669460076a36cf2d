"""Pass annotate_artifacts: per artifact, the notes of its converter (idct layers kept dense, norms
no exact rewrite keeps finite in fp16) and where each FR layer's output lives in the file."""
from __future__ import annotations

from frlite.converter.passes.context import ConvertContext
from frlite.converter.passes.driver import BasePass


class AnnotateArtifacts(BasePass):
    def __init__(self) -> None:
        super().__init__("annotate_artifacts", needs=("artifacts",), adds=())

    def run(self, ctx: ConvertContext) -> None:
        for art in ctx.artifacts:
            if art.mode == "idct":
                art.notes = list(ctx.notes.get("onnx" if art.runtime == "onnxruntime" else art.path, []))
            art.layer_outputs = dict(ctx.layer_maps.get(art.path, {}))
            rewrite = ctx.fp16_rewrites.get("factorized" if art.mode == "factorized" else "dense", {})
            art.notes += [f"fp16 arithmetic: norm {u} (no exact rewrite keeps it finite)"
                          for u in rewrite.get("unsafe", [])]  # type: ignore[attr-defined]
