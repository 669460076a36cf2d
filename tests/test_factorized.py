"""--mode factorized: FR layers as an exact low-rank product, chosen per layer by a cost model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from frlite.converter.fr.batch_stat_norm import BatchStatNorm2d
from frlite.converter.core.errors import UnsupportedLayerError
from frlite.converter.forms.merged_up import MergedConvInput, MergedUpProjection
from frlite.converter.forms.factorized import (FactorizedConv2d, FactorizedConvStatNorm2d, FactorizedConvTranspose2d,
                                  FactorizedLinear, factorize_model, plan_as_json, plan_factorization)
from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d, FRLinear


def _sparse(layer: nn.Module, box: tuple[int, ...], seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = layer.weight
        keep = tuple(slice(0, min(k, n)) for k, n in zip(box, w.shape))
        v = torch.randn(w[keep].shape, generator=g)
        w.zero_()
        w[keep] = v
    return layer.eval()


@pytest.mark.parametrize("cfg,box", [
    (dict(in_channels=16, out_channels=32, kernel_size=3, padding=1, stride=2), (4, 4, 3, 3)),
    (dict(in_channels=16, out_channels=32, kernel_size=3, padding=2, dilation=2, groups=4, bias=False), (4, 3, 2, 2)),
    (dict(in_channels=8, out_channels=8, kernel_size=3, padding=1, groups=8), (3, 1, 3, 3)),          # depthwise
    (dict(in_channels=8, out_channels=6, kernel_size=(3, 5), padding="same", padding_mode="reflect"), (2, 2, 2, 3)),
    (dict(in_channels=6, out_channels=5, kernel_size=3), (6, 6, 3, 3)),                              # box = whole weight
])
def test_conv_factorization_is_exact(cfg: dict, box: tuple[int, ...]) -> None:
    layer = _sparse(FRConv2d(**cfg), box)
    fact = FactorizedConv2d(layer)
    x = torch.randn(2, cfg["in_channels"], 11, 13, dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(fact(x), layer(x), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("cfg", [
    dict(in_channels=16, out_channels=8, kernel_size=2, stride=2, bias=False),
    dict(in_channels=8, out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(in_channels=8, out_channels=6, kernel_size=3, stride=2, groups=2),
])
def test_conv_transpose_and_linear_factorization_is_exact(cfg: dict) -> None:
    layer = _sparse(FRConvTranspose2d(**cfg), (4, 3, 2, 2))
    x = torch.randn(2, cfg["in_channels"], 7, 9)
    with torch.no_grad():
        torch.testing.assert_close(FactorizedConvTranspose2d(layer)(x), layer(x), atol=2e-5, rtol=1e-5)
    lin = _sparse(FRLinear(40, 30), (4, 5))
    xl = torch.randn(3, 40)
    with torch.no_grad():
        torch.testing.assert_close(FactorizedLinear(lin)(xl), lin(xl), atol=2e-5, rtol=1e-5)


def test_float64_exactness_on_a_large_layer() -> None:
    layer = _sparse(FRConv2d(256, 256, 3, padding=1, bias=False), (4, 4, 3, 3)).double()
    x = torch.randn(1, 256, 10, 12, dtype=torch.float64)
    with torch.no_grad():
        diff = (FactorizedConv2d(layer)(x) - layer(x)).abs().max().item()
    assert diff < 1e-10, diff


def _stat_norm(channels: int, affine: bool, eps: float = 1e-5, seed: int = 0) -> nn.BatchNorm2d:
    """The UNet's norm (batch statistics even in eval), with random affine terms when asked."""
    norm = nn.BatchNorm2d(channels, eps=eps, affine=affine, track_running_stats=False).eval()
    if affine:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            norm.weight.copy_(torch.randn(channels, generator=g))
            norm.bias.copy_(torch.randn(channels, generator=g))
    return norm


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) / float(b.abs().max())


