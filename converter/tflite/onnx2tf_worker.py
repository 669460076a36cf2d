"""Child process that runs onnx2tf and the TFLite converter (entry: `python -m frlite.converter.tflite.onnx2tf_worker REQ`).

Run apart from the parent so TensorFlow's memory and threads die with it, its logs can be
kept out of the user's terminal, and its peak memory is measured on its own. The request and
the result are small JSON files; the parent (onnx2tf_runner) turns a failure into one line.

Traps handled here (onnx2tf 1.29.24): it rewrites its input in place, so it gets a copy;
it downloads a calibration sample for 3-channel image inputs, so a seeded random array under
that exact file name sits in the working directory; onnxsim is not run (the ONNX frlite exports
is already static and clean, and onnxsim would fold an IDCT of constants into dense weights).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

CALIBRATION_NAME = "calibration_image_sample_data_20x128x128x3_float32.npy"


def _take_weights_as_tensors(names: set[str]) -> None:
    """Let Conv / ConvTranspose read the named graph inputs as their weight (the weight-free
    skeleton, converter/weight_inputs.py). onnx2tf can only take a constant weight (a graph input
    has no producer, its weight reader fails), and it moves every 4-D input to channels-last:
    ONNX (O, I, kh, kw) arrives as (O, kh, kw, I), so TF's (kh, kw, I, O) filter is one transpose
    away, which the TFLite converter cancels against its own (CONV_2D wants O, kh, kw, I)."""
    import importlib

    import tensorflow as tf

    current: dict = {}
    for op_type in ("Conv", "ConvTranspose"):
        mod = importlib.import_module(f"onnx2tf.ops.{op_type}")

        def weights(const_or_var, kernel_size, _orig=mod.get_weights_constant_or_variable):  # type: ignore[no-untyped-def]
            if getattr(const_or_var, "name", None) in names and kernel_size == 2:
                return tf.transpose(current["layers"][const_or_var.name]["tf_node"], [1, 2, 3, 0])
            return _orig(const_or_var=const_or_var, kernel_size=kernel_size)

        def make_node(*args, _orig=mod.make_node, **kwargs):  # type: ignore[no-untyped-def]
            current["layers"] = kwargs["tf_layers_dict"]
            return _orig(*args, **kwargs)

        mod.get_weights_constant_or_variable = weights
        mod.make_node = make_node


def _calibration(path: str, keras_model, input_names: list[str]) -> list[list]:  # type: ignore[no-untyped-def]
    """The calibration samples (an .npz of stacked arrays in the model's layout, keyed by input name)
    in the converted model's input layout: onnx2tf moved the channel axis (1) of 4-D inputs last."""
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        stacks = [data[n] for n in input_names[:len(keras_model.inputs)]]
    out = []
    for i in range(len(stacks[0])):
        sample = []
        for arr, inp in zip(stacks, keras_model.inputs):
            x = arr[i]
            want = tuple(int(d) for d in inp.shape)
            if tuple(x.shape) != want and x.ndim >= 3 and tuple(np.moveaxis(x, 1, -1).shape) == want:
                x = np.moveaxis(x, 1, -1)
            if tuple(x.shape) != want:
                raise ValueError(f"calibration sample of shape {tuple(arr[i].shape)} does not fit input {want}")
            sample.append(np.ascontiguousarray(x, dtype=np.float32))
        out.append(sample)
    return out


_IO_TYPES = {"float": "float32", "int8": "int8", "uint8": "uint8"}


def _write_integer(tf, fn, keras_model, q: dict, samples: list[list]) -> str:  # type: ignore[no-untyped-def]
    """Full-integer quantization by the TFLite converter: weights int8 per channel, activations int8
    (or int16 for "int16x8") with ranges from the calibration samples, each fed once. Every op
    integer first (what an NPU runs whole); when the converter has no integer kernel for an op
    (TF 2.19's 16x8 mode lacks SQRT, DIV, DEPTH_TO_SPACE), those ops stay float between a
    dequantize and a quantize, and the returned line says why (the manifest lists the ops)."""
    def convert(fallback: bool) -> bytes:
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], keras_model)
        conv.experimental_lower_to_saved_model = False
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: iter(samples)
        ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 if q["precision"] == "int16x8"
               else tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.target_spec.supported_ops = ops + ([tf.lite.OpsSet.TFLITE_BUILTINS] if fallback else [])
        if q["precision"] == "int8":
            io = getattr(tf, _IO_TYPES[q.get("io_dtype", "float")])
            conv.inference_input_type = io
            conv.inference_output_type = io
        return conv.convert()

    try:
        data, why = convert(fallback=False), ""
    except Exception as exc:  # the converter names the first op it has no integer kernel for
        why = " ".join(str(exc).split())[:300]
        data = convert(fallback=True)
    Path(q["out"]).write_bytes(data)
    return why


