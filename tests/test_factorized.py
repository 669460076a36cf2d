"""--mode factorized: FR layers as an exact low-rank product, chosen per layer by a cost model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from converter.factorized import (FactorizedConv2d, FactorizedConvTranspose2d, FactorizedLinear, factorize_model,
                                  plan_factorization)
from converter.fr_layers import FRConv2d, FRConvTranspose2d, FRLinear


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


def test_unet_factorizes_exactly(unet_model) -> None:  # type: ignore[no-untyped-def]
    x = torch.rand(1, 3, 64, 96)
    fact, plan = factorize_model(unet_model, (x,))
    assert sum(c.choice == "factorized" for c in plan) >= 20
    with torch.no_grad():
        a, b = unet_model(x), fact(x)
    assert float((a - b).abs().max()) / float(a.abs().max()) < 1e-4
    assert bool((a.argmax(1) == b.argmax(1)).all())


def test_convert_factorized_all_targets(tmp_path: Path) -> None:
    from converter.convert_pipeline import ConvertRequest, convert
    from converter.manifest import read_manifest
    from converter.shape_spec import parse_input_shape
    from runtimes.loader import open_artifact
    from converter.model_spec import build_model

    out = tmp_path / "out"
    convert(ConvertRequest("tests.models.small_fr:classifier", None, [parse_input_shape("input:1x3x32x32")], out,
                           modes=["factorized"], targets=["onnx", "tflite-cpu", "tflite-gpu", "tflite-nnapi"],
                           precisions=["fp32", "fp16"]))
    m = read_manifest(out)
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