@pytest.mark.parametrize("k0", [1, 3, 5])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_fused_conv_stat_norm_is_exact(k0: int, batch: int, affine: bool, bias: bool) -> None:
    """Against torch's own BatchNorm2d on the FR conv's output (statistics over N, H, W)."""
    cfg = dict(in_channels=12, out_channels=40, kernel_size=3, padding=1, stride=1 + k0 % 2, bias=bias)
    layer = _sparse(FRConv2d(**cfg), (k0, 4, 2, 3), seed=k0)
    if bias:
        with torch.no_grad():
            layer.bias.mul_(10.0)  # a large bias must cancel exactly
    norm = _stat_norm(40, affine, seed=k0)
    x = torch.randn(batch, 12, 11, 13, generator=torch.Generator().manual_seed(batch)) * 3 + 1
    for dtype, limit in ((torch.float32, 1e-5), (torch.float64, 1e-10)):
        layer, norm, x = layer.to(dtype), norm.to(dtype), x.to(dtype)  # built from this dtype's weights
        fused = FactorizedConvStatNorm2d(FactorizedConv2d(layer), BatchStatNorm2d(norm))
        with torch.no_grad():
            assert _rel_err(fused(x), norm(layer(x))) < limit, dtype


def test_fused_norm_keeps_eps_and_rejects_groups() -> None:
    """eps inside the root matters when a channel's variance is that small; grouped convs stay unfused."""
    layer = _sparse(FRConv2d(6, 8, 3, padding=1), (3, 3, 3, 3))
    norm = _stat_norm(8, affine=False, eps=0.5)
    x = torch.randn(2, 6, 9, 9) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(FactorizedConvStatNorm2d(FactorizedConv2d(layer), BatchStatNorm2d(norm))(x),
                                   norm(layer(x)), atol=1e-5, rtol=1e-5)
    grouped = FactorizedConv2d(_sparse(FRConv2d(8, 8, 3, padding=1, groups=2), (2, 2, 3, 3)))
    with pytest.raises(UnsupportedLayerError):
        FactorizedConvStatNorm2d(grouped, BatchStatNorm2d(norm))


def test_factorize_model_fuses_only_adjacent_ungrouped_pairs() -> None:
    norm_a, norm_b, norm_c = _stat_norm(32, True), _stat_norm(32, False), _stat_norm(32, False)
    model = nn.Sequential(
        _sparse(FRConv2d(16, 32, 3, padding=1), (3, 4, 3, 3)), norm_a, nn.ReLU(),                     # fused
        _sparse(FRConv2d(32, 32, 3, padding=1, groups=4), (2, 4, 3, 3), 1), norm_b, nn.ReLU(),       # grouped: not
        _sparse(FRConv2d(32, 32, 3, padding=1), (2, 4, 3, 3), 2), nn.ReLU(), norm_c,                  # not adjacent
    ).eval()
    x = torch.randn(2, 16, 12, 12)
    plan = plan_factorization(model, (x,))
    assert [c.choice for c in plan] == ["factorized"] * 3
    assert [c.fused_norm for c in plan] == ["1", "", ""]
    assert [d["fused_norm"] for d in plan_as_json(plan)] == ["1", "", ""]
    fact, _ = factorize_model(model, plan=plan)
    assert isinstance(fact[0], FactorizedConvStatNorm2d) and isinstance(fact[1], nn.Identity)
    assert isinstance(fact[3], FactorizedConv2d) and isinstance(fact[4], BatchStatNorm2d)
    assert isinstance(fact[6], FactorizedConv2d) and isinstance(fact[8], BatchStatNorm2d)
    with torch.no_grad():
        assert _rel_err(fact(x), model(x)) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("hw", [(32, 48), (36, 45)])  # 45 wide: the decoder pads (odd sizes on the way down)
