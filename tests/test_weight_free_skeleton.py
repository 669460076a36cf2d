"""The idct path without dense weights: the weight-free skeleton (traced small, specialised to the
real size, or exported at full size when the graph depends on the size) and the dense twin
the quick parity checks large idct .tflite files through."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from frlite.converter.passes.convert_pipeline import ConvertRequest, convert, dense_export_module
from frlite.converter.fr.fr_layers import fr_layers
from frlite.converter.models.model_spec import build_model
from frlite.converter.core.manifest import read_manifest
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.tflite.tflite_file import read_tflite
from frlite.converter.tflite.tflite_fold import dense_twin
from frlite.converter.forms.weight_inputs import SizeDependentGraph, export_skeleton_onnx, reduced_example


def _run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def test_reduced_example_keeps_remainders_and_small_inputs() -> None:
    ex = {"input": torch.zeros(1, 3, 640, 959), "mask": torch.zeros(1, 1, 100, 129)}
    red = reduced_example(ex)
    assert red is not None
    assert tuple(red["input"].shape) == (1, 3, 64, 64 + 959 % 64)
    assert tuple(red["mask"].shape) == (1, 1, 100, 64 + 129 % 64)  # 100 <= 128 stays
    assert reduced_example({"input": torch.zeros(1, 3, 32, 32)}) is None


def test_skeleton_traced_small_equals_the_model_at_the_real_size(tmp_path: Path) -> None:
    """Odd width (the decoder pads), traced at 1x3x72x109 and specialised to 1x3x200x301."""
    model = build_model("tests.models.small_fr:unet_small")
    x = torch.rand(1, 3, 200, 301)
    with torch.no_grad():
        ref = model(x).numpy()
    names = [n for n, _ in fr_layers(model)]
    ex = {"input": x}
    sk = export_skeleton_onnx(dense_export_module(model), names, ex, ["output"], tmp_path / "s.onnx",
                              trace_at=reduced_example(ex, side=64), output_shapes=[tuple(ref.shape)])
    graph = onnx.load(str(tmp_path / "s.onnx")).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 3, 200, 301]
    assert not any(n.op_type == "Shape" for n in graph.node)  # shape arithmetic folded at the real size
    assert len(sk.weight_inputs) == len(names)  # every conv of the UNet is plain (groups=1)
    assert not any(i.name.endswith("weight") for i in graph.initializer)  # no dense weight inside
    feeds = {"input": x.numpy()}
    with torch.no_grad():
        for layer, inp in sk.weight_inputs.items():
            feeds[inp] = model.get_submodule(layer.rsplit(".", 1)[0]).spatial_weight().numpy()
    got = _run_onnx(tmp_path / "s.onnx", feeds)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_size_dependent_graph_is_refused_when_traced_small(tmp_path: Path) -> None:
    model = build_model("tests.models.small_fr:pools_to_fixed_grid")
    ex = {"input": torch.rand(1, 3, 150, 150)}
    with torch.no_grad():
        shape = tuple(model(ex["input"]).shape)
    with pytest.raises(SizeDependentGraph):
        export_skeleton_onnx(dense_export_module(model), [n for n, _ in fr_layers(model)], ex, ["output"],
                             tmp_path / "s.onnx", trace_at=reduced_example(ex), output_shapes=[shape])


@pytest.mark.slow
def test_convert_falls_back_to_a_full_size_export(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = convert(ConvertRequest("tests.models.small_fr:pools_to_fixed_grid", None,
                                 [parse_input_shape("input:1x3x150x150")], out, modes=["idct"],
                                 targets=["onnx", "tflite-cpu"], precisions=["fp32"]))
    log = (out / "convert.log").read_text()
    assert "exporting at full size" in log
    assert all(a.parity.passed for a in res.manifest.artifacts)


@pytest.mark.slow
def test_dense_twin_runs_like_the_idct_file(tmp_path: Path) -> None:
    """The twin's folded weights come from the idct file's own ops: same outputs, no rebuild ops."""
    out = tmp_path / "out"
    convert(ConvertRequest("tests.models.small_fr:unet_small", None, [parse_input_shape("input:1x3x200x301")], out,
                           modes=["idct"], targets=["tflite-cpu"], precisions=["fp32"]))
    art = next(a for a in read_manifest(out).artifacts if a.runtime == "tflite")
    src = out / art.path
    twin = tmp_path / "twin.tflite"
    folded = dense_twin(src, twin)
    assert folded == len(list(fr_layers(build_model("tests.models.small_fr:unet_small"))))
    ops = read_tflite(twin).op_counts
    assert "COS" not in ops and "FULLY_CONNECTED" not in ops
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    x = np.random.default_rng(0).random((1, 200, 301, 3), dtype=np.float32)
    outs = []
    for path, resolver in ((src, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES), (twin, OpResolverType.AUTO)):
        it = Interpreter(str(path), experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        outs.append(it.get_tensor(it.get_output_details()[0]["index"]))
    assert np.abs(outs[0] - outs[1]).max() <= 1e-5 * np.abs(outs[0]).max()
