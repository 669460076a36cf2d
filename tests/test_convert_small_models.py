"""`frlite convert` on FR models of other shapes, through every mode and target, checked by
running each artifact independently against PyTorch (not only the converter's own check)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
from frlite.converter.core.manifest import read_manifest
from frlite.converter.models.model_spec import build_model
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.runtimes.loader import open_artifact

# each model converts in every mode x target x precision through onnx2tf (~30 s apiece on 2 cores)
pytestmark = pytest.mark.slow

MODELS = {
    "classifier": ("tests.models.small_fr:classifier", "input:1x3x32x32"),
    "decoder": ("tests.models.small_fr:decoder", "input:1x8x10x12"),
    "frereg": ("tests.models.small_fr:frereg_net", "input:1x3x16x16"),
}
ALL_TARGETS = ["onnx", "ort-mobile", "tflite-cpu", "tflite-gpu", "tflite-nnapi"]


@pytest.fixture(scope="module", params=sorted(MODELS))
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    spec, shape = MODELS[request.param]
    out = tmp_path_factory.mktemp(request.param) / "out"
    convert(ConvertRequest(spec, None, [parse_input_shape(shape)], out, modes=["dense", "idct"],
                           targets=ALL_TARGETS, precisions=["fp32", "fp16"]))
    return spec, shape, out


def test_every_mode_and_target_matches_pytorch(converted) -> None:  # type: ignore[no-untyped-def]
    spec, shape, out = converted
    manifest = read_manifest(out)
    model = build_model(spec)
    got = {(a.mode, a.target, a.precision) for a in manifest.artifacts}
    for mode in ("dense", "idct"):
        for target in ALL_TARGETS:
            assert (mode, target, "fp32") in got
            if target.startswith("tflite"):
                assert (mode, target, "fp16") in got
    x = np.random.default_rng(123).random(parse_input_shape(shape).shape, dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    scale = float(np.abs(ref).max())
    for art in manifest.artifacts:
        out_arr = open_artifact(out, art).run({"input": x})["output"]
        assert out_arr.shape == ref.shape, art.path
        err = float(np.abs(out_arr - ref).max()) / scale
        limit = 1e-4 if art.precision == "fp32" else 1e-2
        assert err <= limit, (art.path, art.target, err)
        assert art.parity is not None and art.parity.passed


def _constant_bytes(path: Path) -> int:
    from frlite.converter.onnx.onnx_export import summarize_onnx
    from frlite.converter.tflite.tflite_file import read_tflite

    return read_tflite(path).constant_bytes if path.suffix == ".tflite" else summarize_onnx(path).initializer_bytes


def test_idct_files_hold_the_compact_form(converted) -> None:  # type: ignore[no-untyped-def]
    """Read the files themselves: the IDCT ops are there and the stored numbers are far fewer
    than the dense weights (on models this small the graph itself can outweigh the savings)."""
    spec, _, out = converted
    manifest = read_manifest(out)
    fr_weight_bytes = 4 * sum(layer["shape"][0] * int(np.prod(layer["shape"][1:])) for layer in manifest.fr_layers)
    checked = 0
    for art in manifest.artifacts:
        if art.mode != "idct" or art.target == "ort-mobile":
            continue
        dense = manifest.artifact("dense", art.target, art.precision)
        assert "COS" in art.op_counts or "Cos" in art.op_counts, art.op_counts
        assert not art.notes, art.notes  # every FR weight was rebuilt in-graph
        idct_consts = _constant_bytes(out / art.path)
        assert idct_consts < 0.6 * fr_weight_bytes, (art.path, idct_consts, fr_weight_bytes)
        assert art.size_bytes != dense.size_bytes
        checked += 1
    assert checked == 1 + 2 * 3  # onnx + (cpu, gpu, nnapi) x (fp32, fp16)


def test_tflite_layouts_are_recorded(converted) -> None:  # type: ignore[no-untyped-def]
    _, shape, out = converted
    manifest = read_manifest(out)
    for art in manifest.artifacts:
        if art.runtime == "tflite":
            (inp,) = art.inputs
            assert inp.layout == "NHWC" and inp.perm_from_model == [0, 2, 3, 1]
            assert inp.shape == [parse_input_shape(shape).shape[i] for i in (0, 2, 3, 1)]
        else:
            assert art.inputs[0].perm_from_model is None


def test_compat_reports_written(converted) -> None:  # type: ignore[no-untyped-def]
    import json

    spec, _, out = converted
    manifest = read_manifest(out)
    for art in manifest.artifacts:
        if art.target in ("tflite-gpu", "tflite-nnapi"):
            data = json.loads((out / art.extra_files["compat_json"]).read_text())
            assert data["ops_total"] == sum(art.op_counts.values())
            assert (out / art.extra_files["compat_md"]).read_text().startswith("# ")
            if art.mode == "dense" and art.target == "tflite-gpu":
                assert data["all_delegated"], data["fallback"]
            if art.mode == "dense" and art.target == "tflite-nnapi":
                # NNAPI takes no grouped convolution (CONV_2D version 6); everything else runs on it
                expected = {"CONV_2D": ["op version 6 (max 5)"]} if "classifier" in spec else {}
                assert data["fallback"] == expected


def test_fp16_arithmetic_of_every_tflite_file(converted) -> None:  # type: ignore[no-untyped-def]
    """The fp16 executor's kernels match LiteRT on every .tflite (fp32 mode), and the gpu/nnapi
    files of these well-scaled models are measured safe in fp16 arithmetic, with real rounding."""
    import json

    from frlite.android_harness.precision_policy import choose
    from kernel_check import assert_kernels_match_litert

    _, _, out = converted
    manifest = read_manifest(out)
    for path in sorted({a.path for a in manifest.artifacts if a.runtime == "tflite"}):
        assert_kernels_match_litert(out / path)
    for art in manifest.artifacts:
        if art.target not in ("tflite-gpu", "tflite-nnapi"):
            assert art.fp16_arith is None
            continue
        v = art.fp16_arith
        assert v is not None and v.verdict == "safe" and v.first_overflow is None, art.path
        assert 1e-6 < v.worst_rel_to_scale <= v.tolerance  # fp16 rounding was applied, and stayed small
        rep = json.loads((out / art.extra_files["compat_json"]).read_text())
        assert rep["precision_loss_allowed"] is True and rep["fp16_arithmetic"]["verdict"] == "safe"
        assert rep["delegate_ready"] is rep["all_delegated"]
        assert "fp16 arithmetic: safe" in (out / art.extra_files["compat_md"]).read_text()
        if art.precision == "fp16":
            assert choose(out / art.path, "fp16", art.fp16_arith).allow_fp16
            assert choose(out / art.path, "fp16", None).allow_fp16  # measured on the spot, agrees
