"""The factorized form: FR layers run as an exact low-rank (Tucker) product.

FR keeps coefficients only in a corner box [:k0, :k1, :kh', :kw'] of each weight, so the
separable inverse DCT factors the layer into three small ops with no approximation:

    conv(x, W) = expand_{B_out[:, :k0]}( conv( project_{B_in[:, :k1]^T}(x), S ) )
    S          = inverse DCT of the box along the two spatial axes        (k0 x k1 x kh x kw)

project and expand are 1x1 convolutions (matmuls for Linear) with columns of the orthonormal
DCT-II basis; zero padding, stride and dilation carry over because a 1x1 channel mix commutes
with them. Grouped convolutions factor per group (grouped 1x1 convs); a transposed conv factors
around a small transposed conv. A cost model picks, per layer, whichever of dense and
factorized needs fewer multiply-adds for the layer's actual input size.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .batch_stat_norm import replace_batch_stat_norms
from .fr_layers import FRConv2d, FRConvTranspose2d, FRLinear, fr_layers
from .idct import idct_basis_torch


@dataclass
class LayerChoice:
    name: str
    kind: str
    choice: str            # "factorized" or "dense"
    dense_macs: int
    factorized_macs: int
    dense_weights: int
    factorized_weights: int
    reason: str = ""


def _basis(n: int, k: int, like: torch.Tensor) -> torch.Tensor:
    return idct_basis_torch(n, k, like.dtype, like.device)


class FactorizedConv2d(nn.Module):
    """project (grouped 1x1) -> small conv with S (grouped, original stride/padding/dilation) -> expand (grouped 1x1)."""

    def __init__(self, layer: FRConv2d) -> None:
        super().__init__()
        w = layer.weight.detach()
        o, i_g, kh, kw = w.shape
        k0, k1, b2, b3 = layer.kept_box()
        g = layer.groups
        box = w[:k0, :k1, :b2, :b3]
        s = _spatial_only(box, kh, kw)                                       # (k0, k1, kh, kw)
        self.groups = g
        self.register_buffer("project", _basis(i_g, k1, w).t().reshape(k1, i_g, 1, 1).repeat(g, 1, 1, 1).contiguous())
        self.register_buffer("core", s.repeat(g, 1, 1, 1).contiguous())      # (g*k0, k1, kh, kw)
        self.register_buffer("expand", _basis(o, k0, w).reshape(o, k0, 1, 1).contiguous())
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone())
        self.stride, self.padding, self.dilation = layer.stride, layer.padding, layer.dilation
        self.padding_mode = layer.padding_mode
        self._reversed_padding = getattr(layer, "_reversed_padding_repeated_twice", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding, mode=self.padding_mode)
            padding: object = 0
        else:
            padding = self.padding
        p = F.conv2d(x, self.project, groups=self.groups)
        q = F.conv2d(p, self.core, None, self.stride, padding, self.dilation, self.groups)
        return F.conv2d(q, self.expand, self.bias, groups=self.groups)


class FactorizedConvTranspose2d(nn.Module):
    """project (1x1) -> small transposed conv with S -> expand (1x1); weight axes are (in, out)."""

    def __init__(self, layer: FRConvTranspose2d) -> None:
        super().__init__()
        w = layer.weight.detach()
        i, o_g, kh, kw = w.shape
        k0, k1, b2, b3 = layer.kept_box()
        g = layer.groups
        s = _spatial_only(w[:k0, :k1, :b2, :b3], kh, kw)            # (k0, k1, kh, kw)
        self.groups = g
        i_g = i // g
        b_in = _basis(i, k0, w)                                              # (i, k0) over all inputs
        # inputs of group G are rows G*i_g..; the DCT runs along the full input axis
        self.register_buffer("project", b_in.t().reshape(k0, i, 1, 1).contiguous())
        self.register_buffer("core", s.contiguous())
        self.register_buffer("expand", _basis(o_g, k1, w).reshape(o_g, k1, 1, 1).repeat(g, 1, 1, 1).contiguous())
        self.i_g = i_g
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone())
        self.stride, self.padding, self.output_padding, self.dilation = layer.stride, layer.padding, layer.output_padding, layer.dilation
        self.kernel_size = layer.kernel_size

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        # torch's own output-size arithmetic; it reads only its arguments and self.output_padding
        out_pad = nn.ConvTranspose2d._output_padding(self, x, output_size, list(self.stride), list(self.padding),  # type: ignore[arg-type]
                                                      list(self.kernel_size), 2, list(self.dilation))
        if self.groups == 1:
            p = F.conv2d(x, self.project)
            q = F.conv_transpose2d(p, self.core, None, self.stride, self.padding, out_pad, 1, self.dilation)
            return F.conv2d(q, self.expand, self.bias)
        outs = []  # per group: the input axis of the DCT spans all groups, so project per slice
        for gi in range(self.groups):
            xs = x[:, gi * self.i_g:(gi + 1) * self.i_g]
            p = F.conv2d(xs, self.project[:, gi * self.i_g:(gi + 1) * self.i_g])
            q = F.conv_transpose2d(p, self.core, None, self.stride, self.padding, out_pad, 1, self.dilation)
            o_g = self.expand.shape[0] // self.groups
            outs.append(F.conv2d(q, self.expand[gi * o_g:(gi + 1) * o_g]))
        y = torch.cat(outs, dim=1)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


class FactorizedLinear(nn.Module):
    """y = ((x @ B_in[:, :k1]) @ C^T) @ B_out[:, :k0]^T + b."""

    def __init__(self, layer: FRLinear) -> None:
        super().__init__()
        w = layer.weight.detach()
        o, i = w.shape
        k0, k1 = layer.kept_box()
        self.register_buffer("project", _basis(i, k1, w).contiguous())          # (i, k1)
        self.register_buffer("core", w[:k0, :k1].t().contiguous())      # (k1, k0)
        self.register_buffer("expand", _basis(o, k0, w).t().contiguous())       # (k0, o)
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.project @ self.core @ self.expand
        return y if self.bias is None else y + self.bias


def _spatial_only(box: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Inverse DCT of a (k0, k1, b2, b3) box along its two spatial axes only -> (k0, k1, kh, kw)."""
    bh = _basis(kh, box.shape[2], box)
    bw = _basis(kw, box.shape[3], box)
    return torch.einsum("hc,wd,abcd->abhw", bh, bw, box)


