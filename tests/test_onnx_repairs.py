"""The ONNX repair passes (converter/onnx/onnx_repairs.py): each rewrite is exact through ONNX
Runtime (1e-6), works with the weight as a constant and as a graph input (the idct skeleton),
leaves what it cannot rewrite alone, and the two models onnx2tf got wrong or could not convert
(tests/models/repair_fr.py) convert in every mode with the repair named in convert.log and the
manifest."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from frlite.converter.onnx.onnx_repairs import conv_transpose_sites, repair_conv_transpose, repair_strided_dilated


def _graph(op: str, x_shape: tuple[int, ...], w: np.ndarray, b: np.ndarray | None, weight_as_input: bool,
           **attrs: object) -> onnx.ModelProto:
    ins = ["x", "w"] + (["b"] if b is not None else [])
    inits = [numpy_helper.from_array(b, "b")] if b is not None else []
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))]
    if weight_as_input:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w.shape)))
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    node = helper.make_node(op, ins, ["y"], name=f"/layer/{op}", **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _one_node_before_after(node: onnx.NodeProto, x: np.ndarray, inits: list, repair) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def,type-arg]
    """ORT outputs of a one-node model on `x` before and after `repair`, which must rewrite the
    node away (checked)."""
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    before = _run(model, {"x": x})
    assert list(repair(model).rewritten) == [node.name]
    onnx.checker.check_model(model)
    assert node.op_type not in _ops(model)
    return before, _run(model, {"x": x})


CONV_CASES = [  # kernel, strides, dilations, pads (begins..., ends...), group, channels in, out
    ((3, 3), (2, 2), (2, 2), (2, 2, 2, 2), 4, 8, 8),      # the issue's: d multiple of s
    ((3, 3), (2, 2), (3, 3), (1, 0, 2, 3), 1, 4, 6),      # d not a multiple of s, asymmetric pads
    ((2, 3), (3, 2), (3, 2), (0, 1, 1, 0), 1, 3, 5),      # asymmetric kernel, strides, dilations
    ((3, 3), (2, 1), (1, 3), (0, 0, 0, 0), 2, 4, 4),      # dilation only on a stride-1 axis
    ((3, 3), (2, 2), (2, 2), (1, 1, 1, 1), 6, 6, 6),      # depthwise
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"k{c[0]}s{c[1]}d{c[2]}p{c[3]}g{c[4]}")
@pytest.mark.parametrize("weight_as_input", [False, True], ids=["const", "input"])
def test_strided_dilated_conv_repair_is_exact(case, weight_as_input: bool) -> None:  # type: ignore[no-untyped-def]
    kernel, strides, dilations, pads, group, cin, cout = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, cin, 17, 19)).astype(np.float32)
    w = rng.standard_normal((cout, cin // group, *kernel)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    model = _graph("Conv", x.shape, w, b, weight_as_input, kernel_shape=list(kernel), strides=list(strides),
                   dilations=list(dilations), pads=list(pads), group=group)
    feeds = {"x": x, **({"w": w} if weight_as_input else {})}
    before = _run(model, feeds)
    res = repair_strided_dilated(model)
    onnx.checker.check_model(model)
    assert list(res.rewritten) == ["/layer/Conv"] and not res.views
    for n in model.graph.node:
        if n.op_type == "Conv":
            a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
            assert a["strides"] == [1, 1]  # no conv of the result has stride > 1 with dilation > 1
    after = _run(model, feeds)
    assert after.shape == before.shape
    assert float(np.abs(after - before).max()) <= 1e-6 * max(1.0, float(np.abs(before).max()))


def test_strided_dilated_conv_repair_ignores_other_convs() -> None:
    w = np.ones((4, 4, 3, 3), np.float32)
    for attrs in ({"strides": [2, 2], "dilations": [1, 1]}, {"strides": [1, 1], "dilations": [2, 2]}):
        model = _graph("Conv", (1, 4, 9, 9), w, None, False, kernel_shape=[3, 3], **attrs)
        assert not repair_strided_dilated(model).rewritten
        assert _ops(model) == ["Conv"]


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("weight_as_input", [False, True], ids=["const", "input"])
def test_conv_transpose_repair_is_exact(k: int, bias: bool, weight_as_input: bool) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 24, 5, 7)).astype(np.float32)
    w = rng.standard_normal((24, 8, k, k)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32) if bias else None
    model = _graph("ConvTranspose", x.shape, w, b, weight_as_input, kernel_shape=[k, k], strides=[k, k])
    before = _run(model, {"x": x, **({"w": w} if weight_as_input else {})})
    res = repair_conv_transpose(model)
    onnx.checker.check_model(model)
    assert list(res.rewritten) == ["/layer/ConvTranspose"]
    assert _ops(model) == ["Conv", "DepthToSpace"]
    feeds = {"x": x}
    if weight_as_input:  # whoever feeds the input now feeds the view the repair reports
        view = res.views["w"]
        feeds["w"] = np.ascontiguousarray(w.transpose(view.perm).reshape(view.shape))
    else:
        (view,) = res.views.values()
        w1 = next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name in res.views)
        assert np.array_equal(w1, w.transpose(view.perm).reshape(view.shape))
    after = _run(model, feeds)
    assert after.shape == before.shape == (2, 8, 5 * k, 7 * k)
    assert float(np.abs(after - before).max()) <= 1e-6 * float(np.abs(before).max())


@pytest.mark.parametrize("attrs,why", [
    ({"kernel_shape": [2, 2], "strides": [2, 2], "group": 2}, "groups > 1"),
    ({"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1]}, "pads"),
    ({"kernel_shape": [2, 2], "strides": [2, 2], "output_padding": [1, 1]}, "output_padding"),
    ({"kernel_shape": [2, 3], "strides": [2, 3]}, "square"),
])
def test_conv_transpose_repair_leaves_what_it_cannot_rewrite(attrs: dict, why: str) -> None:
    kernel = attrs["kernel_shape"]
    w = np.ones((8, 4 // attrs.get("group", 1), *kernel), np.float32)
    model = _graph("ConvTranspose", (1, 8, 4, 4), w, None, False, **attrs)
    assert conv_transpose_sites(model.graph) == []  # the pass does not apply: it is not named
    res = repair_conv_transpose(model)
    assert not res.rewritten and why in res.left["/layer/ConvTranspose"]
    assert _ops(model) == ["ConvTranspose"]


def test_conv_transpose_other_kernels_are_not_sites() -> None:
    w = np.ones((8, 4, 3, 3), np.float32)
    model = _graph("ConvTranspose", (1, 8, 4, 4), w, None, False, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    res = repair_conv_transpose(model)
    assert not res.rewritten and not res.left and _ops(model) == ["ConvTranspose"]


# --- end to end: the two models of issue 14 ------------------------------------------------------

REPAIRED_MODELS = {  # model -> (spec, input, the repair pass that must fire)
    "strided_dilated": ("tests.models.repair_fr:strided_dilated", "input:1x3x32x32", "repair_strided_dilated_conv"),
    "kernel_eq_stride_up": ("tests.models.repair_fr:kernel_eq_stride_up", "input:1x3x32x32",
                            "repair_conv_transpose_depth_to_space"),
}


@pytest.mark.slow  # onnx2tf end to end in every mode, ~22 s a model: the fast suite is unit-level
@pytest.mark.parametrize("name", sorted(REPAIRED_MODELS))
def test_repaired_models_convert_in_every_mode(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from frlite.converter.core.manifest import read_manifest
    from frlite.converter.core.shape_spec import parse_input_shape
    from frlite.converter.models.model_spec import build_model
    from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
    from frlite.runtimes.loader import open_artifact

    spec, shape, repair = REPAIRED_MODELS[name]
    out = tmp_path / "out"
    convert(ConvertRequest(spec, None, [parse_input_shape(shape)], out, modes=["dense", "idct", "factorized"],
                           targets=["onnx", "tflite-cpu", "tflite-gpu", "tflite-nnapi"], precisions=["fp32", "fp16"]))
    manifest = read_manifest(out)
    for report in (out / "compat").glob("dense_*.json"):  # the ops a repair adds are delegate ops
        ops = [op for op in json.loads(report.read_text())["ops"] if op["op"] in ("DEPTH_TO_SPACE", "STRIDED_SLICE", "PAD")]
        assert ops and all(op["delegated"] for op in ops), (report.name, ops)
    ran = [p.name for p in manifest.passes]
    assert repair in ran and [p for p in ran if p.startswith("repair_")] == [repair]
    log = (out / "convert.log").read_text()
    assert f"pass {repair}:" in log and "-> " in log
    x = np.random.default_rng(7).random(parse_input_shape(shape).shape, dtype=np.float32)
    with torch.no_grad():
        ref = build_model(spec)(torch.from_numpy(x)).numpy()
    scale = float(np.abs(ref).max())
    modes = set()
    for art in manifest.artifacts:
        err = float(np.abs(open_artifact(out, art).run({"input": x})["output"] - ref).max()) / scale
        assert err <= (1e-4 if art.precision == "fp32" else 2e-2), (art.path, err)
        assert not art.notes, (art.path, art.notes)  # idct: every FR weight rebuilt, the repaired one too
        modes.add(art.mode)
        if art.mode != "factorized" and art.target == "tflite-cpu":  # parity --layers finds every FR layer
            assert sorted(art.layer_outputs) == sorted(layer['name'] for layer in manifest.fr_layers), art.path
    assert modes == {"dense", "idct", "factorized"} and len(manifest.artifacts) == 21


@pytest.mark.slow
def test_without_the_repair_onnx2tf_refuses_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The failure the repair removes, reproduced: convert's pass list minus the repair stops on
    the node, names its options and the modes that convert, and leaves no folder."""
    from frlite.converter.core.errors import UnsupportedLayerError
    from frlite.converter.core.shape_spec import parse_input_shape
    from frlite.converter.passes.convert_pipeline import CONVERT_PASSES, ConvertRequest, convert

    passes = [p for p in CONVERT_PASSES if p.name != "repair_strided_dilated_conv"]
    out = tmp_path / "out"
    with pytest.raises(UnsupportedLayerError) as err:
        convert(ConvertRequest("tests.models.repair_fr:strided_dilated", None, [parse_input_shape("input:1x3x32x32")],
                               out, modes=["dense", "idct"], targets=["tflite-cpu"]), passes=passes)
    msg = str(err.value)
    assert "\n" not in msg and "/features/features.0/Conv" in msg
    assert "strides=2x2" in msg and "dilations=2x2" in msg and "group=4" in msg
    assert "--mode dense:" in msg and "--mode idct:" in msg and "try --mode factorized" in msg
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("strides,dilations", [((1, 1), (2, 2)), ((2, 2), (1, 1)), ((1, 2), (3, 1))])
def test_same_pads_repair_is_exact(auto_pad: str, strides: tuple, dilations: tuple) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 4, 10, 11)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 4)).astype(np.float32)
    model = _graph("Conv", x.shape, w, None, False, kernel_shape=[3, 4], strides=list(strides),
                   dilations=list(dilations), auto_pad=auto_pad)
    # the reference: the same conv with pads as ONNX defines SAME (ORT refuses SAME with dilation)
    from frlite.converter.onnx.onnx_repairs import repair_same_pads

    res = repair_same_pads(model)
    assert list(res.rewritten) == ["/layer/Conv"]
    (node,) = model.graph.node
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert "auto_pad" not in attrs
    import torch

    pads = attrs["pads"]  # begins h, w, ends h, w
    xp = torch.nn.functional.pad(torch.from_numpy(x), (pads[1], pads[3], pads[0], pads[2]))
    ref = torch.nn.functional.conv2d(xp, torch.from_numpy(w), stride=strides, dilation=dilations).numpy()
    assert ref.shape[2:] == tuple(-(-s // st) for s, st in zip(x.shape[2:], strides))  # SAME keeps ceil(size / stride)
    total = [p0 + p1 for p0, p1 in zip(pads[:2], pads[2:])]
    extra_first = [p0 - p1 for p0, p1 in zip(pads[:2], pads[2:])]
    assert all(e in ((0, -1) if auto_pad == "SAME_UPPER" else (0, 1)) for e, t in zip(extra_first, total))
    got = _run(model, {"x": x})
    assert float(np.abs(got - ref).max()) <= 1e-5 * float(np.abs(ref).max())


@pytest.mark.slow
def test_without_same_pads_repair_the_onnx_runtime_refusal_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """torch's padding='same' with dilation exports auto_pad SAME_UPPER, which ONNX Runtime
    refuses: without the repair that is a one-line refusal naming the file (no traceback)."""
    from frlite.converter.core.errors import FrliteError
    from frlite.converter.core.shape_spec import parse_input_shape
    from frlite.converter.passes.convert_pipeline import CONVERT_PASSES, ConvertRequest, convert

    passes = [p for p in CONVERT_PASSES if p.name != "repair_same_pads"]
    out = tmp_path / "out"
    with pytest.raises(FrliteError) as err:
        convert(ConvertRequest("tests.zoo.zoo_models:conv_pad_same_d2", None, [parse_input_shape("input:1x4x16x16")],
                               out, modes=["dense"], targets=["onnx"]), passes=passes)
    msg = str(err.value)
    assert "\n" not in msg and "onnx/dense.onnx (does not run in onnxruntime" in msg and "SAME_UPPER" in msg
    assert not out.exists()


def test_every_site_of_a_graph_is_repaired() -> None:
    """Several sites in one graph (the UNet has four up-convs): each is found again after the
    rewrites before it, and the chain stays exact."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 8, 12, 12)).astype(np.float32)
    inits, nodes, prev = [], [], "x"
    for i, (op, attrs, shape) in enumerate([
            ("Conv", dict(kernel_shape=[3, 3], strides=[2, 2], dilations=[2, 2], pads=[2, 2, 2, 2]), (8, 8, 3, 3)),
            ("ConvTranspose", dict(kernel_shape=[2, 2], strides=[2, 2]), (8, 6, 2, 2)),
            ("Conv", dict(kernel_shape=[3, 3], strides=[2, 2], dilations=[3, 3], pads=[1, 1, 1, 1]), (6, 6, 3, 3)),
            ("ConvTranspose", dict(kernel_shape=[3, 3], strides=[3, 3]), (6, 4, 3, 3))]):
        inits.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), f"w{i}"))
        out = "y" if i == 3 else f"t{i}"
        nodes.append(helper.make_node(op, [prev, f"w{i}"], [out], name=f"/n{i}/{op}", **attrs))
        prev = out
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    before = _run(model, {"x": x})
    assert len(repair_strided_dilated(model).rewritten) == 2
    assert len(repair_conv_transpose(model).rewritten) == 2
    onnx.checker.check_model(model)
    assert "ConvTranspose" not in _ops(model)
    after = _run(model, {"x": x})
    assert after.shape == before.shape
    assert float(np.abs(after - before).max()) <= 1e-5 * float(np.abs(before).max())


@pytest.mark.parametrize("axis", [-3, 1, -2])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm_repair_matches_onnx_runtime(axis: int, with_bias: bool) -> None:
    from frlite.converter.onnx.onnx_repairs import repair_layer_norm

    rng = np.random.default_rng(4)
    x = (rng.standard_normal((2, 8, 5, 6)) * 3 + 1).astype(np.float32)
    norm_shape = x.shape[axis % 4:]
    scale = rng.standard_normal(norm_shape).astype(np.float32)
    inits = [numpy_helper.from_array(scale, "scale")]
    if with_bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(norm_shape).astype(np.float32), "bias"))
    node = helper.make_node("LayerNormalization", ["x", "scale"] + (["bias"] if with_bias else []), ["y"],
                            name="/ln/LayerNormalization", axis=axis, epsilon=1e-5)
    before, after = _one_node_before_after(node, x, inits, repair_layer_norm)
    assert float(np.abs(after - before).max()) <= 1e-5 * float(np.abs(before).max())


def test_layer_norm_over_the_last_axis_is_left_alone() -> None:
    from frlite.converter.onnx.onnx_repairs import layer_norm_sites

    node = helper.make_node("LayerNormalization", ["x", "scale"], ["y"], axis=-1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6])],
                              [numpy_helper.from_array(np.ones(6, np.float32), "scale")])
    assert layer_norm_sites(graph) == []


@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], strides=[2, 2], dilations=[2, 2], pads=[2, 2, 2, 2], output_padding=[1, 1]),
    dict(kernel_shape=[2, 3], strides=[1, 2], dilations=[3, 2], pads=[0, 1, 1, 0], group=2),
])
def test_dilated_conv_transpose_repair_is_exact(attrs: dict) -> None:
    from frlite.converter.onnx.onnx_repairs import repair_dilated_conv_transpose

    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 8, 6, 7)).astype(np.float32)
    w = rng.standard_normal((8, 4 // attrs.get("group", 1), *attrs["kernel_shape"])).astype(np.float32)
    model = _graph("ConvTranspose", x.shape, w, None, False, **attrs)
    before = _run(model, {"x": x})
    assert list(repair_dilated_conv_transpose(model).rewritten) == ["/layer/ConvTranspose"]
    onnx.checker.check_model(model)
    (node,) = model.graph.node
    assert {a.name: helper.get_attribute_value(a) for a in node.attribute}["dilations"] == [1, 1]
    after = _run(model, {"x": x})
    assert after.shape == before.shape
    assert float(np.abs(after - before).max()) <= 1e-6 * float(np.abs(before).max())


def test_erf_repair_is_within_its_bound() -> None:
    """Erf has no builtin-op form; the polynomial stays within A&S 7.1.26's 1.5e-7 (plus fp32
    rounding) everywhere, and exactly odd, zero at zero."""
    from frlite.converter.onnx.onnx_repairs import repair_erf

    x = np.concatenate([np.linspace(-6, 6, 20001), [0.0, 1e-6, -1e-6, 3e-5, -3e-5]]).astype(np.float32)
    before, after = _one_node_before_after(helper.make_node("Erf", ["x"], ["y"], name="/gelu/Erf"), x, [], repair_erf)
    big = np.abs(x) >= 2.0 ** -14
    assert float(np.abs(after - before)[big].max()) <= 5e-7
    assert float(np.abs(after - before).max()) <= 7e-5 and after[x.size - 5] == 0.0
    assert np.array_equal(after[:10000], -after[10001:20001][::-1])