def test_unet_small_fuses_norms_and_merges_ups(hw: tuple[int, int]) -> None:
    """Each factorized conv of every DoubleConv takes the norm after it, each Up block runs without
    its concat, and the output is the FR model's (float32 and float64, batch 2 and 1)."""
    from frlite.converter.models.model_spec import build_model

    model = build_model("tests.models.small_fr:unet_small")
    x = torch.rand(2, 3, *hw)
    fact, plan = factorize_model(model, (x,))
    merged = {c.name.removesuffix(".weight"): c.merged_into for c in plan if c.merged_into}
    assert merged == {f"up{i}.up": f"up{i}.conv.double_conv.0" for i in range(1, 5)}
    for i in range(1, 5):  # the concat is gone from the traced graph: the conv takes (skip, projected up)
        assert isinstance(fact.get_submodule(f"up{i}.up"), MergedUpProjection)
        assert isinstance(fact.get_submodule(f"up{i}.conv.double_conv.0"), MergedConvInput)
    assert not any(n.target is torch.cat for n in fact.graph.nodes)
    fused = {c.name.removesuffix(".weight"): c.fused_norm for c in plan if c.fused_norm}
    expected = {c.name.removesuffix(".weight"): c.name.removesuffix("0.weight") + "1" for c in plan
                if c.name.endswith("double_conv.0.weight") and c.choice == "factorized"}
    expected |= {c.name.removesuffix(".weight"): c.name.removesuffix("3.weight") + "4" for c in plan
                 if c.name.endswith("double_conv.3.weight") and c.choice == "factorized"}
    assert len(expected) == 18 and fused == expected  # 9 DoubleConvs, all factorized at this size
    for conv, norm in fused.items():
        module = fact.get_submodule(conv)
        module = module.conv if isinstance(module, MergedConvInput) else module
        assert isinstance(module, FactorizedConvStatNorm2d)
        assert isinstance(fact.get_submodule(norm), nn.Identity)
    assert not any(isinstance(m, BatchStatNorm2d) for m in fact.modules())
    with torch.no_grad():
        assert _rel_err(fact(x), model(x)) < 1e-4
        assert _rel_err(fact(x[:1]), model(x[:1])) < 1e-4  # statistics of one image, not of the batch
        fact64, _ = factorize_model(model.double(), plan=plan)
        assert _rel_err(fact64(x.double()), model(x.double())) < 1e-9


def test_up_merge_needs_a_bias_free_up_and_keeps_the_rest() -> None:
    """An Up whose transposed conv has a bias (zero padding would no longer commute) keeps its
    concat; the others still merge and the whole model stays exact."""
    from frlite.converter.models.model_spec import build_model

    model = build_model("tests.models.small_fr:unet_small")
    old = model.up2.up
    model.up2.up = _sparse(FRConvTranspose2d(old.in_channels, old.out_channels, 2, stride=2, bias=True), (4, 4, 2, 2), 3)
    with torch.no_grad():
        model.up2.up.bias.normal_()
    x = torch.rand(1, 3, 36, 45)
    fact, plan = factorize_model(model, (x,))
    assert {c.name for c in plan if c.merged_into} == {"up1.up.weight", "up3.up.weight", "up4.up.weight"}
    assert not isinstance(fact.up2.up, MergedUpProjection) and isinstance(fact.up3.up, MergedUpProjection)
    with torch.no_grad():
        assert _rel_err(fact(x), model(x)) < 1e-4


def test_cost_model_choices() -> None:
    model = nn.Sequential(
        _sparse(FRConv2d(64, 64, 3, padding=1), (4, 4, 3, 3)),         # small box: factorized
        _sparse(FRConv2d(64, 64, 3, padding=1), (64, 64, 3, 3), 1),    # box as large as the weight: dense
        _sparse(FRConv2d(64, 64, 3, padding=1, groups=64), (64, 1, 3, 3), 2),  # depthwise, full box: dense
    )
    x = torch.randn(1, 64, 16, 16)
    plan = plan_factorization(model, (x,))
    assert [c.choice for c in plan] == ["factorized", "dense", "dense"]
    assert plan[0].factorized_macs * 10 < plan[0].dense_macs
    fact, _ = factorize_model(model, plan=plan)
    assert isinstance(fact[0], FactorizedConv2d) and type(fact[1]) is nn.Conv2d
    with torch.no_grad():
        torch.testing.assert_close(fact(x), model(x), atol=1e-3, rtol=1e-4)


@pytest.mark.slow
def test_unet_factorizes_exactly(unet_model) -> None:  # type: ignore[no-untyped-def]
    x = torch.rand(1, 3, 64, 96)
    fact, plan = factorize_model(unet_model, (x,))
    assert sum(c.choice == "factorized" for c in plan) >= 20
    with torch.no_grad():
        a, b = unet_model(x), fact(x)
    err = float((a - b).abs().max())
    assert err / float(a.abs().max()) < 1e-4
    # the mask agrees wherever the two classes are further apart than the float32 error allows
    top2 = a.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 2 * err
    assert bool(clear.float().mean() > 0.99)
    assert bool((a.argmax(1) == b.argmax(1))[clear].all())


