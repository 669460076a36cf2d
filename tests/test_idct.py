"""The IDCT against scipy, the box-truncated form against the full one, and their costs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch

from frlite.converter.fr.idct import box_idct_cost, dct_nd, idct_basis, idct_nd, kept_box

SHAPES = [(7,), (1,), (5, 3), (9, 1), (3, 5, 7), (1, 4, 3), (5, 3, 3, 3), (6, 7, 1, 1), (2, 9, 3, 5)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_idct_matches_scipy_idctn(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape) * 100 + sum(shape))
    coeffs = rng.standard_normal(shape)
    ref = scipy.fft.idctn(coeffs, type=2, norm="ortho")
    got64 = idct_nd(torch.from_numpy(coeffs)).numpy()
    got32 = idct_nd(torch.from_numpy(coeffs).float()).numpy()
    np.testing.assert_allclose(got64, ref, atol=1e-12, rtol=0)
    np.testing.assert_allclose(got32, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", SHAPES[2:], ids=lambda s: "x".join(map(str, s)))
def test_dct_nd_inverts_idct_nd(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape, dtype=torch.float64)
    np.testing.assert_allclose(dct_nd(idct_nd(x)).numpy(), x.numpy(), atol=1e-12)
    np.testing.assert_allclose(dct_nd(x).numpy(), scipy.fft.dctn(x.numpy(), type=2, norm="ortho"), atol=1e-12)


def test_basis_is_orthonormal_and_truncates_to_columns() -> None:
    for n in (1, 2, 3, 17, 64):
        b = idct_basis(n)
        np.testing.assert_allclose(b.T @ b, np.eye(n), atol=1e-12)
        np.testing.assert_array_equal(idct_basis(n, 2 if n >= 2 else 1), b[:, : 2 if n >= 2 else 1])
    with pytest.raises(ValueError):
        idct_basis(3, 4)


@pytest.mark.parametrize(
    "shape,box",
    [((64, 64, 3, 3), (4, 4, 3, 3)), ((31, 17, 3, 3), (4, 3, 2, 2)), ((33, 15, 2, 2), (4, 5, 2, 2)),
     ((2, 65, 1, 1), (2, 17, 1, 1)), ((9, 11), (3, 2)), ((13,), (5,))],
)
def test_box_truncated_idct_equals_full(shape: tuple[int, ...], box: tuple[int, ...]) -> None:
    coeffs = torch.zeros(shape, dtype=torch.float32)
    inside = tuple(slice(0, k) for k in box)
    coeffs[inside] = torch.randn(box)
    assert kept_box(coeffs) == box
    full = idct_nd(coeffs)
    boxed = idct_nd(coeffs[inside].contiguous(), shape)
    assert boxed.shape == full.shape
    torch.testing.assert_close(boxed, full, atol=1e-6, rtol=0)
    np.testing.assert_allclose(boxed.numpy(), scipy.fft.idctn(coeffs.numpy().astype(np.float64), type=2, norm="ortho"), atol=1e-6)


def test_idct_is_differentiable() -> None:
    c = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: idct_nd(t).sum(dim=(2, 3)), (c,))


def test_kept_box_of_empty_and_rejects_oversized_box() -> None:
    assert kept_box(torch.zeros(3, 4)) == (1, 1)
    with pytest.raises(ValueError):
        idct_nd(torch.zeros(5, 2), (4, 2))


def test_box_cost_is_much_lower_for_the_unet_layers(unet_model) -> None:  # type: ignore[no-untyped-def]
    """The corner-box IDCT of the authors' UNet costs >100x less than the full one."""
    from frlite.converter.fr.fr_layers import fr_layers

    full = boxed = 0
    for _, layer in fr_layers(unet_model):
        shape = tuple(layer.weight.shape)
        full += box_idct_cost(shape, shape)
        boxed += box_idct_cost(shape, layer.kept_box())
    assert full == sum(math.prod(s := tuple(l.weight.shape)) * sum(s) for _, l in fr_layers(unet_model))
    assert full / boxed > 300, (full, boxed)
