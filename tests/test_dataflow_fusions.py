"""The factorized form's fusions are found on the traced dataflow of the user's own model.

Each model here is written in a different style (the authors' block classes, a functional forward,
the concat reversed, no padding); none is a class frlite knows. Each checks the count of norm
fusions / up merges, and that the factorized module equals the FR model in float64 (1e-9 relative).
The negative cases (a shared norm, a conv or up-conv output read twice, a non-zero pad, an
untraceable forward) must NOT fuse and must still be exact.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frlite.converter.core.errors import UnsupportedLayerError
from frlite.converter.forms.dataflow_fusions import find_fusions
from frlite.converter.forms.factorized import describe_fusions, factorize_model, plan_factorization
from frlite.converter.forms.merged_up import MergedConvInput, MergedUpProjection
from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d
from tests.models.authors_unet import UNet as AuthorsUNet
from tests.models.small_fr import fr_sparsify


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, affine=False, track_running_stats=False)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) / float(b.abs().max())


def _counts(plan: list) -> tuple[int, int]:
    return sum(bool(c.fused_norm) for c in plan), sum(bool(c.merged_into) for c in plan)


def _check_exact(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, list]:
    """Plan on float32, build in float64 and compare with the FR model in float64."""
    plan = plan_factorization(model, (x,))
    model64 = model.double()
    fact64, _ = factorize_model(model64, plan=plan)
    with torch.no_grad():
        for batch in (x.double(), torch.rand_like(x.double()) * 3 - 1):
            assert _rel_err(fact64(batch), model64(batch)) < 1e-9
    return fact64, plan


# ---- the authors' block structure ----
@pytest.mark.parametrize("hw", [(32, 48), (36, 45)])  # 45 wide: Up pads (odd sizes on the way down)
def test_authors_unet_fuses_all_norms_and_merges_all_ups(hw: tuple[int, int]) -> None:
    model = fr_sparsify(AuthorsUNet(3, 2, base=8), 1)
    fact, plan = _check_exact(model, torch.rand(2, 3, *hw))
    assert _counts(plan) == (18, 4)
    assert {c.name: c.merged_into for c in plan if c.merged_into} == {
        f"up{i}.up.weight": f"up{i}.conv.double_conv.0" for i in range(1, 5)}
    assert not any(n.target is torch.cat for n in fact.graph.nodes)  # no concat left to materialise
    assert all(isinstance(fact.get_submodule(f"up{i}.up"), MergedUpProjection) for i in range(1, 5))


def test_authors_unet_built_from_frereg_layers() -> None:
    """Their UNet with their `frereg` layers: frlite's import swaps the layers, then the same fusions."""
    pytest.importorskip("frereg")  # pinned in requirements/lock.txt
    from frlite.converter.checkpoints.frereg_import import convert_frereg_layers
    from tests.models.authors_unet import authors_unet_frereg

    model, count = convert_frereg_layers(authors_unet_frereg(base=8))
    assert count == 23
    _, plan = _check_exact(fr_sparsify(model, 2), torch.rand(2, 3, 36, 45))
    assert _counts(plan) == (18, 4)


