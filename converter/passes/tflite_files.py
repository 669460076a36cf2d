"""Pass tflite_files: every .tflite file of the request from the onnx2tf runs, by flatbuffer edits:
fp16 weights (converter/tflite/tflite_fp16.py) and, for idct, the IDCT injected into the converted
skeleton (converter/tflite/tflite_idct.py), so no step of an idct conversion holds dense weights
in a converter. Also maps each FR layer to the tensor holding its output (parity --layers)."""
from __future__ import annotations

import shutil

from frlite.converter.passes.context import ConvertContext
from frlite.converter.passes.driver import BasePass
from frlite.converter.passes.onnx2tf import wants_tflite
from frlite.converter.tflite.tflite_file import load_model_object, name_io, save_model_object
from frlite.converter.tflite.tflite_fp16 import to_fp16
from frlite.converter.tflite.tflite_idct import fr_layer_outputs, inject_idct


class TfliteFiles(BasePass):
    def __init__(self) -> None:
        super().__init__("tflite_files", needs=("tmp", "work", "example", "out_names", "weights", "layer_shapes",
                                                "tflite_converted"), adds=("tflite_files",))

    def applies(self, ctx: ConvertContext) -> bool:
        return wants_tflite(ctx)

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.tmp is not None and ctx.work is not None and ctx.example is not None and ctx.out_names is not None
        assert ctx.weights is not None and ctx.layer_shapes is not None
        req, tmp, tfl_dir = ctx.req, ctx.tmp, ctx.tmp / "tflite"
        files = ctx.tflite_files
        if "factorized" in req.modes:
            for precision in [p for p in req.precisions if p in ("fp32", "fp16")]:
                dst = tfl_dir / f"factorized_{precision}.tflite"
                m = load_model_object(ctx.tflite_converted["factorized"])
                if precision == "fp16":
                    to_fp16(m)  # the quick parity decides whether fp16 bases are safe
                save_model_object(m, dst)
                files[("factorized", precision)] = dst
        for (mode, precision), src in ctx.tflite_integer.items():
            dst = tfl_dir / f"{mode}_{precision}.tflite"
            shutil.copyfile(src, dst)
            files[(mode, precision)] = dst
        done = ctx.step("derive fp16 / idct .tflite files")
        for mode in [m for m in req.modes if m != "factorized"]:
            for precision in [p for p in req.precisions if (mode, p) not in ctx.tflite_integer]:
                dst = tfl_dir / f"{mode}_{precision.replace('-', '_')}.tflite"
                if precision == "int8-dynamic":
                    shutil.copyfile(ctx.work / "dense_int8.tflite", dst)
                else:
                    m = load_model_object(ctx.tflite_converted[mode])
                    key = str(dst.relative_to(tmp))
                    if precision == "fp16":
                        to_fp16(m)
                    if mode == "idct":
                        assert ctx.skeleton is not None
                        views = {layer: ctx.weight_views[inp] for layer, inp in ctx.skeleton.weight_inputs.items()
                                 if inp in ctx.weight_views}
                        rep = inject_idct(m, ctx.weights, shapes=ctx.layer_shapes, input_weights=ctx.skeleton.weight_inputs,
                                          input_views=views)
                        name_io(m, list(ctx.example), ctx.out_names)  # the model's own inputs only
                        ctx.layer_maps[key] = rep.layer_outputs
                        ctx.notes[key] = [f"{layer} kept dense: {why}" for layer, why in rep.kept_dense.items()]
                        for note in ctx.notes[key]:
                            ctx.log(f"  {key}: {note}")
                    else:
                        ctx.layer_maps[key] = fr_layer_outputs(m, ctx.weights, ctx.layer_shapes, set(ctx.weight_views.values()))
                    if mode == "dense" and precision == "fp32":
                        shutil.copyfile(ctx.tflite_converted[mode], dst)
                    else:
                        save_model_object(m, dst)
                files[(mode, precision)] = dst
        done()
