"""Convolutions and matrix products accumulated in fp16, in XNNPACK's order on ARMv8.2+ phones.

XNNPACK's f16 GEMM / IGEMM micro-kernels for aarch64 (neonfp16arith) keep each output's
accumulator in an fp16 register: it starts at the bias and takes one fused multiply-add per
reduction element (`vfmaq_f16`), so every step rounds to half. The IGEMM walks a convolution's
kernel taps row-major (ky, then kx) and, within a tap, the input channels in order; a
depthwise kernel walks the taps alone. x86 hosts run the same program with fp32 accumulators
(measured: the host .pte matched fp32-accumulate-then-round to half an ulp, while sequential
fp16 accumulation of a 4096-term dot product was 80x further off), so the host run cannot show
this error: it is reproduced here.

Each step is one in-place `addcmul_` on half tensors, which rounds `acc + w * x` once (w * x of
two halves is exact in float; checked against an exact fused multiply-add in tests). A transposed
convolution is the direct convolution of the zero-stuffed input with the flipped kernel: the
inserted zeros add exactly nothing, so the non-zero terms keep their tap-major order.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _pair(v: object, n: int = 2) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * n
    t = tuple(int(x) for x in v)  # type: ignore[union-attr]
    return t * n if len(t) == 1 else t


def conv2d_fp16_acc(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, stride: object = 1,
                    padding: object = 0, dilation: object = 1, groups: int = 1) -> torch.Tensor:
    """NCHW conv2d whose every output accumulates sequentially in fp16 (bias first, then taps
    row-major, input channels inner). Inputs are fp16 values (any float dtype); returns half."""
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    xh = F.pad(x.half(), (pw, pw, ph, ph))
    wh = w.half()
    n, cin, hp, wp = xh.shape
    cout, cin_g, kh, kw = wh.shape
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    cout_g = cout // groups
    acc = torch.zeros((n, cout, oh, ow), dtype=torch.half)
    if bias is not None:
        acc += bias.half().view(1, cout, 1, 1)
    depthwise = cin_g == 1 and cout_g == 1
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            tap = xh[:, :, y0:y0 + sh * (oh - 1) + 1:sh, x0:x0 + sw * (ow - 1) + 1:sw]
            if depthwise:  # every channel its own single tap: all channels in one step
                acc.addcmul_(tap, wh[:, 0, ky, kx].view(1, cout, 1, 1))
                continue
            for g in range(groups):
                out = acc[:, g * cout_g:(g + 1) * cout_g]
                for c in range(cin_g):
                    out.addcmul_(tap[:, g * cin_g + c:g * cin_g + c + 1], wh[g * cout_g:(g + 1) * cout_g, c, ky, kx].view(1, cout_g, 1, 1))
    return acc


def conv_transpose2d_fp16_acc(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, stride: object = 1,
                              padding: object = 0, output_padding: object = 0, groups: int = 1,
                              dilation: object = 1) -> torch.Tensor:
    """NCHW transposed conv2d as the fp16-accumulating direct conv of the zero-stuffed input."""
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    oph, opw = _pair(output_padding)
    dh, dw = _pair(dilation)
    n, cin, h, wd = x.shape
    cin_w, cout_g, kh, kw = w.shape
    stuffed = torch.zeros((n, cin, (h - 1) * sh + 1, (wd - 1) * sw + 1), dtype=torch.half)
    stuffed[:, :, ::sh, ::sw] = x.half()
    eh, ew = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    stuffed = F.pad(stuffed, (ew, ew + opw, eh, eh + oph))
    # (cin, cout/g, kh, kw) -> (cout, cin/g, kh, kw), flipped spatially
    cin_g = cin_w // groups
    wt = w.half().view(groups, cin_g, cout_g, kh, kw).transpose(1, 2).reshape(groups * cout_g, cin_g, kh, kw)
    return conv2d_fp16_acc(stuffed, wt.flip(2, 3), bias, 1, 0, (dh, dw), groups)


def linear_fp16_acc(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ w.T (+ bias) over the last axis, accumulated sequentially in fp16."""
    xh, wh = x.half(), w.half()
    acc = torch.zeros((*xh.shape[:-1], wh.shape[0]), dtype=torch.half)
    if bias is not None:
        acc += bias.half()
    for k in range(xh.shape[-1]):
        acc.addcmul_(xh[..., k:k + 1], wh[:, k])
    return acc


def conv_macs(x_shape: tuple[int, ...], w_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    """Multiply-adds of a convolution (per output element: input channels per group x taps)."""
    taps = 1
    for d in w_shape[2:]:
        taps *= int(d)
    per_out = int(w_shape[1]) * taps
    total = 1
    for d in out_shape:
        total *= int(d)
    return total * per_out
