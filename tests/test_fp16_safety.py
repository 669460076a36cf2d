"""fp16 arithmetic: the emulation, and the exact rewrites that keep every form finite and precise in it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from frlite.converter.fr.batch_stat_norm import BatchStatNorm2d, clone_for_export
from frlite.converter.passes.convert_pipeline import dense_export_module
from frlite.converter.forms.factorized import FactorizedConv2d, FactorizedConvStatNorm2d, factorize_model
from frlite.converter.forms.fp16_rescale import apply_prescales, make_fp16_safe, power_of_two_scale, prescale_stat_norms
from frlite.converter.fr.fr_layers import FRConv2d
from frlite.converter.forms.stat_conditioning import condition_fused_norms
from frlite.runtimes.fp16_emulation import FP16_MAX, run_fp16
from tests.models.fp16_overflow import fp16_overflow_net

SPEC = "tests.models.fp16_overflow:fp16_overflow_net"


def _images(seed: int, hw: tuple[int, int] = (48, 64)) -> torch.Tensor:
    return torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(seed))


def _agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(1) == b.argmax(1)).float().mean())


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) / float(b.abs().max())


# ---- the emulation ----
def test_emulation_rounds_each_op_and_names_the_first_overflow() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4, bias=False)
            self.b = nn.Linear(4, 4, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x) * 3.0)

    net = Net().eval()
    with torch.no_grad():
        net.a.weight.copy_(torch.eye(4) * 100.0)
        net.b.weight.copy_(torch.eye(4) * 1000.0)
    x = torch.tensor([[0.1, 0.2, 0.3, 1e-3]])
    run = run_fp16(net, x)
    # by hand: each op's result rounded to fp16; 0.3 * 100 * 3 * 1000 = 9e4 overflows in b
    h = (x.half().float() * 100.0).half().float()
    h = (h * 3.0).half().float()
    expect = (h * 1000.0).half().float()
    assert torch.equal(run.outputs[0], expect)
    assert run.first_overflow is not None
    assert run.first_overflow.module == "b" and run.first_overflow.op == "linear"
    assert run.first_overflow.max_abs == pytest.approx(90_000, rel=1e-3)
    # the module itself is untouched and finite in fp32
    with torch.no_grad():
        assert torch.isfinite(net(x)).all() and net.a.weight[0, 0] == 100.0
    assert run_fp16(net, x * 1e-3).first_overflow is None


# ---- exactness of the rewrites ----
def test_prescaled_norm_is_exact_against_torch_batchnorm() -> None:
    """Powers of two move only the exponent: float64 to 1e-12, float32 to 1e-6 of torch's BatchNorm."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 6, 9, 11, generator=g) * torch.logspace(-3, 4, 6)[None, :, None, None] + 50).double()
    for eps in (1e-5, 0.5):
        norm = nn.BatchNorm2d(6, eps=eps, affine=False, track_running_stats=False).double().eval()
        port = BatchStatNorm2d(norm)
        report = prescale_stat_norms(nn.Sequential(port), (x,))
        assert port.prescale is not None and float(port.prescale.max()) > 1 > float(port.prescale.min())
        assert torch.equal(torch.log2(port.prescale), torch.round(torch.log2(port.prescale)))
        with torch.no_grad():
            assert _rel_err(port(x), norm(x)) < 1e-12
        assert report.norms[0].max_scaled_square <= 16.0 ** 2


def test_power_of_two_scale_lands_deviations_in_range() -> None:
    dev = torch.tensor([0.0, 1e-4, 3.0, 16.0, 17.0, 1e5], dtype=torch.float64)
    c = power_of_two_scale(dev)
    assert c[0] == 1.0
    scaled = (c * dev)[1:]
    assert bool(((scaled > 8.0) & (scaled <= 16.0)).all()), scaled


def test_conditioned_fused_norm_is_exact_in_float64_on_other_inputs() -> None:
    """Whitening from one input, checked on another: same layer to 1e-10 in float64."""
    torch.manual_seed(0)
    layer = FRConv2d(12, 40, 3, padding=1, bias=True).double().eval()
    with torch.no_grad():
        w = layer.weight
        box = w[:4, :4, :2, :3].clone()
        w.zero_()
        w[:4, :4, :2, :3] = box * 2000.0  # outputs ~1e3, as the UNet's FR convs
        layer.bias.mul_(100.0)
    norm = nn.BatchNorm2d(40, affine=True, track_running_stats=False).double().eval()
    with torch.no_grad():
        norm.weight.copy_(torch.randn(40))
        norm.bias.copy_(torch.randn(40))
    fused = FactorizedConvStatNorm2d(FactorizedConv2d(layer), BatchStatNorm2d(norm))
    model = nn.Sequential(fused)
    example = torch.rand(1, 12, 15, 17, dtype=torch.float64)
    report = condition_fused_norms(model, (example,))
    assert report.layers[0].applied and fused.conv.core_bias is not None
    assert report.layers[0].max_pair_product > FP16_MAX > 100 * report.layers[0].max_pair_product_after
    x = torch.randn(2, 12, 13, 14, dtype=torch.float64) * 2 + 0.5
    with torch.no_grad():
        assert _rel_err(model(x), norm(layer(x))) < 1e-10


