"""The op sequence that rebuilds one weight from its coefficient box, for any graph format.

Both the TFLite and the ONNX idct forms use it. A builder supplies two ops:
`expand_last(t, n, k)` contracts the last axis (size k) with the basis B_n[:, :k] (size n), and
`transpose(t, perm)`. Axes 0..d-1 are expanded in turn, each while it is the last axis: before
step i the layout is (S_0..S_{i-1}, k_{i+1}..k_{d-1}, k_i), so the box is stored as
(k_1..k_{d-1}, k_0) and the last step needs no transpose: d contractions + (d-1) transposes.
"""
from __future__ import annotations

from typing import Protocol, TypeVar

import numpy as np

T = TypeVar("T")


class RebuildBuilder(Protocol[T]):
    def expand_last(self, t: T, n: int, k: int) -> T: ...

    def transpose(self, t: T, perm: list[int]) -> T: ...


def stored_box(coeff_box: np.ndarray) -> np.ndarray:
    """The box in the layout `rebuild_weight` starts from: axis 0 moved last."""
    return np.moveaxis(coeff_box, 0, -1)


def rebuild_weight(builder: RebuildBuilder[T], t: T, shape: tuple[int, ...], box: tuple[int, ...]) -> T:
    rank = len(shape)
    for i in range(rank):
        n, k = shape[i], box[i]
        if not (n == 1 and k == 1):  # B_1 = [[1]]
            t = builder.expand_last(t, n, k)
        if i < rank - 1:
            # (S_0..S_{i-1}, k_{i+1}..k_{d-1}, S_i) -> (S_0..S_i, k_{i+2}..k_{d-1}, k_{i+1})
            perm = list(range(i)) + [rank - 1] + list(range(i + 1, rank - 1)) + [i]
            t = builder.transpose(t, perm)
    return t