def _run(req: dict) -> dict:
    import numpy as np

    work = Path(req["workdir"])
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    onnx_copy = work / "model_for_onnx2tf.onnx"
    shutil.copyfile(req["onnx"], onnx_copy)
    np.save(work / CALIBRATION_NAME, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    t0 = time.perf_counter()
    import onnx2tf
    import onnx2tf.onnx2tf as onnx2tf_main
    import tensorflow as tf

    if req.get("skip_validation_inference", True):
        # onnx2tf runs the whole ONNX model in onnxruntime keeping every intermediate tensor (8 GB
        # for the UNet at 640x959) only to validate ops in strict mode, which is off here; its
        # documented fallback when that inference fails is to skip it. frlite checks parity itself.
        def _skip_validation(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("validation inference skipped by frlite")

        onnx2tf_main.dummy_onnx_inference = _skip_validation

    if req.get("weight_inputs"):
        _take_weights_as_tensors(set(req["weight_inputs"]))
    try:
        keras_model = onnx2tf.convert(
            input_onnx_file_path=str(onnx_copy), output_folder_path=str(work / "onnx2tf_out"),
            non_verbose=True, not_use_onnxsim=True, disable_strict_mode=req.get("disable_strict_mode", True),
            disable_model_save=True, copy_onnx_input_output_names_to_tflite=True,
        )
    except BaseException as exc:  # onnx2tf raises many types, and SystemExit on some errors
        return {"ok": False, "stage": "onnx2tf", "node": getattr(exc, "onnx_op_name", None),
                "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                "trace": traceback.format_exc()[-4000:]}
    t1 = time.perf_counter()
    try:
        # From a concrete function, not from_keras_model: that path serialises keras metadata to
        # JSON and round-trips a SavedModel, ~150 s and 8 GB for the UNet; this one ~15 s, 4 GB.
        in_specs = [tf.TensorSpec(t.shape, t.dtype, name=n) for t, n in zip(keras_model.inputs, req["input_names"])]
        out_names = req["output_names"]

        def forward(*xs):  # type: ignore[no-untyped-def]
            outs = keras_model(list(xs) if len(xs) > 1 else xs[0])
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            if len(outs) != len(out_names):
                raise ValueError(f"converted model has {len(outs)} outputs, expected {len(out_names)}")
            return tuple(outs)  # a tuple keeps the order; names and a signature are set afterwards

        fn = tf.function(forward, input_signature=in_specs).get_concrete_function()
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], keras_model)
        conv.experimental_lower_to_saved_model = False
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        data = conv.convert()
        Path(req["tflite"]).write_bytes(data)
        from frlite.converter.tflite.tflite_file import load_model_object, name_io, save_model_object

        named = load_model_object(req["tflite"])
        name_io(named, req["input_names"], out_names)
        save_model_object(named, req["tflite"])
        outputs = {"fp32": req["tflite"]}
        if req.get("int8_dynamic"):
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            Path(req["int8_dynamic"]).write_bytes(conv.convert())
            outputs["int8-dynamic"] = req["int8_dynamic"]
        for q in req.get("integer", []):
            t_q = time.perf_counter()
            why = _write_integer(tf, fn, keras_model, q, _calibration(req["calibration"], keras_model, req["input_names"]))
            outputs[q["precision"] + "_float_ops"] = why
            named = load_model_object(q["out"])
            name_io(named, req["input_names"], out_names)
            save_model_object(named, q["out"])
            outputs[q["precision"]] = q["out"]
            outputs[q["precision"] + "_seconds"] = time.perf_counter() - t_q
    except BaseException as exc:
        return {"ok": False, "stage": "tflite-converter", "node": None,
                "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                "trace": traceback.format_exc()[-4000:]}
    return {"ok": True, "onnx2tf_seconds": t1 - t0, "tflite_seconds": time.perf_counter() - t1, "outputs": outputs}


def main() -> None:
    req = json.loads(Path(sys.argv[1]).read_text())
    result = _run(req)
    Path(req["result"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
