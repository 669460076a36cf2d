"""The idct form: FR layers whose weights are rebuilt inside the exported graph.

Every number the rebuild needs (each layer's corner box of coefficients, its bias, and the
truncated DCT basis matrices, one shared per channel size) is packed into ONE float32 vector
`frparams`. The graph takes it as an input while the converters run, because every converter
constant-folds an IDCT of constants straight back into dense weights (FIELD_NOTES 2.4); the
finished files store it as a constant again. Keeping it one fp32 vector also keeps the basis
and coefficients fp32 inside fp16 files (FIELD_NOTES 2.7).

The rebuild is plain MatMul / Reshape / Transpose: spatial axes first, then input channels,
then output channels (cheapest order), so a 1024x1024x3x3 weight costs ~38 M MACs.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .batch_stat_norm import replace_batch_stat_norms
from .fr_layers import FRConv2d, FRConvTranspose2d, FRLayerMixin, FRLinear, fr_layers
from .idct import idct_basis

PARAMS_INPUT = "frparams"


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


class ParamsSource(nn.Module):
    """Holds the `frparams` tensor of the current call, and the bases built from it once per call."""

    def __init__(self) -> None:
        super().__init__()
        self.value: torch.Tensor | None = None
        self.bases: dict[int, torch.Tensor] = {}

    def take(self, seg: Segment) -> torch.Tensor:
        assert self.value is not None, "IdctModel.forward sets the params before the layers run"
        return self.value[seg.offset: seg.offset + seg.size].reshape(seg.shape)

    def build_bases(self, pack: "ParamPack") -> None:
        """B_n[:, :k] = cos(odd[:n] * pi/2n * freqs[:k]) * s_k for every size n the layers use."""
        self.bases = {}
        if pack.odd is None or pack.freqs is None:
            return
        odd, freqs = self.take(pack.odd), self.take(pack.freqs)
        for n, (step, scale) in pack.basis_terms.items():
            k = scale.shape[1]
            angles = (odd[:n] * self.take(step)) * freqs[:, :k]
            self.bases[n] = torch.cos(angles) * self.take(scale)


def _weight_from_box(src: ParamsSource, box_seg: Segment, shape: tuple[int, ...]) -> torch.Tensor:
    """Rebuild a 2-D or 4-D weight of `shape` from its box with the truncated bases."""
    box = src.take(box_seg)
    k = box_seg.shape
    mats = [src.bases[n][:, : k[i]] for i, n in enumerate(shape)]  # (n_i, k_i)
    if len(shape) == 2:
        return mats[0] @ box @ mats[1].t()
    o, i, h, w = shape
    t = box @ mats[3].t()                                    # (k0, k1, k2, w)
    t = (t.transpose(-1, -2) @ mats[2].t()).transpose(-1, -2)  # (k0, k1, h, w)
    t = mats[1] @ t.reshape(k[0], k[1], h * w)               # (k0, i, h*w)
    t = mats[0] @ t.reshape(k[0], i * h * w)                 # (o, i*h*w)
    return t.reshape(o, i, h, w)


class _IdctLayer(nn.Module):
    def __init__(self, layer: FRLayerMixin, src: ParamsSource, pack: ParamPack) -> None:
        super().__init__()
        coeffs = layer.weight.detach().to(torch.float32)
        box = layer.kept_box()
        self.shape = tuple(coeffs.shape)
        self.box_seg = pack.add(coeffs[tuple(slice(0, k) for k in box)].numpy())
        for n, k in zip(self.shape, box):
            pack.want_basis(n, k)
        bias = getattr(layer, "bias", None)
        self.bias_seg = None if bias is None else pack.add(bias.detach().numpy())
        self._src = [src]  # a list so the shared source is not registered as a child per layer

    def weight(self) -> torch.Tensor:
        return _weight_from_box(self._src[0], self.box_seg, self.shape)

    def bias(self) -> torch.Tensor | None:
        return None if self.bias_seg is None else self._src[0].take(self.bias_seg)


class IdctConv2d(_IdctLayer):
    def __init__(self, layer: FRConv2d, src: ParamsSource, pack: ParamPack) -> None:
        super().__init__(layer, src, pack)
        self.conv = copy.deepcopy(layer.to_dense()).requires_grad_(False)  # options only
        self.conv.weight = None  # type: ignore[assignment]
        self.conv.bias = None  # type: ignore[assignment]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv._conv_forward(x, self.weight(), self.bias())


class IdctConvTranspose2d(_IdctLayer):
    def __init__(self, layer: FRConvTranspose2d, src: ParamsSource, pack: ParamPack) -> None:
        super().__init__(layer, src, pack)
        self.stride, self.padding, self.output_padding = layer.stride, layer.padding, layer.output_padding
        self.groups, self.dilation = layer.groups, layer.dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, self.weight(), self.bias(), self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)


class IdctLinear(_IdctLayer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias())


class IdctModel(nn.Module):
    """forward(*inputs, frparams): the model with every FR layer rebuilt from `frparams`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        replace_batch_stat_norms(self.model)
        self.src = ParamsSource()
        pack = ParamPack()
        layers: list[_IdctLayer] = []
        for name, layer in fr_layers(self.model):
            if isinstance(layer, FRConv2d):
                new: _IdctLayer = IdctConv2d(layer, self.src, pack)
            elif isinstance(layer, FRConvTranspose2d):
                new = IdctConvTranspose2d(layer, self.src, pack)
            elif isinstance(layer, FRLinear):
                new = IdctLinear(layer, self.src, pack)
            else:  # pragma: no cover - fr_layers yields only these
                continue
            layers.append(new)
            _replace(self.model, name, new)
        pack.add_bases()
        self.pack = pack
        self.params = torch.from_numpy(pack.vector())

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        *inputs, params = args
        self.src.value = params
        self.src.build_bases(self.pack)
        try:
            return self.model(*inputs)
        finally:
            self.src.value = None
            self.src.bases = {}


def _replace(root: nn.Module, qualified: str, new: nn.Module) -> None:
    if not qualified:
        raise ValueError("the model itself is an FR layer; wrap it in an nn.Sequential")
    parent_name, _, child = qualified.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
