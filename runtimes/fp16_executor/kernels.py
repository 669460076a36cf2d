"""TFLite op semantics in torch float32, one function per builtin op.

Tensors stay in the file's own layout (NHWC for 4-D activations); a conv sees them through a
channels-last NCHW view, so torch's convolution reads the same memory without a copy. Padding
follows TFLite's own rules (SAME: the extra row/column goes after, `ComputePaddingWithOffset`
in LiteRT's kernels/padding.h), not torch's symmetric padding. An op without a kernel here is
an error naming it: a skipped op would make every later number meaningless.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from frlite.converter.core.errors import FrliteError

from frlite.runtimes.fp16_executor.graph import GraphOp

_SAME, _VALID = 0, 1
Kernel = Callable[[GraphOp, list, "KernelContext"], list[torch.Tensor]]


class UnsupportedOp(FrliteError):
    """The file holds an op (or an op option) the executor has no exact kernel for."""


class KernelContext:
    """What a kernel may ask beyond its inputs: the output shapes the file declares, and a cache
    for weights re-laid-out once per constant (the dense UNet's 124 MB would be permuted per run)."""

    def __init__(self, output_shapes: dict[int, tuple[int, ...]], constants: set[int]) -> None:
        self.output_shapes = output_shapes
        self.constants = constants
        self._prepared: dict[tuple[int, str], torch.Tensor] = {}

    def prepared(self, op: GraphOp, pos: int, tag: str, value: torch.Tensor,
                 fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        idx = op.inputs[pos]
        if idx not in self.constants:
            return fn(value)
        key = (idx, tag)
        if key not in self._prepared:
            self._prepared[key] = fn(value)
        return self._prepared[key]


def _opt(op: GraphOp, name: str, default):  # type: ignore[no-untyped-def]
    return getattr(op.options, name, default) if op.options is not None else default


def _act(op: GraphOp, x: torch.Tensor) -> torch.Tensor:
    code = _opt(op, "fusedActivationFunction", 0)
    if code == 0:
        return x
    if code == 1:
        return torch.relu(x)
    if code == 2:
        return x.clamp(-1.0, 1.0)
    if code == 3:
        return x.clamp(0.0, 6.0)
    if code == 4:
        return torch.tanh(x)
    raise UnsupportedOp(f"op {op.index} {op.kind}: fused activation {code} has no kernel")


def _ints(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _pad_amounts(op: GraphOp, size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TFLite's (before, after) padding of one spatial axis."""
    padding = _opt(op, "padding", _SAME)
    if padding == _VALID:
        return 0, 0
    eff = (k - 1) * dilation + 1
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


def _spatial_pad(op: GraphOp, x: torch.Tensor, kh: int, kw: int, sh: int, sw: int, dh: int = 1, dw: int = 1,
                 value: float = 0.0) -> torch.Tensor:
    t, b = _pad_amounts(op, x.shape[2], kh, sh, dh)
    left, right = _pad_amounts(op, x.shape[3], kw, sw, dw)
    if t or b or left or right:
        x = F.pad(x, (left, right, t, b), value=value)
    return x


def conv_2d(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    x, w = a[0], a[1]
    bias = a[2] if len(a) > 2 else None
    sh, sw = _opt(op, "strideH", 1), _opt(op, "strideW", 1)
    dh, dw = _opt(op, "dilationHFactor", 1), _opt(op, "dilationWFactor", 1)
    groups = x.shape[3] // w.shape[3]
    wt = ctx.prepared(op, 1, "oihw", w, lambda t: t.permute(0, 3, 1, 2).contiguous())
    xn = _spatial_pad(op, _nchw(x), w.shape[1], w.shape[2], sh, sw, dh, dw)
    y = F.conv2d(xn, wt, bias, stride=(sh, sw), dilation=(dh, dw), groups=groups)
    return [_act(op, _nhwc(y))]


def depthwise_conv_2d(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    x, w = a[0], a[1]
    bias = a[2] if len(a) > 2 else None
    sh, sw = _opt(op, "strideH", 1), _opt(op, "strideW", 1)
    dh, dw = _opt(op, "dilationHFactor", 1), _opt(op, "dilationWFactor", 1)
    wt = ctx.prepared(op, 1, "dw", w, lambda t: t.permute(3, 0, 1, 2).contiguous())  # [C*m, 1, KH, KW]
    xn = _spatial_pad(op, _nchw(x), w.shape[1], w.shape[2], sh, sw, dh, dw)
    y = F.conv2d(xn, wt, bias, stride=(sh, sw), dilation=(dh, dw), groups=x.shape[3])
    return [_act(op, _nhwc(y))]


def transpose_conv(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    out_shape, w, x = _ints(a[0]), a[1], a[2]
    bias = a[3] if len(a) > 3 else None
    sh, sw = _opt(op, "strideH", 1), _opt(op, "strideW", 1)
    kh, kw = w.shape[1], w.shape[2]
    wt = ctx.prepared(op, 1, "iohw", w, lambda t: t.permute(3, 0, 1, 2).contiguous())  # [I, O, KH, KW]
    full = F.conv_transpose2d(_nchw(x), wt, None, stride=(sh, sw))
    # the forward conv from the output size gives the padding; output[o] = full[o + before]
    oh, ow = out_shape[1], out_shape[2]
    pt = _transpose_pad(op, oh, kh, sh)
    pl = _transpose_pad(op, ow, kw, sw)
    y = full[:, :, pt:pt + oh, pl:pl + ow]
    if y.shape[2] < oh or y.shape[3] < ow:
        y = F.pad(y, (0, ow - y.shape[3], 0, oh - y.shape[2]))
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return [_act(op, _nhwc(y))]


def _transpose_pad(op: GraphOp, out_size: int, k: int, stride: int) -> int:
    padding = _opt(op, "padding", _SAME)
    fwd = (out_size + stride - 1) // stride if padding == _SAME else (out_size + stride - k) // stride
    return max((fwd - 1) * stride + k - out_size, 0) // 2


def fully_connected(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    x, w = a[0], a[1]
    bias = a[2] if len(a) > 2 else None
    if _opt(op, "weightsFormat", 0) != 0:
        raise UnsupportedOp(f"op {op.index} FULLY_CONNECTED: shuffled weights format has no kernel")
    k = w.shape[1]
    y = F.linear(x.reshape(-1, k), w, bias)
    if _opt(op, "keepNumDims", False):
        y = y.reshape(*x.shape[:-1], w.shape[0])
    return [_act(op, y)]


def batch_matmul(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    x, y = a[0], a[1]
    if _opt(op, "adjX", False):
        x = x.transpose(-1, -2)
    if _opt(op, "adjY", False):
        y = y.transpose(-1, -2)
    return [torch.matmul(x, y)]


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Kernel:
    def kernel(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
        return [_act(op, fn(a[0], a[1]))]
    return kernel


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> Kernel:
    def kernel(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
        return [fn(a[0])]
    return kernel


def _int_div(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.div(x, y, rounding_mode="floor") if not x.is_floating_point() else x / y


def _reduce(fn: str) -> Kernel:
    def kernel(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
        x = a[0]
        axes = sorted({ax % x.dim() for ax in _ints(a[1])}) if x.dim() else []
        keep = bool(_opt(op, "keepDims", False))
        if not axes:
            return [x.clone()]
        if fn == "mean":
            return [x.mean(dim=axes, keepdim=keep)]
        if fn == "sum":
            return [x.sum(dim=axes, keepdim=keep)]
        if fn == "max":
            return [x.amax(dim=axes, keepdim=keep)]
        return [x.amin(dim=axes, keepdim=keep)]
    return kernel


def _pool(kind: str) -> Kernel:
    def kernel(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
        x = _nchw(a[0])
        kh, kw = _opt(op, "filterHeight", 1), _opt(op, "filterWidth", 1)
        sh, sw = _opt(op, "strideH", 1), _opt(op, "strideW", 1)
        if kind == "max":
            y = F.max_pool2d(_spatial_pad(op, x, kh, kw, sh, sw, value=-math.inf), (kh, kw), (sh, sw))
        else:  # TFLite averages over the window's in-image elements only
            ones = torch.ones((1, 1, x.shape[2], x.shape[3]), dtype=x.dtype)
            s = F.avg_pool2d(_spatial_pad(op, x, kh, kw, sh, sw), (kh, kw), (sh, sw))
            n = F.avg_pool2d(_spatial_pad(op, ones, kh, kw, sh, sw), (kh, kw), (sh, sw))
            y = s / n
        return [_act(op, _nhwc(y))]
    return kernel


def pad(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    x = a[0]
    pads = _ints(a[1])
    value = float(a[2].reshape(-1)[0]) if len(a) > 2 and a[2] is not None else 0.0
    flat: list[int] = []
    for d in reversed(range(x.dim())):
        flat += [pads[2 * d], pads[2 * d + 1]]
    return [F.pad(x, flat, value=value)]


def mirror_pad(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    """MIRROR_PAD (what onnx2tf makes of padding_mode='reflect'): mode 0 REFLECT repeats no edge
    element, mode 1 SYMMETRIC repeats it; by gathering mirrored indices along each padded axis."""
    x, pads = a[0], _ints(a[1])
    edge = 0 if _opt(op, "mode", 0) == 0 else 1  # SYMMETRIC starts the mirror at the edge itself
    for d in range(x.dim()):
        before, after = pads[2 * d], pads[2 * d + 1]
        if not before and not after:
            continue
        n = x.shape[d]
        idx = ([p - edge for p in range(before, 0, -1)] + list(range(n))
               + [n - 1 - p + edge for p in range(1, after + 1)])
        x = torch.index_select(x, d, torch.tensor(idx, dtype=torch.long))
    return [x]


def split(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    """SPLIT (onnx2tf's grouped transposed conv): inputs (axis, tensor), numSplits equal parts."""
    axis = int(a[0].reshape(-1)[0])
    return list(torch.chunk(a[1], _opt(op, "numSplits", len(op.outputs)), dim=axis))


def _resize_scale(op: GraphOp, n_in: int, n_out: int) -> float:
    if _opt(op, "alignCorners", False) and n_out > 1:
        return (n_in - 1) / (n_out - 1)
    return n_in / n_out


def _nearest_index(op: GraphOp, n_in: int, n_out: int) -> torch.Tensor:
    """LiteRT's GetNearestNeighbor, in float32 like the reference kernel."""
    scale = torch.tensor(_resize_scale(op, n_in, n_out), dtype=torch.float32)
    half = _opt(op, "halfPixelCenters", False)
    pos = (torch.arange(n_out, dtype=torch.float32) + (0.5 if half else 0.0)) * scale
    idx = torch.round(pos) if _opt(op, "alignCorners", False) else torch.floor(pos)
    return idx.long().clamp(0 if half else -(2**31), n_in - 1)


def resize_nearest(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    """RESIZE_NEAREST_NEIGHBOR (NHWC; Upsample(mode='nearest') through onnx2tf)."""
    x, (h, w) = a[0], _ints(a[1])
    x = torch.index_select(x, 1, _nearest_index(op, x.shape[1], h))
    return [torch.index_select(x, 2, _nearest_index(op, x.shape[2], w))]


def _bilinear_axis(op: GraphOp, n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lower index, upper index, weight of the upper) per output position, as LiteRT's
    ComputeInterpolationValues: the weight is taken from the unclamped position."""
    scale = torch.tensor(_resize_scale(op, n_in, n_out), dtype=torch.float32)
    pos = torch.arange(n_out, dtype=torch.float32)
    pos = (pos + 0.5) * scale - 0.5 if _opt(op, "halfPixelCenters", False) else pos * scale
    lo = torch.floor(pos).clamp(min=0)
    hi = torch.ceil(pos).clamp(max=n_in - 1)
    return lo.long(), hi.long(), pos - lo


def resize_bilinear(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    """RESIZE_BILINEAR (NHWC; Upsample(mode='bilinear'), align_corners either way)."""
    x, (h, w) = a[0], _ints(a[1])
    y0, y1, wy = _bilinear_axis(op, x.shape[1], h)
    x0, x1, wx = _bilinear_axis(op, x.shape[2], w)
    wy, wx = wy.to(x.dtype).view(1, -1, 1, 1), wx.to(x.dtype).view(1, 1, -1, 1)
    rows = torch.index_select(x, 1, y0) * (1 - wy) + torch.index_select(x, 1, y1) * wy
    return [torch.index_select(rows, 2, x0) * (1 - wx) + torch.index_select(rows, 2, x1) * wx]


def concatenation(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    return [_act(op, torch.cat(a, dim=_opt(op, "axis", 0)))]


def reshape(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    if len(a) > 1 and a[1] is not None:
        shape = _ints(a[1])
    elif op.options is not None and getattr(op.options, "newShape", None) is not None:
        shape = [int(s) for s in op.options.newShape]
    else:
        shape = list(ctx.output_shapes[op.outputs[0]])
    return [a[0].reshape(shape)]


def to_declared_shape(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    """SQUEEZE / EXPAND_DIMS: only the shape changes, and the file declares it."""
    return [a[0].reshape(ctx.output_shapes[op.outputs[0]])]


def transpose(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    return [a[0].permute(_ints(a[1])).contiguous()]


def dequantize(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    if a[0].dtype != torch.float16:
        raise UnsupportedOp(f"op {op.index} DEQUANTIZE of {a[0].dtype}: only fp16 constants are supported")
    return [a[0].float()]


def strided_slice(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    x = a[0]
    begin, end, strides = _ints(a[1]), _ints(a[2]), _ints(a[3])
    if _opt(op, "ellipsisMask", 0) or _opt(op, "newAxisMask", 0):
        raise UnsupportedOp(f"op {op.index} STRIDED_SLICE: ellipsis / new-axis masks have no kernel")
    bm, em, sm = _opt(op, "beginMask", 0), _opt(op, "endMask", 0), _opt(op, "shrinkAxisMask", 0)
    offset = bool(_opt(op, "offset", False))
    index: list[object] = []
    for d in range(len(begin)):
        if strides[d] <= 0:
            raise UnsupportedOp(f"op {op.index} STRIDED_SLICE: stride {strides[d]} (only positive strides have a kernel)")
        if sm >> d & 1:
            index.append(begin[d])
            continue
        b = None if bm >> d & 1 else begin[d]
        e = None if em >> d & 1 else (begin[d] + end[d] if offset else end[d])
        index.append(slice(b, e, strides[d]))
    return [x[tuple(index)].contiguous()]


def slice_op(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    x = a[0]
    begin, size = _ints(a[1]), _ints(a[2])
    index = tuple(slice(b, None if s < 0 else b + s) for b, s in zip(begin, size))
    return [x[index].contiguous()]


def gather(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    params, idx = a[0], a[1]
    if _opt(op, "batchDims", 0):
        raise UnsupportedOp(f"op {op.index} GATHER: batch_dims has no kernel")
    axis = _opt(op, "axis", 0) % params.dim()
    flat = idx.reshape(-1).long()
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= params.shape[axis]):
        raise FrliteError(f"op {op.index} GATHER: an index is outside 0..{params.shape[axis] - 1}; the file is damaged")
    y = params.index_select(axis, flat)
    return [y.reshape(*params.shape[:axis], *idx.shape, *params.shape[axis + 1:])]


def cast(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    from frlite.runtimes.fp16_executor.executor import torch_dtype_of

    return [a[0].to(torch_dtype_of(ctx, op.outputs[0]))]


def softmax(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    return [torch.softmax(a[0] * _opt(op, "beta", 1.0), dim=-1)]


def leaky_relu(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    return [F.leaky_relu(a[0], _opt(op, "alpha", 0.2))]


def gelu(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    return [F.gelu(a[0], approximate="tanh" if _opt(op, "approximate", False) else "none")]


def prelu(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    x, alpha = a[0], a[1]
    return [torch.where(x >= 0, x, x * alpha)]


def depth_to_space(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    x = a[0]
    b = _opt(op, "blockSize", 1)
    n, h, w, c = x.shape
    y = x.reshape(n, h, w, b, b, c // (b * b)).permute(0, 1, 3, 2, 4, 5)
    return [y.reshape(n, h * b, w * b, c // (b * b)).contiguous()]


def space_to_depth(op: GraphOp, a: list, ctx: KernelContext) -> list[torch.Tensor]:
    x = a[0]
    b = _opt(op, "blockSize", 1)
    n, h, w, c = x.shape
    y = x.reshape(n, h // b, b, w // b, b, c).permute(0, 1, 3, 2, 4, 5)
    return [y.reshape(n, h // b, w // b, b * b * c).contiguous()]


KERNELS: dict[str, Kernel] = {
    "CONV_2D": conv_2d,
    "DEPTHWISE_CONV_2D": depthwise_conv_2d,
    "TRANSPOSE_CONV": transpose_conv,
    "MIRROR_PAD": mirror_pad,
    "SPLIT": split,
    "RESIZE_NEAREST_NEIGHBOR": resize_nearest,
    "RESIZE_BILINEAR": resize_bilinear,
    "FULLY_CONNECTED": fully_connected,
    "BATCH_MATMUL": batch_matmul,
    "ADD": _binary(torch.add),
    "SUB": _binary(torch.sub),
    "MUL": _binary(torch.mul),
    "DIV": _binary(_int_div),
    "MAXIMUM": _binary(torch.maximum),
    "MINIMUM": _binary(torch.minimum),
    "SQUARED_DIFFERENCE": _binary(lambda x, y: (x - y) * (x - y)),
    "POW": _binary(torch.pow),
    "MEAN": _reduce("mean"),
    "SUM": _reduce("sum"),
    "REDUCE_MAX": _reduce("max"),
    "REDUCE_MIN": _reduce("min"),
    "RSQRT": _unary(torch.rsqrt),
    "SQRT": _unary(torch.sqrt),
    "SQUARE": _unary(lambda x: x * x),
    "EXP": _unary(torch.exp),
    "LOG": _unary(torch.log),
    "ABS": _unary(torch.abs),
    "NEG": _unary(torch.neg),
    "COS": _unary(torch.cos),
    "SIN": _unary(torch.sin),
    "RELU": _unary(torch.relu),
    "RELU6": _unary(lambda x: x.clamp(0.0, 6.0)),
    "RELU_N1_TO_1": _unary(lambda x: x.clamp(-1.0, 1.0)),
    "LOGISTIC": _unary(torch.sigmoid),
    "TANH": _unary(torch.tanh),
    "HARD_SWISH": _unary(lambda x: x * (x + 3.0).clamp(0.0, 6.0) / 6.0),
    "LEAKY_RELU": leaky_relu,
    "GELU": gelu,
    "PRELU": prelu,
    "SOFTMAX": softmax,
    "MAX_POOL_2D": _pool("max"),
    "AVERAGE_POOL_2D": _pool("avg"),
    "PAD": pad,
    "PADV2": pad,
    "CONCATENATION": concatenation,
    "RESHAPE": reshape,
    "SQUEEZE": to_declared_shape,
    "EXPAND_DIMS": to_declared_shape,
    "TRANSPOSE": transpose,
    "DEQUANTIZE": dequantize,
    "CAST": cast,
    "STRIDED_SLICE": strided_slice,
    "SLICE": slice_op,
    "GATHER": gather,
    "DEPTH_TO_SPACE": depth_to_space,
    "SPACE_TO_DEPTH": space_to_depth,
}
