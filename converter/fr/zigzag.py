"""The authors' zigzag ranking of DCT coefficients (their frereg code's ordering, reproduced key for key).

Entry (i0, i1, ...) of a tensor with sizes (s0, s1, ...) gets the key
    i0 + i0/(s0+1)  +  i1 + i1/((s0+1)(s1+1))  +  i2 + i2/((s0+1)(s1+1)(s2+1)) + ...
computed in float32 and summed axis by axis exactly as their code does, so that float32 ties on
large tensors resolve the way theirs do as far as possible. The rank of an entry is its position
in ascending key order: the L1 shell (sum of indices) first, ties by i0, then i1, ...
Their sort is not stable; here ties left by float32 go to the lower flat index (stable sort).
"""
from __future__ import annotations

from typing import Sequence

import torch


def zigzag_keys(shape: Sequence[int]) -> torch.Tensor:
    """float32 keys of every entry, shaped like the tensor."""
    dims = [int(s) for s in shape]
    keys = torch.zeros(dims, dtype=torch.float32)
    scale = 1.0
    for axis, size in enumerate(dims):
        scale *= size + 1.0
        idx = torch.arange(size, dtype=torch.float32)
        term = idx + idx / torch.tensor(scale, dtype=torch.float32)
        view = [1] * len(dims)
        view[axis] = size
        keys = keys + term.view(view)
    return keys


def zigzag_ranks(shape: Sequence[int]) -> torch.Tensor:
    """int64 rank (0 = lowest frequency) of every entry, shaped like the tensor."""
    keys = zigzag_keys(shape).reshape(-1)
    order = torch.sort(keys, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel())
    return ranks.reshape(tuple(int(s) for s in shape))