@pytest.mark.slow
def test_convert_factorized_all_targets(tmp_path: Path) -> None:
    from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
    from frlite.converter.core.manifest import read_manifest
    from frlite.converter.core.shape_spec import parse_input_shape
    from frlite.runtimes.loader import open_artifact
    from frlite.converter.models.model_spec import build_model

    out = tmp_path / "out"
    convert(ConvertRequest("tests.models.small_fr:classifier", None, [parse_input_shape("input:1x3x32x32")], out,
                           modes=["factorized"], targets=["onnx", "ort-mobile", "tflite-cpu", "tflite-gpu", "tflite-nnapi"],
                           precisions=["fp32", "fp16"]))
    m = read_manifest(out)
    for art in (a for a in m.artifacts if a.runtime == "onnxruntime"):  # ORT's NCHWc pass slows this form down
        assert art.session_options == {"graph_optimization_level": "extended"}
        session = open_artifact(out, art).inner.session  # type: ignore[attr-defined]
        assert session.get_session_options().graph_optimization_level.name == "ORT_ENABLE_EXTENDED"
    assert {c["choice"] for c in m.factorization} <= {"factorized", "dense"} and len(m.factorization) == 5
    x = np.random.default_rng(5).random((1, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        ref = build_model("tests.models.small_fr:classifier")(torch.from_numpy(x)).numpy()
    for art in m.artifacts:
        got = open_artifact(out, art).run({"input": x})["output"]
        limit = 1e-4 if art.precision == "fp32" else 2e-2
        assert float(np.abs(got - ref).max()) / float(np.abs(ref).max()) <= limit, art.path
    gpu = next(a for a in m.artifacts if a.target == "tflite-gpu" and a.precision == "fp32")
    import json

    assert json.loads((out / gpu.extra_files["compat_json"]).read_text())["all_delegated"]


def _xnnpack_partitions(path: Path) -> int:
    """How many pieces XNNPACK (LiteRT's default CPU delegate) takes; 1 = the whole graph."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    return sum(op["op_name"] == "DELEGATE" for op in it._get_ops_details())


@pytest.mark.slow
def test_convert_factorized_unet_small_fused_norms_all_delegated(tmp_path: Path) -> None:
    """The fused norm's ops (1x1 convs, Mul, Mean, Rsqrt) go through onnx2tf, match PyTorch in every
    file, every op of the TFLite file is taken by the GPU and NNAPI delegates, and XNNPACK takes the
    whole graph in fp32 and fp16 (an fp16 filter with an fp32 bias once split it into 46 pieces)."""
    import json

    from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
    from frlite.converter.core.manifest import read_manifest
    from frlite.converter.models.model_spec import build_model
    from frlite.converter.core.shape_spec import parse_input_shape
    from frlite.runtimes.loader import open_artifact

    out = tmp_path / "out"
    spec = "tests.models.small_fr:unet_small"
    convert(ConvertRequest(spec, None, [parse_input_shape("input:1x3x36x45")], out, modes=["factorized"],
                           targets=["onnx", "tflite-cpu", "tflite-gpu", "tflite-nnapi"], precisions=["fp32", "fp16"]))
    m = read_manifest(out)
    assert sum(bool(c["fused_norm"]) for c in m.factorization) == 18
    x = np.random.default_rng(7).random((1, 3, 36, 45), dtype=np.float32)  # 45 wide: the decoder pads
    with torch.no_grad():
        ref = build_model(spec)(torch.from_numpy(x)).numpy()
    for art in m.artifacts:
        got = open_artifact(out, art).run({"input": x})["output"]
        limit = 1e-4 if art.precision == "fp32" else 2e-2
        assert float(np.abs(got - ref).max()) / float(np.abs(ref).max()) <= limit, art.path
        if art.target in ("tflite-gpu", "tflite-nnapi"):
            compat = json.loads((out / art.extra_files["compat_json"]).read_text())
            assert compat["all_delegated"], (art.target, art.precision, compat["fallback"])
        if art.target == "tflite-cpu":
            assert _xnnpack_partitions(out / art.path) == 1, art.path