# ---- a functional-style UNet, concat reversed, no padding ----
class FunctionalUNet(nn.Module):
    """Two levels, every op functional in forward, norms as attributes, cat([up, skip])."""

    def __init__(self, w: int = 8) -> None:
        super().__init__()
        self.c1, self.n1 = FRConv2d(3, w, 3, padding=1, bias=False), _bn(w)
        self.c2, self.n2 = FRConv2d(w, 2 * w, 3, padding=1, bias=False), _bn(2 * w)
        self.c3, self.n3 = FRConv2d(2 * w, 4 * w, 3, padding=1, bias=False), _bn(4 * w)
        self.up_a = FRConvTranspose2d(4 * w, 2 * w, 2, stride=2, bias=False)
        self.c4, self.n4 = FRConv2d(4 * w, 2 * w, 3, padding=1, bias=False), _bn(2 * w)
        self.up_b = FRConvTranspose2d(2 * w, w, 2, stride=2, bias=False)
        self.c5, self.n5 = FRConv2d(2 * w, w, 3, padding=1, bias=False), _bn(w)
        self.head = FRConv2d(w, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = F.relu(self.n1(self.c1(x)))
        s2 = F.relu(self.n2(self.c2(F.max_pool2d(s1, 2))))
        b = F.relu(self.n3(self.c3(F.max_pool2d(s2, 2))))
        u = self.up_a(b)
        pad_h, pad_w = s2.shape[2] - u.shape[2], s2.shape[3] - u.shape[3]
        u = F.pad(u, (0, pad_w, 0, pad_h))  # all padding after: another convention than the authors'
        h = F.relu(self.n4(self.c4(torch.cat((u, s2), 1))))       # cat order reversed, dim positional
        h = F.relu(self.n5(self.c5(torch.cat([self.up_b(h), s1], dim=1))))  # no pad at all
        return self.head(h)


@pytest.mark.parametrize("hw", [(16, 24), (18, 26)])  # 18 x 26: the first up-conv's output is padded
def test_functional_unet_reversed_concat(hw: tuple[int, int]) -> None:
    model = fr_sparsify(FunctionalUNet(), 3)
    fact, plan = _check_exact(model, torch.rand(2, 3, *hw))
    assert _counts(plan) == (5, 2)
    assert {c.name: c.merged_into for c in plan if c.merged_into} == {"up_a.weight": "c4", "up_b.weight": "c5"}
    convs = [m for m in fact.modules() if isinstance(m, MergedConvInput)]
    assert len(convs) == 2


# ---- must NOT fuse ----
class SharedNorm(nn.Module):
    """One norm module applied after two convs: fusing it into either would change the other."""

    def __init__(self) -> None:
        super().__init__()
        self.a = FRConv2d(8, 16, 3, padding=1, bias=False)
        self.b = FRConv2d(16, 16, 3, padding=1, bias=False)
        self.norm = _bn(16)
        self.c = FRConv2d(16, 16, 3, padding=1, bias=False)
        self.norm_c = _bn(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm(self.a(x)))
        h = F.relu(self.norm(self.b(h)))
        return self.norm_c(self.c(h))  # the control: this pair does fuse


class ConvReadTwice(nn.Module):
    """A conv output read by its norm and by a residual add; a norm reading a sum."""

    def __init__(self) -> None:
        super().__init__()
        self.a = FRConv2d(8, 16, 3, padding=1, bias=False)
        self.na = _bn(16)
        self.b = FRConv2d(16, 16, 3, padding=1, bias=False)
        self.nb = _bn(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        h = F.relu(self.na(h)) + h         # the conv's output has a second reader
        return self.nb(self.b(h) + h)      # the norm reads a sum, not the conv alone


@pytest.mark.parametrize("cls, expected", [(SharedNorm, {"c": "norm_c"}), (ConvReadTwice, {})])
def test_shared_norm_or_twice_read_conv_does_not_fuse(cls: type, expected: dict) -> None:
    model = fr_sparsify(cls(), 4)
    assert find_fusions(model).norms == expected
    _, plan = _check_exact(model, torch.rand(2, 8, 12, 12))
    assert {c.name.removesuffix(".weight"): c.fused_norm for c in plan if c.fused_norm} == expected


class UpReadTwice(nn.Module):
    """Up-convs that must keep their concat: one output also summed elsewhere, one padded with a
    non-zero value, one with a bias; one concatenated on H instead of channels. A control merges."""

    def __init__(self, w: int = 8) -> None:
        super().__init__()
        self.ups = nn.ModuleList(FRConvTranspose2d(2 * w, w, 2, stride=2, bias=i == 2) for i in range(5))
        self.convs = nn.ModuleList(FRConv2d(2 * w, w, 3, padding=1, bias=False) for _ in range(5))
        self.hconv = FRConv2d(w, w, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        u0 = self.ups[0](x)
        y0 = self.convs[0](torch.cat([skip, u0], dim=1)) + u0                              # read twice
        y1 = self.convs[1](torch.cat([skip, F.pad(self.ups[1](x), [0, 0, 0, 0], value=1.0)], dim=1))  # pad 1
        y2 = self.convs[2](torch.cat([skip, self.ups[2](x)], dim=1))                       # bias
        y3 = self.hconv(torch.cat([skip, self.ups[3](x)], dim=2))[:, :, :skip.shape[2]]    # cat on H
        y4 = self.convs[4](torch.cat([skip, self.ups[4](x)], dim=1))                       # control
        return y0 + y1 + y2 + y3 + y4


def test_up_conv_read_twice_or_not_zero_padded_keeps_its_concat() -> None:
    model = fr_sparsify(UpReadTwice(), 5)
    x, skip = torch.rand(2, 16, 6, 8), torch.rand(2, 8, 12, 16)
    assert find_fusions(model).merges == {"ups.4": "convs.4"}
    plan = plan_factorization(model, (x, skip))
    assert {c.name: c.merged_into for c in plan if c.merged_into} == {"ups.4.weight": "convs.4"}
    model64 = model.double()
    fact64, _ = factorize_model(model64, plan=plan)
    with torch.no_grad():
        assert _rel_err(fact64(x.double(), skip.double()), model64(x.double(), skip.double())) < 1e-9


class DataDependent(nn.Module):
    """A forward with value-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = FRConv2d(8, 16, 3, padding=1, bias=False)
        self.norm = _bn(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.a(x))
        return h * 2 if x.amax() > 1 else h  # both branches run in _check_exact


def test_untraceable_model_gets_no_fusion_and_a_note() -> None:
    model = fr_sparsify(DataDependent(), 6)
    sites = find_fusions(model)
    assert sites.norms == {} and sites.merges == {} and "torch.fx cannot trace" in sites.note
    _, plan = _check_exact(model, torch.rand(2, 8, 12, 12))
    assert _counts(plan) == (0, 0)
    assert "torch.fx cannot trace" in describe_fusions(model, plan)
    assert describe_fusions(fr_sparsify(SharedNorm(), 4), plan_factorization(fr_sparsify(SharedNorm(), 4), (torch.rand(1, 8, 8, 8),))) \
        == "fusions found on the traced graph: 1 batch-statistics norms fused, 0 upsamplings merged"


class SkipReadTwice(FunctionalUNet):
    """Same layers and names as FunctionalUNet, but the up-conv's output is also added to the output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = F.relu(self.n1(self.c1(x)))
        s2 = F.relu(self.n2(self.c2(F.max_pool2d(s1, 2))))
        b = F.relu(self.n3(self.c3(F.max_pool2d(s2, 2))))
        u = self.up_a(b)
        h = F.relu(self.n4(self.c4(torch.cat((u, s2), 1)))) + u
        h = F.relu(self.n5(self.c5(torch.cat([self.up_b(h), s1], dim=1))))
        return self.head(h)


def test_plan_from_another_model_is_refused() -> None:
    x = torch.rand(1, 3, 16, 24)
    plan = plan_factorization(fr_sparsify(FunctionalUNet(), 3), (x,))
    other = fr_sparsify(SkipReadTwice(), 3)
    assert find_fusions(other).merges == {"up_b": "c5"}
    with pytest.raises(UnsupportedLayerError, match="another model"):
        factorize_model(other, plan=plan)


def test_forward_set_on_the_instance_is_not_traced() -> None:
    """fx would trace the class's forward, not the one the model runs: no fusion, and still exact."""
    model = fr_sparsify(FunctionalUNet(), 3)
    model.forward = lambda x: model.head(model.c5(torch.cat([x, x], dim=1)))  # type: ignore[method-assign]
    assert "torch.fx cannot trace" in find_fusions(model).note
    _, plan = _check_exact(model, torch.rand(1, 8, 16, 24))
    assert _counts(plan) == (0, 0)


# ---- the authors' checkpoint in their block structure ----
def test_authors_unet_with_their_checkpoint_plan_fuses_18_norms_and_merges_4_ups(unet_archive: Path) -> None:
    from frlite.converter.models.model_loading import load_fr_model

    spec = f"{Path(__file__).parent / 'models' / 'authors_unet.py'}:authors_unet"
    model = load_fr_model(spec, unet_archive).model
    plan = plan_factorization(model, (torch.rand(1, 3, 64, 96),))
    assert _counts(plan) == (18, 4)
    assert describe_fusions(model, plan) == \
        "fusions found on the traced graph: 18 batch-statistics norms fused, 4 upsamplings merged"
    fact, _ = factorize_model(model, plan=plan)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert _rel_err(fact(x), model(x)) < 1e-3  # float32; exactness is checked in float64 above
