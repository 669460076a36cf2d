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

A factorized conv followed by a batch-statistics BatchNorm (the authors' UNet) is fused into one
module that takes the norm's statistics from the k0-channel core output instead of the C_out-channel
conv output (FactorizedConvStatNorm2d): exact, and it leaves two full-width passes instead of ~7.
Where a bias-free upsampling conv's output is padded and concatenated into a conv (a UNet decoder),
the up-conv's expand and the next conv's projection are merged, so neither the upsampled map nor
the concatenation is materialised (frlite.converter.forms.merged_up). Both fusions are found on the
traced dataflow of the user's model (frlite.converter.forms.dataflow_fusions), whatever its classes.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from frlite.converter.fr.batch_stat_norm import BatchStatNorm2d, replace_batch_stat_norms
from frlite.converter.core.errors import UsageError, UnsupportedLayerError
from frlite.converter.forms.dataflow_fusions import find_fusions, merge_ups
from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d, FRLinear, fr_layers, fr_weight_key
from frlite.converter.fr.idct import idct_basis_torch
from frlite.converter.fr.module_surgery import set_submodule


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
    fused_norm: str = ""   # name of the batch-statistics norm fused into this layer ("" if none)
    merged_into: str = ""  # up-conv: the conv whose projection absorbs this layer's expand ("" if none)


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
        self.register_buffer("core_bias", None)  # set only where a norm follows (stat_conditioning)

    def core_from_projected(self, p: torch.Tensor) -> torch.Tensor:
        """Small conv on the projected (groups*k1)-channel input. Padding after the 1x1 projection is
        exact (every padding mode copies or zero-fills whole pixels) and pads k1 channels, not C_in."""
        if self.padding_mode != "zeros":
            p = F.pad(p, self._reversed_padding, mode=self.padding_mode)
            padding: object = 0
        else:
            padding = self.padding
        return F.conv2d(p, self.core, self.core_bias, self.stride, padding, self.dilation, self.groups)

    def core_output(self, x: torch.Tensor) -> torch.Tensor:
        """The small (groups*k0)-channel tensor before expand; the fused norm reads its statistics."""
        return self.core_from_projected(F.conv2d(x, self.project, groups=self.groups))

    def from_projected(self, p: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.core_from_projected(p), self.expand, self.bias, groups=self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.core_output(x), self.expand, self.bias, groups=self.groups)


def _stat_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean over (N, H, W), keepdim, as means over W, then H, then N: exact (equal-size groups) and
    far more accurate in float32 where a runtime sums one long row after another (LiteRT's MEAN
    over 640x959 pixels loses up to ~1e-2 of the fused variance; this keeps it near 1e-4)."""
    m = t.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
    return m.mean(dim=0, keepdim=True) if t.shape[0] > 1 else m


class FactorizedConvStatNorm2d(nn.Module):
    """FactorizedConv2d (groups 1) then a batch-statistics BatchNorm, fused exactly.

    x = E q + b has mean E mean_q + b and variance diag(E Cov_q E^T) per channel, Cov_q being the
    k0 x k0 covariance of the core output q over (N, H, W). So with d = q - mean_q (the bias cancels)

        y = expand(d) * rsqrt(var_x + eps) [* weight] [+ bias],   var_x[c] = sum_(a<=b) W2[c,ab] Cov_q[a,b]

    The statistics cost k0 + k0(k0+1)/2 channels instead of the norm's ~5 passes over C_out. Every
    op is 4-D (1x1 convs with constant weights, Mul, ReduceMean, Rsqrt) so the mobile delegates
    take it; no Einsum or large MatMul. var_x is a sum of terms that can cancel (1000x in the UNet's
    last layers), so Cov_q must be accurate to near float32 rounding: the means are taken over W,
    then H, then N (see _stat_mean).
    """

    def __init__(self, conv: FactorizedConv2d, norm: BatchStatNorm2d) -> None:
        super().__init__()
        if conv.groups != 1:
            raise UnsupportedLayerError(f"a norm can be fused only into an ungrouped conv (this one has {conv.groups} groups)")
        e = conv.expand[:, :, 0, 0]                                            # (C_out, k0)
        c_out, k0 = e.shape
        for p in (norm.weight, norm.bias):
            if p is not None and p.numel() != c_out:
                raise UnsupportedLayerError(f"the norm has {p.numel()} channels but the conv before it {c_out}")
        pairs = [(a, b) for a in range(k0) for b in range(a, k0)]
        left = torch.zeros(len(pairs), k0, 1, 1, dtype=e.dtype, device=e.device)
        right = torch.zeros_like(left)
        for i, (a, b) in enumerate(pairs):
            left[i, a] = 1.0
            right[i, b] = 1.0
        self.conv = conv
        self.eps = float(norm.eps)
        self.register_buffer("pair_left", left)      # d -> d_a per pair (a, b), a <= b
        self.register_buffer("pair_right", right)    # d -> d_b
        self.set_expand(e, torch.full((c_out,), norm.eps, dtype=torch.float64))
        self.weight = None if norm.weight is None else nn.Parameter(norm.weight.detach().clone())
        self.bias = None if norm.bias is None else nn.Parameter(norm.bias.detach().clone())
        self._observer: Callable[[torch.Tensor], None] | None = None  # sees each core output (stat_conditioning)

    def set_expand(self, e: torch.Tensor, eps: torch.Tensor) -> None:
        """Use expand E (C_out, k0) and per-channel eps; var_weight and var_bias follow from them.
        Computed in float64: the pair products of E are the constants var_x cancels with."""
        e64 = e.detach().double()
        pairs = [(a, b) for a in range(e64.shape[1]) for b in range(a, e64.shape[1])]
        w2 = torch.stack([e64[:, a] * e64[:, b] * (1.0 if a == b else 2.0) for a, b in pairs], dim=1)  # Cov is symmetric
        dtype, device = self.pair_left.dtype, self.pair_left.device
        self.conv.register_buffer("expand", e64.to(dtype).reshape(*e64.shape, 1, 1).contiguous().to(device))
        self.register_buffer("var_weight", w2.to(dtype).reshape(*w2.shape, 1, 1).contiguous().to(device))  # pair covariances -> var_x
        self.register_buffer("var_bias", eps.detach().to(dtype).contiguous().to(device))                  # + eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_core(self.conv.core_output(x))

    def from_projected(self, p: torch.Tensor) -> torch.Tensor:
        return self.from_core(self.conv.core_from_projected(p))

    def from_core(self, q: torch.Tensor) -> torch.Tensor:
        if self._observer is not None:
            self._observer(q)
        d = q - _stat_mean(q)
        if d.shape[1] == 1:
            prod = d * d
        else:
            prod = F.conv2d(d, self.pair_left) * F.conv2d(d, self.pair_right)
        cov = _stat_mean(prod)                                                 # (1, pairs, 1, 1)
        scale = torch.rsqrt(F.conv2d(cov, self.var_weight, self.var_bias))     # (1, C_out, 1, 1)
        if self.weight is not None:
            scale = scale * self.weight.view(1, -1, 1, 1)
        y = F.conv2d(d, self.conv.expand) * scale
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


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

    def _out_pad(self, x: torch.Tensor, output_size: list[int] | None) -> list[int]:
        # torch's own output-size arithmetic; it reads only its arguments and self.output_padding
        return nn.ConvTranspose2d._output_padding(self, x, output_size, list(self.stride), list(self.padding),  # type: ignore[arg-type]
                                                  list(self.kernel_size), 2, list(self.dilation))

    def core_output(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        """groups == 1: the small k1-channel tensor before expand (the merged Up reads it)."""
        p = F.conv2d(x, self.project)
        return F.conv_transpose2d(p, self.core, None, self.stride, self.padding, self._out_pad(x, output_size), 1, self.dilation)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if self.groups == 1:
            return F.conv2d(self.core_output(x, output_size), self.expand, self.bias)
        out_pad = self._out_pad(x, output_size)
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
    sites = find_fusions(model)
    followers, merges = sites.norms, sites.merges
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
        fused = followers.get(name, "") if choice == "factorized" and _fusable(layer) else ""
        choices.append(LayerChoice(f"{name}.weight", layer.kind, choice, dense, fact, dw, fw, reason, fused))
    factorized = {c.name.removesuffix(".weight") for c in choices if c.choice == "factorized"}
    for c in choices:
        target = merges.get(c.name.removesuffix(".weight"), "")
        if target and {c.name.removesuffix(".weight"), target} <= factorized:
            c.merged_into = target
    return choices


def _fusable(layer: nn.Module) -> bool:
    return isinstance(layer, (FRConv2d, FactorizedConv2d)) and layer.groups == 1


def describe_fusions(model: nn.Module, plan: list[LayerChoice]) -> str:
    """One line for convert.log: the fusions the plan makes, or why none were looked for."""
    note = find_fusions(model).note
    if note:
        return note
    fused = sum(bool(c.fused_norm) for c in plan)
    merged = sum(bool(c.merged_into) for c in plan)
    return f"fusions found on the traced graph: {fused} batch-statistics norms fused, {merged} upsamplings merged"


def factorize_model(model: nn.Module, example: tuple[torch.Tensor, ...] | None = None,
                    plan: list[LayerChoice] | None = None, fp16_safe: bool = True) -> tuple[nn.Module, list[LayerChoice]]:
    """A copy of `model` with each FR layer factorized where the cost model says it pays off (the
    rest baked dense), batch-statistics norms made portable and, where the plan says so, fused into
    the factorized conv before them (`fused_norm`) and UNet Up blocks run without their concat
    (`merged_into`; the result is then an fx.GraphModule of the model's traced forward). Runs in
    PyTorch and exports as is. With an example and `fp16_safe`, the norms
    are rewritten exactly so fp16 arithmetic neither overflows nor cancels in them
    (frlite.converter.forms.fp16_rescale.make_fp16_safe, measured on the example)."""
    if plan is None:
        if example is None:
            raise UsageError("factorize_model needs an example input (the cost depends on the layer's input size) or a plan")
        plan = plan_factorization(model, example)
    chosen = {c.name: c.choice for c in plan}
    out = copy.deepcopy(model).eval()
    replace_batch_stat_norms(out)
    for name, layer in fr_layers(out):
        key = fr_weight_key(name)
        if chosen.get(key) == "factorized":
            new: nn.Module = {FRConv2d: FactorizedConv2d, FRConvTranspose2d: FactorizedConvTranspose2d,
                              FRLinear: FactorizedLinear}[type(layer)](layer)
        else:
            new = layer.to_dense()
        set_submodule(out, name, new)
    _fuse_stat_norms(out, plan)
    merges = {c.name.removesuffix(".weight"): c.merged_into for c in plan if c.merged_into}
    if merges:
        out = merge_ups(out, merges)
    if fp16_safe and example is not None:
        from frlite.converter.forms.fp16_rescale import make_fp16_safe

        make_fp16_safe(out, example)
    return out, plan


def _fuse_stat_norms(model: nn.Module, plan: list[LayerChoice]) -> None:
    """In place: conv + norm pairs the plan fuses become (FactorizedConvStatNorm2d, nn.Identity), so
    names and Sequential indices stay as in the original model."""
    wanted = [c for c in plan if c.fused_norm]
    followers = find_fusions(model).norms if wanted else {}
    for c in wanted:
        name = c.name.removesuffix(".weight") if c.name != "weight" else ""
        if followers.get(name) != c.fused_norm:
            raise UnsupportedLayerError(f"the plan fuses {c.fused_norm} into {name}, which this model's dataflow does not "
                                        "allow (a plan made for another model?)")
        conv, norm = model.get_submodule(name), model.get_submodule(c.fused_norm)
        if not isinstance(conv, FactorizedConv2d) or not isinstance(norm, BatchStatNorm2d):
            raise UnsupportedLayerError(f"the plan fuses {c.fused_norm} into {name}, but that layer is not factorized here")
        # the norm read only the conv's output and nothing else read it: swapping the pair is exact
        set_submodule(model, name, FactorizedConvStatNorm2d(conv, norm))
        set_submodule(model, c.fused_norm, nn.Identity())


def plan_as_json(plan: list[LayerChoice]) -> list[dict]:
    return [asdict(c) for c in plan]
