"""The authors' dynamic tail truncation, the schedule that makes a model FR-sparse in training.

Each forward call (training or not, as in their code) the layer keeps the coefficients whose
zigzag rank is <= threshold, with threshold = max(keeprate * numel, minnum), and then decays
keeprate towards minrate: keeprate -= droprate * (keeprate - minrate). minnum is
max(round(numel * minrate), 127) for convs and max(..., 255) for Linear, so a fully trained
layer keeps minnum + 1 coefficients.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from frlite.converter.fr.zigzag import zigzag_ranks

CONV_PROTECT = 127
LINEAR_PROTECT = 255


@dataclass
class TruncationSchedule:
    """State of one layer's tail truncation; advanced by `step()` once per forward call."""

    numel: int
    minrate: float = 0.001
    droprate: float = 0.1
    protect: int = CONV_PROTECT
    keeprate: float = 1.0
    minnum: int = field(init=False)

    def __post_init__(self) -> None:
        self.minnum = max(round(self.numel * self.minrate), self.protect)

    def threshold(self) -> float:
        return max(self.keeprate * self.numel, float(self.minnum))

    def step(self) -> float:
        """Return this call's threshold, then decay keeprate (their order of operations)."""
        thr = self.threshold()
        self.keeprate -= self.droprate * (self.keeprate - self.minrate)
        return thr


class TruncationMask:
    """Zigzag ranks of a weight shape plus the schedule; yields the 0/1 mask per forward.

    The ranks tensor is as large as the weight, so it is built only when truncation is enabled
    (training), never for inference.
    """

    def __init__(self, shape: tuple[int, ...], schedule: TruncationSchedule) -> None:
        self.shape = shape
        self.schedule = schedule
        self.ranks = zigzag_ranks(shape)

    def next_mask(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        thr = self.schedule.step()
        return (self.ranks.to(device) <= thr).to(dtype)

    def kept_count(self) -> int:
        return int((self.ranks <= self.schedule.threshold()).sum())
