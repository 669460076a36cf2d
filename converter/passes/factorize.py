"""Pass factorize: the factorized model (cost model per FR layer), made fp16-safe, and its ONNX."""
from __future__ import annotations

from frlite.converter.forms.factorized import describe_fusions, factorize_model
from frlite.converter.forms.fp16_rescale import make_fp16_safe
from frlite.converter.onnx.onnx_export import export_onnx, simplify_onnx
from frlite.converter.passes.context import ConvertContext
from frlite.converter.passes.driver import BasePass


class Factorize(BasePass):
    def __init__(self) -> None:
        super().__init__("factorize", needs=("tmp", "model", "example", "out_names"),
                         adds=("fact_plan", "onnx_files.factorized"))

    def applies(self, ctx: ConvertContext) -> bool:
        return "factorized" in ctx.req.modes

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.tmp is not None and ctx.example is not None and ctx.out_names is not None and ctx.model is not None
        done = ctx.step("build factorized model (cost model per layer) and export its ONNX")
        example = tuple(ctx.example.values())
        fact_module, plan = factorize_model(ctx.model, example, fp16_safe=False)
        ctx.log(f"  {describe_fusions(ctx.model, plan)}")
        rewrites = make_fp16_safe(fact_module, example)
        for line in rewrites.summary():
            ctx.log(f"  {line}")
        ctx.fp16_rewrites["factorized"] = rewrites.as_json()
        dst = ctx.onnx_files["factorized"] = ctx.tmp / "onnx" / "factorized.onnx"
        export_onnx(fact_module, ctx.example, ctx.out_names, dst)
        simplify_onnx(dst)
        chosen = sum(c.choice == "factorized" for c in plan)
        ctx.log(f"  {chosen} of {len(plan)} FR layers factorized; MACs {sum(c.dense_macs for c in plan):,} dense -> "
                f"{sum(min(c.dense_macs, c.factorized_macs) for c in plan):,}")
        ctx.fact_plan = plan
        if "executorch" in ctx.req.targets:  # lowered to .pte later (executorch_artifacts)
            ctx.export_modules["factorized"] = fact_module
        done()
