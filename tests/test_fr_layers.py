"""FR layers behave exactly like the torch layer fed with the inverse-DCT of their coefficients."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F
from torch import nn

from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d, FRLinear, fr_layers, layer_config


def _spatial(layer: nn.Module) -> torch.Tensor:
    w = layer.weight.detach().double().numpy()
    return torch.from_numpy(scipy.fft.idctn(w, type=2, norm="ortho")).float()


CONV_CASES = [
    dict(in_channels=3, out_channels=8, kernel_size=3),
    dict(in_channels=4, out_channels=6, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), bias=False),
    dict(in_channels=6, out_channels=6, kernel_size=3, groups=6, padding=1),          # depthwise
    dict(in_channels=8, out_channels=4, kernel_size=3, groups=2, dilation=2, padding=2),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding="same", padding_mode="reflect"),
    dict(in_channels=4, out_channels=5, kernel_size=1),
    dict(in_channels=3, out_channels=4, kernel_size=3, padding=1, padding_mode="circular", stride=2),
]


@pytest.mark.parametrize("cfg", CONV_CASES, ids=range(len(CONV_CASES)))
def test_fr_conv2d_equals_conv2d_with_idct_weight(cfg: dict) -> None:
    fr = FRConv2d(**cfg)
    ref = nn.Conv2d(**cfg)
    with torch.no_grad():
        ref.weight.copy_(_spatial(fr))
        if fr.bias is not None:
            ref.bias.copy_(fr.bias)
    x = torch.randn(2, cfg["in_channels"], 11, 13)
    torch.testing.assert_close(fr(x), ref(x), atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(fr(x), ref(x), atol=1e-5, rtol=1e-5)  # cached box path
    torch.testing.assert_close(fr.to_dense()(x), ref(x), atol=1e-5, rtol=1e-5)
    assert layer_config(fr)["groups"] == cfg.get("groups", 1)


CONVT_CASES = [
    dict(in_channels=8, out_channels=4, kernel_size=2, stride=2, bias=False),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(in_channels=6, out_channels=6, kernel_size=3, stride=2, groups=3, output_padding=1, padding=1),
    dict(in_channels=4, out_channels=4, kernel_size=(3, 2), stride=(1, 2), dilation=2),
]


@pytest.mark.parametrize("cfg", CONVT_CASES, ids=range(len(CONVT_CASES)))
def test_fr_conv_transpose2d_equals_torch(cfg: dict) -> None:
    fr = FRConvTranspose2d(**cfg)
    ref = nn.ConvTranspose2d(**cfg)
    with torch.no_grad():
        ref.weight.copy_(_spatial(fr))
        if fr.bias is not None:
            ref.bias.copy_(fr.bias)
    x = torch.randn(1, cfg["in_channels"], 7, 9)
    torch.testing.assert_close(fr(x), ref(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fr.to_dense()(x), ref(x), atol=1e-5, rtol=1e-5)


def test_conv_transpose_output_size_argument() -> None:
    fr = FRConvTranspose2d(4, 4, 3, stride=2, padding=1)
    x = torch.randn(1, 4, 5, 5)
    assert fr(x, output_size=[10, 10]).shape[-2:] == (10, 10)
    assert fr(x).shape[-2:] == (9, 9)


def test_fr_linear_equals_linear() -> None:
    fr = FRLinear(17, 9)
    ref = nn.Linear(17, 9)
    with torch.no_grad():
        ref.weight.copy_(_spatial(fr))
        ref.bias.copy_(fr.bias)
    x = torch.randn(3, 5, 17)
    torch.testing.assert_close(fr(x), ref(x), atol=1e-5, rtol=1e-5)


def test_cache_follows_weight_changes() -> None:
    fr = FRConv2d(3, 4, 3, bias=False)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        before = fr(x).clone()
        fr.weight.mul_(2.0)
        after = fr(x)
        torch.testing.assert_close(after, 2.0 * before, atol=1e-5, rtol=1e-5)
        fr.load_state_dict({"weight": torch.zeros_like(fr.weight)})
        assert torch.count_nonzero(fr(x)) == 0


def test_load_spatial_weight_round_trip() -> None:
    conv = nn.Conv2d(5, 7, 3)
    fr = FRConv2d(5, 7, 3)
    fr.load_spatial_weight_(conv.weight.detach())
    torch.testing.assert_close(fr.spatial_weight().detach(), conv.weight.detach(), atol=1e-6, rtol=0)


def test_box_reconstruction_used_under_no_grad_matches_full() -> None:
    fr = FRConv2d(64, 32, 3, bias=False)
    with torch.no_grad():
        fr.weight.zero_()
        fr.weight[:4, :3, :2, :3] = torch.randn(4, 3, 2, 3)
        boxed = fr.spatial_weight()
    full = fr.spatial_weight().detach()  # grad mode: full IDCT
    assert fr.kept_box() == (4, 3, 2, 3) and fr.kept_count() == 72
    torch.testing.assert_close(boxed, full, atol=1e-6, rtol=0)


def test_gradients_reach_coefficients_and_fr_layers_are_listed() -> None:
    model = nn.Sequential(FRConv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), FRLinear(4 * 6 * 6, 2))
    out = model(torch.randn(2, 3, 8, 8)).sum()
    out.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert [n for n, _ in fr_layers(model)] == ["0", "3"]
    assert "kept=" in repr(model[0])
    # F.conv2d sanity: FR layer under grad equals conv with the explicit IDCT weight
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(model[0](x), F.conv2d(x, _spatial(model[0]), model[0].bias), atol=1e-5, rtol=1e-5)
    assert np.isfinite(out.item())
