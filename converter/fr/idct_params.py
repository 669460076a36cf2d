"""The numbers an in-graph IDCT needs, packed: each FR layer's coefficient box and the terms
that generate the DCT bases in the graph (odd numbers, frequencies, per size pi/2n and s_k).

The ONNX and TFLite idct writers (onnx_idct.py, tflite_idct.py) take their fp32 constants from
one ParamPack, so both files hold exactly the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Segment:
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class ParamPack:
    """Builds the packed fp32 vector.

    Bases are not stored: B_n[x, k] = s_k cos(pi (2x+1) k / 2n) is computed in the graph from
    two shared vectors (odd numbers 2x+1 and frequencies k) and, per size n, pi/2n and s_k.
    That keeps the UNet's params at ~16 KB instead of ~50 KB with stored bases.
    """

    chunks: list[np.ndarray] = field(default_factory=list)
    length: int = 0
    basis_columns: dict[int, int] = field(default_factory=dict)
    odd: Segment | None = None
    freqs: Segment | None = None
    basis_terms: dict[int, tuple[Segment, Segment]] = field(default_factory=dict)  # n -> (pi/2n, s_k)

    def add(self, array: np.ndarray) -> Segment:
        arr = np.ascontiguousarray(array, dtype=np.float32)
        seg = Segment(self.length, tuple(arr.shape))
        self.chunks.append(arr.reshape(-1))
        self.length += arr.size
        return seg

    def want_basis(self, n: int, k: int) -> None:
        self.basis_columns[n] = max(k, self.basis_columns.get(n, 0))

    def add_bases(self) -> None:
        if not self.basis_columns:
            return
        max_n = max(self.basis_columns)
        max_k = max(self.basis_columns.values())
        self.odd = self.add((2 * np.arange(max_n) + 1).reshape(max_n, 1))
        self.freqs = self.add(np.arange(max_k).reshape(1, max_k))
        for n in sorted(self.basis_columns):
            k = self.basis_columns[n]
            scale = np.full((1, k), np.sqrt(2.0 / n))
            scale[0, 0] = np.sqrt(1.0 / n)
            self.basis_terms[n] = (self.add(np.array([[np.pi / (2 * n)]])), self.add(scale))

    def vector(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
