"""The op sequence that rebuilds one weight from its coefficient box, for any graph format.

Both the TFLite and the ONNX idct forms use it. A builder supplies two ops:
`expand_last(t, n, k)` contracts the last axis (size k) with the basis B_n[:, :k] (size n), and
`transpose(t, perm)`. Axes 0..d-1 are expanded in turn, each while it is the last axis: before
step i the layout is (S_0..S_{i-1}, k_{i+1}..k_{d-1}, k_i), so the box is stored as
(k_1..k_{d-1}, k_0) and the last step needs no transpose: d contractions + (d-1) transposes.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

if TYPE_CHECKING:
    from frlite.converter.fr.idct_params import ParamPack, Segment

T = TypeVar("T")


@dataclass
class FRWeight:
    """What an in-graph rebuild (ONNX or TFLite) needs of one FR layer."""

    name: str
    dense: np.ndarray   # spatial weight, torch layout, float32
    coeffs: np.ndarray  # DCT coefficients, torch layout: at least the kept corner box
    box: tuple[int, ...]


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


def match_permutation(arr: np.ndarray, dense: np.ndarray) -> tuple[int, ...] | None:
    """The axis permutation p with arr == dense.transpose(p), judged by VALUE (fp16 arrays are
    compared at fp16 precision). This is how frlite learns the layout a converter gave a weight,
    instead of guessing it from a shape."""
    if arr.size != dense.size or arr.dtype not in (np.float32, np.float16):
        return None
    scale = float(np.abs(dense).max()) or 1.0
    fp16 = arr.dtype == np.float16
    for perm in itertools.permutations(range(dense.ndim)):
        if tuple(dense.shape[p] for p in perm) != arr.shape:
            continue
        cand = dense.transpose(perm)
        if fp16:
            cand = cand.astype(np.float16)
        if np.allclose(arr.astype(np.float32), cand.astype(np.float32), rtol=1e-3 if fp16 else 1e-5,
                       atol=(1e-3 if fp16 else 1e-6) * scale):
            return perm
    return None


def plan_weight(pack: "ParamPack", coeffs: np.ndarray, box: tuple[int, ...], dense_shape: tuple[int, ...],
                perm: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], "Segment"]:
    """(shape, box) of a weight in the file's layout, and its coefficient box stored in the pack
    in the layout `rebuild_weight` starts from; registers the bases it needs."""
    shape = tuple(dense_shape[p] for p in perm)
    file_box = tuple(box[p] for p in perm)
    seg = pack.add(stored_box(coeffs[tuple(slice(0, k) for k in box)].transpose(perm)))
    for n, k in zip(shape, file_box):
        pack.want_basis(n, k)
    return shape, file_box, seg
