"""Models built from the authors' `frereg` package map onto frlite's layers with identical outputs."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from frlite.converter.checkpoints.checkpoint_reader import read_checkpoint
from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d, fr_layers
from frlite.converter.checkpoints.frereg_import import convert_frereg_layers, is_frereg_layer
from frlite.converter.models.model_loading import load_fr_model
from frlite.converter.checkpoints.weights_loader import apply_checkpoint

frereg = pytest.importorskip("frereg")  # pinned in requirements/lock.txt


class FreregNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            frereg.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            frereg.Conv2d(8, 8, 3, stride=2, padding=2, groups=2, dilation=2, bias=False),
            nn.ReLU(),
        )
        self.dec = frereg.ConvTranspose2d(8, 4, 2, stride=2)
        self.head = frereg.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dec(self.enc(x)))


def test_frereg_model_maps_with_identical_outputs() -> None:
    torch.manual_seed(1)
    theirs = FreregNet().eval()
    x = torch.randn(2, 3, 16, 18)
    with torch.no_grad():
        expected = theirs(x)
    ours, count = convert_frereg_layers(FreregNet().eval())
    ours.load_state_dict(theirs.state_dict(), strict=False)  # weights are coefficients in both
    assert count == 4
    assert not any(is_frereg_layer(m) for m in ours.modules())
    kinds = [type(m) for _, m in fr_layers(ours)]
    assert kinds == [FRConv2d, FRConv2d, FRConvTranspose2d, FRConv2d]
    assert ours.enc[2].groups == 2 and ours.enc[2].dilation == (2, 2) and ours.enc[2].bias is None
    with torch.no_grad():
        got = ours(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert float((got - expected).abs().max()) < 1e-5


def test_frereg_root_layer_is_replaced() -> None:
    layer = frereg.Conv2d(2, 3, 3)
    new, count = convert_frereg_layers(layer)
    assert count == 1 and isinstance(new, FRConv2d)
    x = torch.randn(1, 2, 6, 6)
    torch.testing.assert_close(new(x), layer(x), atol=1e-5, rtol=1e-5)


def test_frereg_checkpoint_and_spec_file(tmp_path: Path) -> None:
    """A state_dict saved from a frereg model (with its ZMAT/IDROP buffers) loads via a spec file."""
    torch.manual_seed(2)
    theirs = FreregNet().eval()
    ckpt = tmp_path / "frereg_net.pt"
    torch.save(theirs.state_dict(), ckpt)
    assert any(k.endswith("ZMAT") for k in theirs.state_dict())
    spec_file = tmp_path / "my_model.py"
    spec_file.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_frereg_import import FreregNet
        def build():
            return FreregNet()
    """))
    loaded = load_fr_model(f"{spec_file}:build", ckpt)
    x = torch.randn(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), theirs(x), atol=1e-5, rtol=1e-5)
    # and the same checkpoint applied directly to a converted model
    model, _ = convert_frereg_layers(FreregNet())
    apply_checkpoint(model, read_checkpoint(ckpt))