# ---- cost model ----
def _conv_costs(layer: nn.Module, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    w = layer.weight
    box = layer.kept_box()  # type: ignore[attr-defined]
    g = layer.groups  # type: ignore[attr-defined]
    kh, kw = w.shape[2], w.shape[3]
    hin, win = in_hw
    hout, wout = out_hw
    if isinstance(layer, FRConvTranspose2d):
        i, o_g = w.shape[0], w.shape[1]
        o = o_g * g
        k0, k1 = box[0], box[1]
        dense = i * o_g * kh * kw * hin * win
        fact = k0 * i * hin * win + (k0 * k1 * kh * kw * hin * win) * g + o * k1 * hout * wout
        return dense, fact, w.numel(), i * k0 + k0 * k1 * kh * kw + o_g * k1
    o, i_g = w.shape[0], w.shape[1]
    k0, k1 = box[0], box[1]
    dense = o * i_g * kh * kw * hout * wout
    fact = g * k1 * i_g * hin * win + g * k0 * k1 * kh * kw * hout * wout + o * k0 * hout * wout
    return dense, fact, w.numel(), i_g * k1 + k0 * k1 * kh * kw + o * k0


def plan_factorization(model: nn.Module, example: tuple[torch.Tensor, ...]) -> list[LayerChoice]:
    """Per FR layer: MACs and stored weights of dense vs factorized at the example's sizes."""
    sizes: dict[str, tuple] = {}
    hooks = []
    for name, layer in fr_layers(model):
        def hook(m: nn.Module, inp: tuple, out: torch.Tensor, name: str = name) -> None:
            sizes[name] = (tuple(inp[0].shape), tuple(out.shape))
        hooks.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(*example)
    finally:
        for h in hooks:
            h.remove()
    choices = []
    for name, layer in fr_layers(model):
        if name not in sizes:
            continue
        (in_shape, out_shape) = sizes[name]
        if isinstance(layer, FRLinear):
            o, i = layer.weight.shape
            k0, k1 = layer.kept_box()
            rows = math.prod(in_shape[:-1])
            dense, fact = rows * o * i, rows * (i * k1 + k1 * k0 + k0 * o)
            dw, fw = o * i, i * k1 + k1 * k0 + k0 * o
        else:
            dense, fact, dw, fw = _conv_costs(layer, in_shape[2:], out_shape[2:])
        choice = "factorized" if fact < dense else "dense"
        reason = "" if choice == "factorized" else "the box is too large for the product to pay off"
        choices.append(LayerChoice(f"{name}.weight", layer.kind, choice, dense, fact, dw, fw, reason))
    return choices


def factorize_model(model: nn.Module, example: tuple[torch.Tensor, ...] | None = None,
                    plan: list[LayerChoice] | None = None) -> tuple[nn.Module, list[LayerChoice]]:
    """A copy of `model` with each FR layer factorized where the cost model says it pays off (the
    rest baked dense), batch-statistics norms made portable. Runs in PyTorch and exports as is."""
    if plan is None:
        if example is None:
            raise ValueError("give an example input (the cost depends on the layer's input size) or a plan")
        plan = plan_factorization(model, example)
    chosen = {c.name: c.choice for c in plan}
    out = copy.deepcopy(model).eval()
    replace_batch_stat_norms(out)
    for name, layer in fr_layers(out):
        key = f"{name}.weight" if name else "weight"
        if chosen.get(key) == "factorized":
            new: nn.Module = {FRConv2d: FactorizedConv2d, FRConvTranspose2d: FactorizedConvTranspose2d,
                              FRLinear: FactorizedLinear}[type(layer)](layer)
        else:
            new = layer.to_dense()
        parent, _, child = name.rpartition(".")
        setattr(out.get_submodule(parent) if parent else out, child, new)
    return out, plan


def plan_as_json(plan: list[LayerChoice]) -> list[dict]:
    return [asdict(c) for c in plan]