# ---- a model that fp16 breaks, before and after ----
@pytest.mark.parametrize("form", ["dense", "idct", "factorized"])
def test_overflowing_model_is_fixed_by_the_rewrites(form: str) -> None:
    """Before: the norms' squares overflow fp16 (the test can fail); after: finite, >= 99.9% of the
    pixels agree with fp32 and the logits within 1% of their scale, on inputs other than the example."""
    model = fp16_overflow_net()
    example = (_images(0),)

    def build(safe: bool) -> nn.Module:
        if form == "factorized":
            module, plan = factorize_model(model, example, fp16_safe=safe)
            assert sum(bool(c.fused_norm) for c in plan) == 2
            return module
        module = dense_export_module(model) if form == "dense" else clone_for_export(model)
        if safe:
            report = prescale_stat_norms(module, example)
            assert len(report.norms) == 2 and not report.unsafe
        return module

    before, after = build(False), build(True)
    for seed in (1, 2):
        x = _images(seed)
        with torch.no_grad():
            ref = model(x)
            assert _rel_err(after(x), ref) < 1e-5  # the rewrite is exact in fp32 too
        bad = run_fp16(before, x)
        assert bad.first_overflow is not None and bad.first_overflow.op == "mul"
        assert bad.first_overflow.max_abs > FP16_MAX
        assert not torch.isfinite(bad.outputs[0]).all() or _rel_err(bad.outputs[0], ref) > 0.5
        good = run_fp16(after, x)
        assert good.first_overflow is None
        assert _agreement(good.outputs[0], ref) >= 0.999
        assert _rel_err(good.outputs[0], ref) < 1e-2


def test_norm_whose_input_overflows_is_reported_unsafe() -> None:
    model = fp16_overflow_net()
    with torch.no_grad():
        model.body[3].weight.mul_(100.0)  # the second conv's output itself reaches ~1e5
    module = dense_export_module(model)
    report = prescale_stat_norms(module, (_images(0),))
    assert [n.name for n in report.unsafe] == ["body.4"]
    assert "body.4" in report.summary() and "UNSAFE" in report.summary()


def test_prescales_carry_over_to_another_copy() -> None:
    model = fp16_overflow_net()
    first = dense_export_module(model)
    report = prescale_stat_norms(first, (_images(0),))
    second = clone_for_export(model)
    assert apply_prescales(second, report) == 2
    for (name, a), (_, b) in zip(first.named_modules(), second.named_modules()):
        if isinstance(a, BatchStatNorm2d):
            assert torch.equal(a.prescale, b.prescale), name


def test_make_fp16_safe_reports_both_rewrites() -> None:
    model = fp16_overflow_net()
    module, _ = factorize_model(model, (_images(0),), fp16_safe=False)
    rewrites = make_fp16_safe(module, (_images(0),))
    data = rewrites.as_json()
    assert len(data["fused_norm_conditioning"]) == 2 and data["unsafe"] == []
    assert all(c["applied"] and c["max_pair_product_after"] < 100 for c in data["fused_norm_conditioning"])
    json.dumps(data)


