"""The fp16-arithmetic executor (runtimes/fp16_executor) and the verdict built on it.

Kernels are validated against LiteRT itself (fp32 mode, every file frlite writes for a model);
the fp16 mode against IEEE rounding; the verdict end to end on a file that is right in fp32 and
overflows fp16 (tests.models.small_fr:overflowing), which host parity passes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
from frlite.converter.core.manifest import read_manifest
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.runtimes.fp16_executor import FP16_MAX, GraphExecutor, RoundingPolicy, UnsupportedOp

from kernel_check import assert_kernels_match_litert


def test_fp16_rounding_is_ieee_half() -> None:
    values = np.array([1.0 + 2**-11, 1.0 + 3 * 2**-11, 65504.0, 65519.0, 65520.0, -1e5, 3e-8, 6e-8, 0.1], np.float32)
    got = RoundingPolicy("fp16").round(torch.from_numpy(values)).numpy()
    with np.errstate(over="ignore"):
        want = values.astype(np.float16).astype(np.float32)  # numpy: IEEE round to nearest even, overflow to inf
    np.testing.assert_array_equal(got, want)
    assert got[4] == np.inf and got[5] == -np.inf and got[3] == FP16_MAX
    np.testing.assert_array_equal(RoundingPolicy("fp32").round(torch.from_numpy(values)).numpy(), values)


@pytest.mark.slow
def test_unsafe_file_named_while_host_parity_passes(overflowing_out: Path) -> None:
    from frlite.runtimes.parity_run import run_parity
    from frlite.runtimes.report_markdown import format_markdown

    m = read_manifest(overflowing_out)
    gpu = [a for a in m.artifacts if a.target == "tflite-gpu"]
    assert {a.precision for a in gpu} == {"fp32", "fp16"}
    for art in gpu:
        v = art.fp16_arith
        assert v is not None and v.verdict == "unsafe"
        first = v.first_overflow
        assert first["op_type"] == "CONV_2D" and first["kind"] == "overflow" and first["max_abs"] > FP16_MAX
        assert first["layer"] == "conv1.weight"
        assert "--gpu_precision_loss_allowed=false" in v.message and "CONV_2D" in v.message
        rep = json.loads((overflowing_out / art.extra_files["compat_json"]).read_text())
        assert rep["all_delegated"] is True and rep["delegate_ready"] is False and rep["precision_loss_allowed"] is False
    assert all(a.fp16_arith is None for a in m.artifacts if a.target == "tflite-cpu")
    log = (overflowing_out / "convert.log").read_text()
    assert "tflite/dense_fp32.tflite (tflite-gpu): fp16 arithmetic: unsafe on 2 seeded random samples: op 0 CONV_2D" in log

    from frlite.runtimes.reference_model import ReferenceRequest

    report = run_parity(overflowing_out, samples=1, runtimes=["torch", "tflite"], keep_outputs=False,
                        reference=ReferenceRequest(m.model_spec, None, False))  # test code, named by the test
    by_variant = {(r.path, r.variant): r for r in report.results}
    # fp16-arith is on by default for files meant for tflite-gpu / tflite-nnapi, beside xnnpack
    assert set(by_variant) == {(f"tflite/dense_{p}.tflite", v) for p in ("fp32", "fp16") for v in ("xnnpack", "fp16-arith")}
    assert "fp16 arithmetic: unsafe on 1 seeded random sample: op 0 CONV_2D" in format_markdown(report)
    for precision in ("fp32", "fp16"):
        host = by_variant[(f"tflite/dense_{precision}.tflite", "xnnpack")]
        assert host.passed and host.worst_rel_error < 1e-3  # x86 XNNPACK computes in fp32: fine
        arith = by_variant[(f"tflite/dense_{precision}.tflite", "fp16-arith")]
        assert not arith.passed and arith.fp16_arith is not None and arith.fp16_arith.verdict == "unsafe"
        assert arith.fp16_arith.first_overflow["op_index"] == (0 if precision == "fp32" else
                                                             m.artifacts[-1].fp16_arith.first_overflow["op_index"])
    assert not report.passed


@pytest.mark.slow
def test_unsupported_op_is_named(overflowing_out: Path, tmp_path: Path) -> None:
    from ai_edge_litert import schema_py_generated as schema

    from frlite.converter.tflite.tflite_file import load_model_object, save_model_object

    m = load_model_object(overflowing_out / "tflite" / "dense_fp32.tflite")
    conv = next(c for c in m.operatorCodes if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.CONV_2D)
    conv.builtinCode = conv.deprecatedBuiltinCode = schema.BuiltinOperator.UNIQUE
    save_model_object(m, tmp_path / "edited.tflite")
    with pytest.raises(UnsupportedOp, match="UNIQUE"):
        GraphExecutor(tmp_path / "edited.tflite", "fp16")


@pytest.mark.slow
def test_damaged_file_is_one_clear_error(overflowing_out: Path, tmp_path: Path) -> None:
    from frlite.converter.core.errors import FrliteError

    bad = tmp_path / "cut.tflite"
    bad.write_bytes((overflowing_out / "tflite" / "dense_fp32.tflite").read_bytes()[:300])
    with pytest.raises(FrliteError, match="cut.tflite"):
        GraphExecutor(bad, "fp16")


@pytest.mark.slow
def test_bench_turns_precision_loss_off_for_an_unsafe_file(overflowing_out: Path) -> None:
    from frlite.android_harness.precision_policy import choose

    lone = choose(overflowing_out / "tflite" / "dense_fp16.tflite", "fp16", None)  # measured on the spot
    assert not lone.allow_fp16 and "unsafe" in lone.reason and "CONV_2D" in lone.reason
    assert "file's own fp32 arithmetic" in lone.reason
    art = next(a for a in read_manifest(overflowing_out).artifacts
               if a.path == "tflite/dense_fp16.tflite" and a.fp16_arith is not None)
    known = choose(overflowing_out / art.path, "fp16", art.fp16_arith)
    assert not known.allow_fp16 and "measured at conversion" in known.reason


@pytest.mark.slow
@pytest.mark.parametrize("spec,shape", [("tests.models.small_fr:classifier", "input:1x3x32x32"),
                                        ("tests.models.small_fr:decoder", "input:1x8x10x12"),
                                        ("tests.models.small_fr:frereg_net", "input:1x3x16x16"),
                                        ("unet", "input:1x3x64x96")])
def test_fp32_mode_matches_litert_on_every_file(spec: str, shape: str, unet_archive: Path, tmp_path: Path) -> None:
    """Every .tflite frlite writes (dense / idct / factorized x fp32 / fp16) for the small models
    and the authors' UNet (at a reduced size: same graph, same ops)."""
    weights = unet_archive if spec == "unet" else None
    out = tmp_path / "out"
    convert(ConvertRequest(spec, weights, [parse_input_shape(shape)], out, modes=["dense", "idct", "factorized"],
                           targets=["tflite-cpu"], precisions=["fp32", "fp16"]))
    files = sorted((out / "tflite").glob("*.tflite"))
    assert len(files) == 6
    for f in files:
        assert_kernels_match_litert(f)


