"""The inverse DCT that turns FR coefficients into spatial weights, written once.

FR stores each weight as orthonormal DCT-II coefficients; the spatial weight is the separable
orthonormal inverse (DCT-III) along every axis, i.e. `scipy.fft.idctn(c, type=2, norm='ortho')`.
Here it is a product with one basis matrix per axis, which is what the exporters can express
with plain MatMul / Conv ops and what the box-truncated form below needs.

Box truncation: FR keeps only low-frequency coefficients, so all kept entries sit in a corner
box `[:k0, :k1, ...]`. Reconstructing from that box with the first `ki` basis columns gives the
same weight for a fraction of the work (exact, not an approximation).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch


@lru_cache(maxsize=256)
def _idct_basis_np(n: int) -> np.ndarray:
    """float64 matrix B (n x n) with x = B @ X for the orthonormal inverse DCT of X.

    B[x, k] = s_k * cos(pi * (2x + 1) * k / (2n)), s_0 = sqrt(1/n), s_k = sqrt(2/n); B is
    orthogonal and B.T is the forward orthonormal DCT-II.
    """
    x = np.arange(n)[:, None]
    k = np.arange(n)[None, :]
    basis = np.cos(math.pi * (2 * x + 1) * k / (2 * n))
    basis[:, 0] *= math.sqrt(1.0 / n)
    basis[:, 1:] *= math.sqrt(2.0 / n)
    basis.setflags(write=False)
    return basis


def idct_basis(n: int, columns: int | None = None, dtype: np.dtype = np.float64) -> np.ndarray:
    """The first `columns` columns of the n-point inverse-DCT basis (all when None)."""
    if n < 1:
        raise ValueError(f"basis size must be >= 1, got {n}")
    cols = n if columns is None else columns
    if not 1 <= cols <= n:
        raise ValueError(f"basis columns must be in 1..{n}, got {cols}")
    return np.array(_idct_basis_np(n)[:, :cols], dtype=dtype, order="C", copy=True)


_TORCH_BASIS: dict[tuple[int, int, torch.dtype, torch.device], torch.Tensor] = {}


def idct_basis_torch(n: int, columns: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Cached torch copy of `idct_basis(n, columns)`; built in float64 then cast once."""
    key = (n, columns, dtype, device)
    basis = _TORCH_BASIS.get(key)
    if basis is None:
        basis = torch.from_numpy(idct_basis(n, columns)).to(dtype=dtype, device=device)
        _TORCH_BASIS[key] = basis
    return basis


def idct_nd(coeffs: torch.Tensor, out_shape: Sequence[int] | None = None) -> torch.Tensor:
    """Orthonormal N-D inverse DCT of `coeffs` along every axis.

    With `out_shape` given, `coeffs` is a corner box `[:k0, :k1, ...]` of a coefficient tensor of
    shape `out_shape` (everything outside the box zero) and the result has `out_shape`: each axis
    uses only the first `ki` basis columns. Differentiable; works on any float dtype.
    """
    shape = tuple(coeffs.shape) if out_shape is None else tuple(int(s) for s in out_shape)
    if len(shape) != coeffs.dim():
        raise ValueError(f"out_shape {shape} has rank {len(shape)}, coefficients have rank {coeffs.dim()}")
    box = tuple(coeffs.shape)
    for axis, (n, k) in enumerate(zip(shape, box)):
        if k > n:
            raise ValueError(f"box size {k} exceeds axis size {n} on axis {axis}")
    out = coeffs
    for axis in axis_order(shape, box):
        n, k = shape[axis], box[axis]
        basis = idct_basis_torch(n, k, coeffs.dtype, coeffs.device)
        # contract the axis with the basis, then put the new (spatial) axis back in place
        out = torch.movedim(torch.tensordot(basis, out, dims=([1], [axis])), 0, axis)
    return out


def dct_nd(values: torch.Tensor) -> torch.Tensor:
    """Orthonormal N-D forward DCT-II (inverse of `idct_nd`): spatial weights -> coefficients."""
    out = values
    for axis, n in enumerate(values.shape):
        basis = idct_basis_torch(n, n, values.dtype, values.device)
        out = torch.movedim(torch.tensordot(basis.t(), out, dims=([1], [axis])), 0, axis)
    return out


def kept_box(coeffs: torch.Tensor | np.ndarray) -> tuple[int, ...]:
    """Smallest corner box `[:k0, :k1, ...]` holding every nonzero coefficient.

    An all-zero tensor gets the box of ones (one coefficient), so the result is always usable.
    """
    arr = coeffs.detach().cpu().numpy() if isinstance(coeffs, torch.Tensor) else np.asarray(coeffs)
    nz = np.nonzero(arr)
    if len(nz) == 0 or nz[0].size == 0:
        return tuple(1 for _ in arr.shape)
    return tuple(int(ix.max()) + 1 for ix in nz)


def axis_order(shape: Sequence[int], box: Sequence[int]) -> list[int]:
    """Order to expand the axes in: least growth (n/k) first keeps the intermediate small.

    Expanding axis i multiplies the work of every later axis by n_i/k_i, so the axes that grow
    least go first (the spatial 3x3 axes of a conv, then the channel axes).
    """
    return sorted(range(len(shape)), key=lambda i: (shape[i] / box[i], i))


def box_idct_cost(shape: Sequence[int], box: Sequence[int]) -> int:
    """Multiply-adds of the separable IDCT in `axis_order` (full when box == shape).

    Expanding axis i of the current tensor (sizes c) costs prod(c) * n_i.
    """
    sizes = list(box)
    total = 0
    for axis in axis_order(shape, box):
        total += math.prod(sizes) * shape[axis]
        sizes[axis] = shape[axis]
    return total