# ---- through the converters: the files keep the safe form ----
def _largest_computed_values(path: Path, x_nhwc: np.ndarray) -> dict[str, float]:
    """Every float tensor an op of the .tflite computes, after one run on the builtin kernels (no
    XNNPACK, so every intermediate is kept): "index op" -> max |value|."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x_nhwc)
    it.invoke()
    out = {}
    for op in it._get_ops_details():
        for idx in op["outputs"]:
            v = it.get_tensor(idx)
            if v.dtype == np.float32 and v.size:
                out[f"{op['index']} {op['op_name']}"] = float(np.abs(v).max())
    return out


@pytest.mark.slow
def test_converted_files_keep_the_safe_form(tmp_path: Path) -> None:
    """onnx2tf and the TFLite converter fold and reorder; after them no tensor any file computes
    comes near fp16's range on a fresh input, although its conv outputs are ~1e3 (squares ~1e6)."""
    from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
    from frlite.converter.core.manifest import read_manifest
    from frlite.converter.core.shape_spec import parse_input_shape

    out = tmp_path / "out"
    convert(ConvertRequest(SPEC, None, [parse_input_shape("input:1x3x48x64")], out, modes=["dense", "idct", "factorized"],
                           targets=["tflite-cpu"], precisions=["fp32", "fp16"]))
    m = read_manifest(out)
    assert set(m.fp16_rewrites) == {"dense", "factorized"}
    assert len(m.fp16_rewrites["dense"]["norm_prescale"]) == 2 and m.fp16_rewrites["dense"]["unsafe"] == []
    assert [c["name"] for c in m.fp16_rewrites["factorized"]["fused_norm_conditioning"]] == ["body.0", "body.3"]
    x = _images(5).numpy().transpose(0, 2, 3, 1).copy()
    for art in m.artifacts:
        values = _largest_computed_values(out / art.path, x)
        worst = max(values.items(), key=lambda kv: kv[1])
        if art.mode == "factorized":  # whitened: every statistic and conv output is O(1) .. O(10)
            assert worst[1] < 100, (art.path, worst)
        else:                         # the conv outputs stay ~1e3, but no square of them is formed
            assert 500 < worst[1] < FP16_MAX / 4, (art.path, worst)
            # the rewrite lives in the norm: each FR layer's output is still found (parity --layers)
            assert sorted(art.layer_outputs) == ["body.0.weight", "body.3.weight", "body.6.weight"], art.path


# ---- the authors' UNet ----
def _fixture(i: int, hw: tuple[int, int] | None = None) -> tuple[torch.Tensor, np.ndarray]:
    import torch.nn.functional as F

    from frlite.converter.models.segmentation import load_image, load_mask
    from tests.conftest import FIXTURES

    x = torch.from_numpy(load_image(FIXTURES / f"in{i:04d}.png"))
    truth = load_mask(FIXTURES / f"gt{i:04d}.png")
    if hw is not None:
        x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False)
        truth = F.interpolate(torch.from_numpy(truth)[None, None].float(), size=hw).numpy()[0, 0] > 0.5
    return x, truth


@pytest.mark.slow
def test_unet_factorized_fp16_safe_at_full_size(unet_model) -> None:  # type: ignore[no-untyped-def]
    """640x959, two fixture images (the first, and the hardest by README Dice; 47 s per image): overflow
    before; after, >= 99.9% of the pixels agree with PyTorch fp32 and Dice is within 1e-3 of the
    fixture README's."""
    from frlite.converter.models.segmentation import dice
    from tests.conftest import README_DICE

    example = (torch.rand(1, 3, 640, 959, generator=torch.Generator().manual_seed(0)),)  # as convert's seeded sample
    before, plan = factorize_model(unet_model, example, fp16_safe=False)
    after, _ = factorize_model(unet_model, example, plan=plan)  # the plan's forward of the FR model runs once
    for i in (0, 2):
        x, truth = _fixture(i)
        with torch.no_grad():
            ref = after(x)  # exact rewrite: the fp32 reference
        if i == 0:
            bad = run_fp16(before, x)
            assert bad.first_overflow is not None and bad.first_overflow.module == "inc.double_conv.3"
            assert _agreement(bad.outputs[0], ref) < 0.9
        good = run_fp16(after, x)
        assert good.first_overflow is None
        assert _agreement(good.outputs[0], ref) >= 0.999, i
        mask = good.outputs[0].argmax(1)[0].numpy() == 1
        assert abs(dice(mask, truth) - README_DICE[f"{i:04d}"]) < 1e-3, i


@pytest.mark.slow
@pytest.mark.parametrize("form", ["dense", "idct"])
def test_unet_dense_and_idct_fp16_safe(unet_model, form: str) -> None:  # type: ignore[no-untyped-def]
    """320x480 (the dense emulation takes ~40 s per image at this size, ~150 s at 640x959; the
    full-size figures are in bench/bench_fp16_safety.py): >= 99.9% agreement, Dice within 1e-3."""
    from frlite.converter.models.segmentation import dice

    hw = (320, 480)
    example = (torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(0)),)
    module = dense_export_module(unet_model) if form == "dense" else clone_for_export(unet_model)
    report = prescale_stat_norms(module, example)
    assert len(report.norms) == 18 and not report.unsafe
    x, truth = _fixture(1, hw)
    with torch.no_grad():
        ref = unet_model(x)
    good = run_fp16(module, x)
    assert good.first_overflow is None
    assert _agreement(good.outputs[0], ref) >= 0.999
    ref_dice = dice(ref.argmax(1)[0].numpy() == 1, truth)
    assert abs(dice(good.outputs[0].argmax(1)[0].numpy() == 1, truth) - ref_dice) < 1e-3
