"""Full-integer files (--precision int8 / int16x8): calibration, the integer-ready forms, the task
gate with the worst layers named, parity judged by the task, delegate notes."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from frlite.converter.core.errors import FrliteError, UsageError
from frlite.converter.core.manifest import Artifact, IntegerCheck, TensorInfo, read_manifest
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.fr.batch_stat_norm import BatchStatNorm2d
from frlite.converter.forms.dataflow_fusions import find_fusions
from frlite.converter.forms.int_equalize import equalize_stat_norms
from frlite.converter.passes.convert_pipeline import ConvertRequest, check_request, convert
from frlite.converter.passes.export_dense import dense_export_module
from frlite.converter.tflite.tflite_file import TfliteOp, TfliteSummary, TfliteTensor
from frlite.converter.tflite.tflite_integer import integer_plan
from frlite.runtimes.litert_runtime import _from_file, _to_file
from frlite.runtimes.parity_run import compare_run
from frlite.runtimes.quant_layers import LayerError, worst_layers
from tests.models.small_fr import norm_net

SHAPE = "input:1x3x16x16"


def _req(tmp_path: Path, **kw) -> ConvertRequest:  # type: ignore[no-untyped-def]
    args = dict(modes=["dense"], targets=["tflite-cpu"], precisions=["int8"], calibration_files=["cal.npy"])
    args.update(kw)
    return ConvertRequest("tests.models.small_fr:norm_net", None, [parse_input_shape(SHAPE)], tmp_path / "out", **args)


@pytest.mark.parametrize("kw, says", [
    (dict(calibration_files=None), "needs --calibration"),
    (dict(modes=["idct"]), "idct rebuilds its weights"),
    (dict(precisions=["int16x8"], io_dtype="uint8"), "int16x8 files take float inputs"),
    (dict(precisions=["fp32"]), "apply to --precision int8 / int16x8 only"),
    (dict(targets=["onnx"]), "writes no file"),
    (dict(io_dtype="int4"), "--io-dtype"),
])
def test_bad_integer_requests_are_usage_errors(tmp_path: Path, kw: dict, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        check_request(_req(tmp_path, **kw))


def test_equalized_norms_are_exact_and_centre_every_channel() -> None:
    torch.manual_seed(0)
    model = norm_net()
    module = dense_export_module(model)
    with torch.no_grad():  # channels with offsets of 5-50 std and spreads 100x apart, as in the UNet
        module.conv1.bias += torch.linspace(-40, 40, 8)
        module.conv1.weight *= torch.logspace(-1, 1, 8).view(-1, 1, 1, 1)
    samples = [(torch.rand(1, 3, 16, 16),) for _ in range(3)]
    with torch.no_grad():
        before = [module(*s) for s in samples]
    done = equalize_stat_norms(module, find_fusions(model).norms, samples)
    assert {d.conv for d in done} == {"conv1", "conv2"} and max(d.offset_to_spread for d in done) > 5
    seen: list[torch.Tensor] = []
    hook = module.conv1.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        after = [module(*s) for s in samples]
    hook.remove()
    for b, a in zip(before, after):
        assert torch.allclose(a, b, atol=1e-4 * float(b.abs().max()))
    out = torch.cat(seen, dim=0).transpose(0, 1).reshape(8, -1)
    assert float(out.mean(1).abs().max()) < 1e-3
    assert 0.5 <= float(out.std(1).min()) and float(out.std(1).max()) <= 2.0  # powers of two of 1/std
    assert all(isinstance(m, BatchStatNorm2d) and m.scaled_eps is not None
               for m in (module.norm1, module.norm2))


def test_integer_plan_lists_the_ops_left_in_float() -> None:
    t = [TfliteTensor(0, "in", (1, 4), "float32", 0), TfliteTensor(1, "q", (1, 4), "int16", 0),
         TfliteTensor(2, "c", (1, 4), "int16", 0), TfliteTensor(3, "f", (1, 4), "float32", 0),
         TfliteTensor(4, "s", (1, 4), "float32", 0)]
    ops = [TfliteOp("QUANTIZE", [0], [1]), TfliteOp("CONV_2D", [1], [2]), TfliteOp("DEQUANTIZE", [2], [3]),
           TfliteOp("SQRT", [3], [4])]
    plan = integer_plan(TfliteSummary(Path("x"), 0, ops, t, [t[0]], [t[4]]), "no 16x8 SQRT")
    assert plan.computes_in == {"int16": 1, "float32": 1} and plan.boundaries == 2
    assert plan.float_ops == [{"op": "SQRT", "output": "s"}]
    assert "1 SQRT" in plan.summary() and plan.record()["reason"] == "no 16x8 SQRT"


def test_integer_io_is_quantized_and_dequantized_with_the_files_scale() -> None:
    detail = {"dtype": np.int8, "quantization": (0.05, -3)}
    x = np.array([-7.0, -0.02, 0.0, 1.0, 9.0], np.float32)
    q = _to_file(x, detail)
    assert q.dtype == np.int8 and q.tolist() == [-128, -3, -3, 17, 127]  # -7 and 9 saturate
    assert np.allclose(_from_file(q, detail), [-6.25, 0.0, 0.0, 1.0, 6.5])
    plain = {"dtype": np.float32, "quantization": (0.0, 0)}
    assert _to_file(x, plain) is x


def _seg_artifact(precision: str, check: IntegerCheck | None = None) -> Artifact:
    info = TensorInfo("output", [1, 2, 20, 20], "float32", "NCHW", "output")
    return Artifact("dense", "tflite-cpu", precision, "tflite", f"tflite/dense_{precision}.tflite", 1, "0" * 64, {},
                    [], [info], integer=check)


def test_parity_judges_integer_files_by_the_task_not_the_values() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(1, 2, 20, 20)).astype(np.float32)
    # every value off by 30% of scale, yet 399 of 400 pixels keep their class: an int8 file's picture
    noisy = ref + 0.3 * np.abs(ref).max() * np.sign(ref[:, ::-1])
    noisy = np.where((ref.argmax(1) == noisy.argmax(1))[:, None], noisy, ref)
    flip = np.argwhere(np.ones((20, 20)))[:1]
    good = noisy.copy()
    good[0, :, flip[0][0], flip[0][1]] = good[0, ::-1, flip[0][0], flip[0][1]]
    bad = good.copy()
    bad[0, :, :3] = bad[0, ::-1, :3]  # 60 pixels (15%) flipped
    outs = [TensorInfo("output", [1, 2, 20, 20], "float32", "NCHW", "output")]
    run = lambda art, got: compare_run("x", [art], "tflite", "default", outs, [{"output": ref}], [{"output": got}],  # noqa: E731
                                       None, None, None)
    assert not run(_seg_artifact("fp32"), good).passed  # the value tolerance fails it as a float file
    assert run(_seg_artifact("int8"), good).passed       # 99.75% of pixels >= 99%
    assert not run(_seg_artifact("int8"), bad).passed
    strict = IntegerCheck("int8", "float", [], "segmentation", "pixel_agreement", 1.0, 0.999, True, "x")
    assert not run(_seg_artifact("int8", strict), good).passed  # the gate convert used, when recorded


def test_worst_layers_rank_the_noise_each_op_adds() -> None:
    rows = [LayerError("conv1", "CONV_2D", (1, 8, 8, 4), 40.0, 1.0, 60.0, 1e-4, 0.01),
            LayerError("mean", "MEAN", (1, 1, 1, 4), -5.0, 0.1, 45.0, 3.0, 2.0),
            LayerError("sub", "SUB", (1, 8, 8, 4), 20.0, 0.99, 20.0, 1e-2 - 1e-4, 0.1),
            LayerError("mul", "MUL", (1, 8, 8, 4), 19.0, 0.99, 1.0, 2.6e-3, 0.1)]
    assert [r.tensor for r in worst_layers(rows, 2)] == ["sub", "mul"]  # not the first conv, not a statistic
    assert math.isfinite(rows[0].record()["sqnr_db"])  # type: ignore[arg-type]


def _arrays(tmp_path: Path) -> tuple[str, str, str]:
    rng = np.random.default_rng(5)
    cal, chk = tmp_path / "cal.npy", tmp_path / "chk.npy"
    np.save(cal, rng.random((8, 1, 3, 16, 16), dtype=np.float32))
    np.save(chk, rng.random((2, 1, 3, 16, 16), dtype=np.float32))
    tiny = tmp_path / "tiny_noise.npy"
    np.save(tiny, (rng.random((8, 1, 3, 16, 16)) * 1e-3).astype(np.float32))
    return str(cal), str(chk), str(tiny)


@pytest.mark.slow
def test_int8_and_int16x8_files_convert_gate_and_pass_parity(tmp_path: Path) -> None:
    from frlite.runtimes.parity_run import run_parity
    from frlite.runtimes.reference_model import ReferenceRequest

    cal, chk, _ = _arrays(tmp_path)
    out = tmp_path / "out"
    convert(_req(tmp_path, modes=["dense", "factorized"], targets=["tflite-cpu", "tflite-nnapi"],
                 precisions=["fp32", "int8", "int16x8"], calibration_files=[cal], input_files=[chk]))
    m = read_manifest(out)
    ints = [a for a in m.artifacts if a.precision in ("int8", "int16x8")]
    assert {(a.mode, a.precision) for a in ints} == {(md, p) for md in ("dense", "factorized") for p in ("int8", "int16x8")}
    for a in ints:
        check = a.integer
        assert check is not None and check.passed and check.metric == "sqnr_db" and check.value >= 20.0
        assert [c["source"] for c in check.calibration] == [f"cal.npy[{i}]" for i in range(8)]
        computes = check.plan[0]
        assert computes["float_ops"] == [], computes  # every op integer: what an NPU runs whole
        assert set(computes["computes_in"]) == {"int16" if a.precision == "int16x8" else "int8"}
        assert check.worst_layers and check.layers and all("sqnr_db" in r for r in check.layers)
        assert a.parity is not None and a.parity.passed
    fact = next(a for a in ints if a.mode == "factorized")
    assert any(d.get("decision") == "norm unfused" for d in fact.integer.plan)  # type: ignore[union-attr]
    nnapi = json.loads((out / next(a for a in ints if a.precision == "int16x8" and a.target == "tflite-nnapi")
                        .extra_files["compat_json"]).read_text())
    assert nnapi["ops_delegated"] < nnapi["ops_total"]
    assert any("int16 activations" in why for whys in nnapi["fallback"].values() for why in whys)
    rep = run_parity(out, inputs=[chk], runtimes=["torch", "tflite"], layers=True, threads=1,
                     reference=ReferenceRequest("tests.models.small_fr:norm_net"))
    int_runs = [r for r in rep.results if r.precision in ("int8", "int16x8")]
    assert int_runs and all(r.passed for r in int_runs)
    assert any(r.precision == "fp32" for r in rep.results)
    layered = [rep.layers[r.label] for r in int_runs]  # --layers: every integer file's error per op
    assert all(cmp["rows"] and cmp["first_divergent"] and cmp["rows"][0]["sqnr_db"] is not None for cmp in layered)


@pytest.mark.slow
def test_a_file_calibrated_on_noise_is_refused_naming_its_worst_layers(tmp_path: Path) -> None:
    _, chk, tiny = _arrays(tmp_path)
    with pytest.raises(FrliteError, match=r"fails the task gate.*sqnr db .*< 20 dB.*worst layers: .*SQNR"):
        convert(_req(tmp_path, calibration_files=[tiny], input_files=[chk]))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_io_dtype_uint8_gives_a_file_with_integer_io_that_parity_feeds(tmp_path: Path) -> None:
    from frlite.runtimes.base import RunOptions
    from frlite.runtimes.loader import open_artifact

    cal, chk, _ = _arrays(tmp_path)
    out = tmp_path / "out"
    convert(_req(tmp_path, io_dtype="uint8", calibration_files=[cal], input_files=[chk]))
    (art,) = read_manifest(out).artifacts
    assert art.inputs[0].dtype == "uint8" and art.outputs[0].dtype == "uint8"
    assert art.integer is not None and art.integer.io_dtype == "uint8" and art.integer.passed
    rt = open_artifact(out, art, RunOptions())
    x = np.load(chk)[0]
    y = rt.run({"input": x})[rt.outputs()[0].name]
    assert y.dtype == np.float32 and y.shape == (1, 1, 16, 16)  # real values in and out: the runtime (de)quantizes
