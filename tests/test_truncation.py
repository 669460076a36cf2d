"""The authors' zigzag ranking and dynamic tail truncation, and a tiny FR training run."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from frlite.converter.fr.fr_layers import FRConv2d, FRLinear
from frlite.converter.fr.truncation import TruncationSchedule
from frlite.converter.fr.zigzag import zigzag_ranks


@pytest.mark.parametrize("shape", [(4, 3, 3, 3), (16, 8, 3, 3), (5, 7, 2, 2), (2, 64, 1, 1)])
def test_zigzag_ranks_equal_the_authors_package(shape: tuple[int, ...]) -> None:
    frereg = pytest.importorskip("frereg")  # installed from the lock; a skip here is a setup bug
    theirs = frereg.ZIdx2Int(frereg.getZIdx_4d(torch.empty(shape)))
    torch.testing.assert_close(zigzag_ranks(shape), theirs.to(torch.int64), atol=0, rtol=0)


def test_zigzag_order_is_l1_shell_then_lexicographic() -> None:
    shape = (4, 5, 3)
    ranks = zigzag_ranks(shape)
    idx = sorted(((i, j, k) for i in range(4) for j in range(5) for k in range(3)),
                 key=lambda t: (sum(t), t))
    assert [tuple(int(v) for v in (ranks == r).nonzero()[0]) for r in range(len(idx))] == idx
    assert ranks[0, 0, 0] == 0 and ranks.max() == ranks.numel() - 1


def test_schedule_decays_to_minnum() -> None:
    s = TruncationSchedule(numel=9216, minrate=0.001, droprate=0.1)
    assert s.minnum == 127
    assert s.step() == 9216  # first call keeps everything
    thresholds = [s.step() for _ in range(200)]
    assert thresholds == sorted(thresholds, reverse=True)
    assert thresholds[-1] == 127
    assert TruncationSchedule(numel=10_000_000, minrate=0.001).minnum == 10_000
    assert TruncationSchedule(numel=100, protect=255).minnum == 255


@pytest.mark.slow
def test_tiny_fr_model_trains_to_minnum_plus_one() -> None:
    """A few steps of FR training on synthetic data: loss falls, each layer keeps minnum + 1."""
    torch.manual_seed(0)
    teacher = nn.Sequential(FRConv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 1))
    with torch.no_grad():  # a low-frequency teacher the truncated student can represent
        teacher[0].weight.zero_()
        teacher[0].weight[:3, :3, :2, :2] = torch.randn(3, 3, 2, 2)
    student = nn.Sequential(FRConv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 1))
    head = FRLinear(192, 32)
    head_teacher = FRLinear(192, 32)
    with torch.no_grad():
        head_teacher.weight.zero_()
        head_teacher.weight[:4, :8] = torch.randn(4, 8)
    layers = [student[0], head]
    for layer in layers:
        layer.enable_truncation(minrate=0.001, droprate=0.1)
    opt = torch.optim.Adam(list(student.parameters()) + list(head.parameters()), lr=1e-2)
    x = torch.randn(32, 3, 8, 8)
    y = teacher(x).detach()
    y_head = head_teacher(x.reshape(32, 192)).detach()
    losses = []
    for _ in range(120):
        opt.zero_grad()
        loss = nn.functional.mse_loss(student(x), y) + nn.functional.mse_loss(head(x.reshape(32, 192)), y_head)
        loss.backward()
        # coefficients outside the mask get no gradient
        for layer in layers:
            assert layer._mask is not None
            assert torch.all(layer.weight.grad[layer._mask == 0] == 0)
        opt.step()
        losses.append(loss.item())
    for layer in layers:
        sched = layer.truncation.schedule
        assert layer.truncation.kept_count() == sched.minnum + 1
        layer.prune_()
        assert layer.kept_count() <= sched.minnum + 1
    assert student[0].truncation.schedule.minnum == 127 and head.truncation.schedule.minnum == 255
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