def test_kernels_match_litert_on_tf_built_ops() -> None:
    """Ops and options phones' files hold beyond frlite's own (tests/data/make_tf_ops.py, written
    by TensorFlow's TFLite converter): asymmetric SAME padding, depth multiplier, average pool,
    transpose conv to an odd size, and the activations."""
    path = Path(__file__).parent / "data" / "tf_ops.tflite"
    ops = {op.kind for op in GraphExecutor(path, "fp32").graph.ops}
    assert {"AVERAGE_POOL_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "SOFTMAX", "LEAKY_RELU", "RELU6"} <= ops
    assert_kernels_match_litert(path)


@pytest.mark.parametrize("mode,np_mode", [(0, "reflect"), (1, "symmetric")])
def test_mirror_pad_kernel_is_numpy_pad(mode: int, np_mode: str) -> None:
    """MIRROR_PAD (padding_mode='reflect' through onnx2tf; the zoo's conv_reflect): both modes of
    the schema, against numpy's definition."""
    from ai_edge_litert import schema_py_generated as schema

    from frlite.runtimes.fp16_executor.graph import GraphOp
    from frlite.runtimes.fp16_executor.kernels import KERNELS

    opts = schema.MirrorPadOptionsT()
    opts.mode = mode
    x = np.arange(2 * 5 * 6 * 3, dtype=np.float32).reshape(2, 5, 6, 3)
    pads = np.array([[0, 0], [2, 1], [1, 3], [0, 0]], dtype=np.int32)
    (got,) = KERNELS["MIRROR_PAD"](GraphOp(0, "MIRROR_PAD", [0, 1], [2], opts),
                                   [torch.from_numpy(x), torch.from_numpy(pads)], None)
    assert np.array_equal(got.numpy(), np.pad(x, pads, mode=np_mode))


def test_split_kernel_gives_equal_parts() -> None:
    """SPLIT (onnx2tf's grouped ConvTranspose2d; the zoo's tconv_k2_s2_g2)."""
    from ai_edge_litert import schema_py_generated as schema

    from frlite.runtimes.fp16_executor.graph import GraphOp
    from frlite.runtimes.fp16_executor.kernels import KERNELS

    opts = schema.SplitOptionsT()
    opts.numSplits = 3
    x = torch.arange(2 * 4 * 5 * 6, dtype=torch.float32).reshape(2, 4, 5, 6)
    parts = KERNELS["SPLIT"](GraphOp(0, "SPLIT", [0, 1], [2, 3, 4], opts), [torch.tensor([3], dtype=torch.int32), x], None)
    assert [tuple(p.shape) for p in parts] == [(2, 4, 5, 2)] * 3
    assert torch.equal(torch.cat(parts, dim=3), x)


@pytest.mark.slow
@pytest.mark.parametrize("case, ops", [
    ("conv_reflect", {"MIRROR_PAD"}),
    ("tconv_k2_s2_g2", {"SPLIT"}),   # onnx2tf's grouped ConvTranspose2d
    ("up_nearest", {"RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"}),
    ("up_bilinear", {"RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"}),
    ("up_bilinear_ac", {"RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"}),
])
def test_zoo_kernels_match_litert(case: str, ops: set[str], tmp_path: Path) -> None:
    """The kernels the zoo asked for (MIRROR_PAD, SPLIT, RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR
    for Upsample nearest, bilinear with and without align_corners), op by op against LiteRT's own
    kernels on a zoo case whose file holds one of `ops`."""
    out = tmp_path / "out"
    convert(ConvertRequest(f"tests.zoo.zoo_models:{case}", None, [parse_input_shape("input:1x4x16x16")], out,
                           modes=["dense"], targets=["tflite-cpu"], precisions=["fp32"]))
    path = out / "tflite" / "dense_fp32.tflite"
    assert {op.kind for op in GraphExecutor(path, "fp32").graph.ops} & ops
    assert_kernels_match_litert(path)
