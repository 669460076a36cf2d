"""Pass executorch_artifacts: `--target executorch`, the PyTorch export modules lowered to .pte
programs with the XNNPACK delegate (converter/executorch/), straight from the model (NCHW, no ONNX).

The modules are the ones the ONNX files come from (the fp16-safe dense module, the factorized
module), so parity compares the same function across every target. Each .pte gets a delegation
report naming every op left to the portable kernels. The idct form is refused in check_request.
"""
from __future__ import annotations

import dataclasses
import time

from frlite.converter.core.manifest import Artifact
from frlite.converter.executorch.pte_delegation import delegation, write_delegation_report
from frlite.converter.executorch.pte_lower import lower_to_pte
from frlite.converter.passes.context import EXECUTORCH_PRECISIONS, ConvertContext, sha256
from frlite.converter.passes.driver import BasePass
from frlite.converter.passes.export_dense import safe_dense_module

_DTYPE = {"fp32": "float32", "fp16": "float16"}


class ExecutorchArtifacts(BasePass):
    def __init__(self) -> None:
        super().__init__("executorch_artifacts", needs=("tmp", "model", "example", "onnx_inputs", "onnx_outputs"),
                         adds=("artifacts",))

    def applies(self, ctx: ConvertContext) -> bool:
        return "executorch" in ctx.req.targets

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.tmp is not None and ctx.example is not None and ctx.onnx_inputs is not None and ctx.onnx_outputs is not None
        example = tuple(ctx.example.values())
        for mode in ctx.req.modes:
            module = safe_dense_module(ctx) if mode == "dense" else ctx.export_modules[mode]
            for precision in [p for p in ctx.req.precisions if p in EXECUTORCH_PRECISIONS]:
                t0 = time.perf_counter()
                done = ctx.step(f"ExecuTorch program ({mode}, {precision}): torch.export + XNNPACK lowering")
                program = lower_to_pte(module, example, precision, keep_graph=precision == "fp16")
                path = ctx.tmp / "executorch" / f"{mode}_{precision}.pte"
                program.write(path)
                rep = delegation(program, path.name, precision)
                if program.graph is not None:  # judged in fp16 arithmetic by fp16_arith_check
                    ctx.pte_fp16_graphs[str(path.relative_to(ctx.tmp))] = (program.graph, rep)
                ctx.log(f"  {path.name}: {rep.summary()}")
                extra = write_delegation_report(ctx.tmp, path, rep)
                dtype = _DTYPE[precision]
                ctx.artifacts.append(Artifact(
                    mode=mode, target="executorch", precision=precision, runtime="executorch",
                    path=str(path.relative_to(ctx.tmp)), size_bytes=path.stat().st_size, sha256=sha256(path),
                    op_counts={**{f"xnnpack/{op}": n for op, n in sorted(rep.delegated.items())},
                               **{f"portable/{op}": n for op, n in sorted(rep.portable.items())}},
                    inputs=[dataclasses.replace(t, dtype=dtype) for t in ctx.onnx_inputs],
                    outputs=[dataclasses.replace(t, dtype=dtype) for t in ctx.onnx_outputs],
                    extra_files=extra, convert_seconds=time.perf_counter() - t0))
                done()
            del module
