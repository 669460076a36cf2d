"""Exact rewrites of ONNX nodes that onnx2tf converts wrong or not at all, into ops it converts right.

Each repair is recognised by the node's attributes only (never by the model it came from) and
replaces the node by an equivalent sequence of standard ops, so ONNX Runtime gives the same
outputs before and after (tests/test_onnx_repairs.py checks 1e-6; LayerNorm 1e-5). The list
REPAIRS is the order the passes run in (converter/passes/onnx_repair.py):

- `repair_same_pads`: a Conv with auto_pad SAME_UPPER / SAME_LOWER (torch's padding='same')
  gets the explicit pads that stand for at its static input size. ONNX Runtime refuses SAME
  with dilation > 1, so this one also rewrites the shipped ONNX files, not only onnx2tf's input.
- `repair_strided_dilated_conv`: a Conv with stride > 1 on an axis and dilation > 1 on some
  axis. TF's convolution refuses that pair, so onnx2tf stops. When every dilation is a multiple
  of its stride (d = m*s), output o reads padded input s*o + s*m*j: the conv equals a stride-1
  conv with dilation m on the padded input subsampled by s (Pad, Slice with steps s, Conv):
  no extra arithmetic. Otherwise a stride-1 dilated conv followed by a Slice with steps s (s^2
  times the arithmetic, still exact).
- `repair_conv_transpose_depth_to_space`: a 2-D ConvTranspose with kernel == stride (square),
  no pads, output_padding or dilation, groups 1. Every input pixel writes its own k x k output
  block, so it equals a 1x1 Conv to k*k*C_out channels (weight W'[(a*k+b)*C_out+c, i] =
  W[i, c, a, b], bias tiled k*k times) and DepthToSpace(k, DCR), also cheaper than a transposed
  conv on phones.
- `repair_dilated_conv_transpose`: a ConvTranspose with dilation > 1 (TF lowers it to an op
  TFLite cannot hold) gets the zero-inserted kernel of size d*(k-1)+1 and dilation 1. Needs a
  constant weight: the weight-free skeleton keeps such a weight constant (weight_inputs.py).
- `repair_erf`: Erf (torch's exact GELU), which the TFLite converter cannot hold, as the
  Abramowitz-Stegun 7.1.26 polynomial in builtin ops: not bit-exact, |error| <= 1.5e-7.
- `repair_layer_norm`: LayerNormalization over more than the last axis (torch's LayerNorm((C,
  H, W))). onnx2tf stops on its (C, H, W) scale; written as ReduceMean / Sub / Mul / Sqrt / Div
  with scale and bias reshaped to the input's rank (exact up to float rounding).

A weight that is a graph input (the idct mode's weight-free skeleton) is handled too: the same-pads,
strided dilated and LayerNorm repairs leave weights as they are; the transposed-conv repair re-declares the input in
the 1x1 conv's layout and reports that view (WeightView: the original weight transposed by `perm`
and reshaped to `shape`) so whoever feeds that input (tflite_idct.py) writes it in that layout.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class WeightView:
    """A graph input now holding `reshape(transpose(original, perm), shape)`."""

    perm: tuple[int, ...]
    shape: tuple[int, ...]


@dataclass
class RepairResult:
    """What one repair did to one graph: nodes rewritten (name -> options), nodes that match the
    op but were left alone (name -> why), weights (graph inputs or initializers) it gave a new
    layout, by name."""

    rewritten: dict[str, str] = field(default_factory=dict)
    left: dict[str, str] = field(default_factory=dict)
    views: dict[str, WeightView] = field(default_factory=dict)


@dataclass(frozen=True)
class OnnxRepair:
    name: str
    what: str                                            # one line for convert.log
    sites: Callable[[onnx.GraphProto], list[onnx.NodeProto]]
    apply: Callable[[onnx.ModelProto], RepairResult]
    shipped: bool = False                                # also rewrite the shipped ONNX files (ORT needs it too)


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _weight_shape(graph: onnx.GraphProto, name: str) -> tuple[int, ...] | None:
    for init in graph.initializer:
        if init.name == name:
            return tuple(init.dims)
    for v in graph.input:
        if v.name == name:
            dims = v.type.tensor_type.shape.dim
            return tuple(d.dim_value for d in dims) if all(d.HasField("dim_value") for d in dims) else None
    return None


@dataclass
class _ConvOptions:
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]                                # begins..., ends...
    group: int
    auto_pad: str
    output_padding: tuple[int, ...]
    output_shape: tuple[int, ...]

    def describe(self, op: str) -> str:
        text = (f"{op} kernel {'x'.join(map(str, self.kernel))} stride {'x'.join(map(str, self.strides))} "
                f"dilation {'x'.join(map(str, self.dilations))} pads {list(self.pads)} groups {self.group}")
        return text + (f" output_padding {list(self.output_padding)}" if any(self.output_padding) else "")


def _options(graph: onnx.GraphProto, node: onnx.NodeProto) -> _ConvOptions | None:
    a = _attrs(node)
    wshape = _weight_shape(graph, node.input[1])
    kernel = tuple(a.get("kernel_shape", wshape[2:] if wshape else ()))
    if not kernel:
        return None
    n = len(kernel)
    auto_pad = a.get("auto_pad", b"NOTSET")
    return _ConvOptions(kernel, tuple(a.get("strides", [1] * n)), tuple(a.get("dilations", [1] * n)),
                        tuple(a.get("pads", [0] * 2 * n)), int(a.get("group", 1)),
                        auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad),
                        tuple(a.get("output_padding", [0] * n)), tuple(a.get("output_shape", ())))


def _unique(graph: onnx.GraphProto, base: str) -> str:
    taken = {v for n in graph.node for v in (*n.input, *n.output)} | {i.name for i in graph.initializer}
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def _int64_init(graph: onnx.GraphProto, base: str, values: list[int]) -> str:
    name = _unique(graph, base)
    graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
    return name


def _replace(graph: onnx.GraphProto, node: onnx.NodeProto, new_nodes: list[onnx.NodeProto]) -> None:
    """Put `new_nodes` where `node` was (the graph stays topologically sorted). The node list is
    rebuilt, so callers look each later site up again (`_outputs`, `_node`), never keep node objects."""
    nodes = list(graph.node)
    i = next(k for k, n in enumerate(nodes) if n is node)
    del graph.node[:]
    graph.node.extend(nodes[:i] + new_nodes + nodes[i + 1:])


def _outputs(sites: list[onnx.NodeProto]) -> list[str]:
    """Each site by its first output (unique in a graph), to find it again after a rewrite."""
    return [n.output[0] for n in sites]


def _node(graph: onnx.GraphProto, output: str) -> onnx.NodeProto:
    return next(n for n in graph.node if n.output and n.output[0] == output)


def _each_site(graph: onnx.GraphProto, sites: list[onnx.NodeProto]) -> Iterator[tuple[onnx.NodeProto, _ConvOptions]]:
    """(node, its options) for every site, each looked up again after the rewrites before it."""
    for out in _outputs(sites):
        node = _node(graph, out)
        o = _options(graph, node)
        assert o is not None
        yield node, o


def _unblocked_sites(graph: onnx.GraphProto, sites: list[onnx.NodeProto], res: RepairResult,
                     blocker: Callable[[onnx.GraphProto, onnx.NodeProto, _ConvOptions], str | None]
                     ) -> Iterator[tuple[onnx.NodeProto, _ConvOptions]]:
    """_each_site without the look-alikes `blocker` names a reason for: those are recorded in
    `res.left` with the reason (convert.log lists them) and left as they are."""
    for node, o in _each_site(graph, sites):
        why = blocker(graph, node, o)
        if why is not None:
            res.left[node.name] = f"{o.describe(node.op_type)}: {why}"
            continue
        yield node, o


def _tag(node: onnx.NodeProto, default: str) -> str:
    """A name stem for the values a rewrite of `node` adds (its path, slashes made underscores)."""
    return node.name.strip("/").replace("/", "_") or default


# --- Conv with auto_pad SAME_* ------------------------------------------------------------------

def same_pad_sites(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    return [n for n in graph.node if n.op_type == "Conv" and (o := _options(graph, n)) is not None
            and o.auto_pad in ("SAME_UPPER", "SAME_LOWER")]


def _spatial_sizes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """value name -> its static dims (graph inputs and everything shape inference can tell)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    out = {}
    for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = v.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            out[v.name] = tuple(d.dim_value for d in dims)
    return out


def repair_same_pads(model: onnx.ModelProto) -> RepairResult:
    """auto_pad SAME_UPPER / SAME_LOWER -> the explicit pads they stand for at the static input
    size (torch exports padding='same' that way; ONNX Runtime refuses it with dilation > 1)."""
    graph, res = model.graph, RepairResult()
    sites = same_pad_sites(graph)
    sizes = _spatial_sizes(model) if sites else {}
    for node, o in _each_site(graph, sites):
        shape = sizes.get(node.input[0])
        if shape is None:
            res.left[node.name] = f"{o.describe('Conv')} auto_pad {o.auto_pad}: input size unknown"
            continue
        begins, ends = [], []
        for size, k, s, d in zip(shape[2:], o.kernel, o.strides, o.dilations):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, large = total // 2, total - total // 2
            begins.append(small if o.auto_pad == "SAME_UPPER" else large)
            ends.append(large if o.auto_pad == "SAME_UPPER" else small)
        keep = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
        del node.attribute[:]
        node.attribute.extend(keep + [helper.make_attribute("pads", begins + ends)])
        res.rewritten[node.name] = f"{o.describe('Conv')} auto_pad {o.auto_pad} -> pads {begins + ends}"
    return res


# --- Conv with stride > 1 and dilation > 1 -------------------------------------------------------

def strided_dilated_sites(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    out = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        o = _options(graph, node)
        if o is not None and max(o.strides) > 1 and max(o.dilations) > 1:
            out.append(node)
    return out


def _strided_slice(graph: onnx.GraphProto, src: str, dst: str, strides: tuple[int, ...], tag: str) -> onnx.NodeProto:
    n = len(strides)
    return helper.make_node("Slice", [src, _int64_init(graph, f"{tag}_starts", [0] * n),
                                      _int64_init(graph, f"{tag}_ends", [INT64_MAX] * n),
                                      _int64_init(graph, f"{tag}_axes", list(range(2, 2 + n))),
                                      _int64_init(graph, f"{tag}_steps", list(strides))],
                            [dst], name=_unique(graph, f"{tag}_subsample"))


def repair_strided_dilated(model: onnx.ModelProto) -> RepairResult:
    graph, res = model.graph, RepairResult()
    for node, o in _each_site(graph, strided_dilated_sites(graph)):
        if o.auto_pad not in ("NOTSET", "VALID"):
            res.left[node.name] = f"auto_pad {o.auto_pad} (pads depend on the stride)"
            continue
        n = len(o.kernel)
        tag = _tag(node, "conv")
        conv_attrs = {"kernel_shape": list(o.kernel), "group": o.group, "strides": [1] * n}
        if all(d % s == 0 for d, s in zip(o.dilations, o.strides)):
            # pad, subsample by s, then a stride-1 conv with dilation d/s: the same arithmetic as the original
            x, new = node.input[0], []
            if any(o.pads):
                padded = _unique(graph, f"{tag}_padded")
                pads = _int64_init(graph, f"{tag}_pads", [0, 0, *o.pads[:n], 0, 0, *o.pads[n:]])
                new.append(helper.make_node("Pad", [x, pads], [padded], name=_unique(graph, f"{tag}_pad"), mode="constant"))
                x = padded
            sub = _unique(graph, f"{tag}_strided")
            new.append(_strided_slice(graph, x, sub, o.strides, tag))
            new.append(helper.make_node("Conv", [sub, *node.input[1:]], list(node.output), name=node.name,
                                        dilations=[d // s for d, s in zip(o.dilations, o.strides)],
                                        pads=[0] * 2 * n, **conv_attrs))
            form = "pad + subsample + conv"
        else:
            full = _unique(graph, f"{tag}_stride1")
            new = [helper.make_node("Conv", list(node.input), [full], name=node.name, dilations=list(o.dilations),
                                    pads=list(o.pads) if o.auto_pad == "NOTSET" else [0] * 2 * n, **conv_attrs),
                   _strided_slice(graph, full, node.output[0], o.strides, tag)]
            form = "stride-1 conv + subsample"
        _replace(graph, node, new)
        res.rewritten[node.name] = f"{o.describe('Conv')} -> {form}"
    return res


# --- ConvTranspose with kernel == stride ---------------------------------------------------------

def _depth_to_space_blocker(graph: onnx.GraphProto, node: onnx.NodeProto, o: _ConvOptions) -> str | None:
    """Why this ConvTranspose is not a 1x1 conv + DepthToSpace (None: it is)."""
    if len(o.kernel) != 2 or o.kernel[0] != o.kernel[1]:
        return "not a square 2-D kernel (DepthToSpace takes one block size)"
    if o.group != 1:
        return "groups > 1"
    if any(o.pads) or any(o.output_padding) or max(o.dilations) > 1 or o.auto_pad not in ("NOTSET", "VALID"):
        return "pads, output_padding or dilation"
    if o.output_shape:
        return "explicit output_shape"
    if len(node.input) > 2 and node.input[2] and not any(i.name == node.input[2] for i in graph.initializer):
        return "bias is not a constant"
    w = node.input[1]
    if not any(i.name == w for i in graph.initializer):
        if not any(v.name == w for v in graph.input):
            return "weight is computed in the graph"
        if sum(list(n.input).count(w) for n in graph.node) != 1:
            return "weight input is shared"
    return None


def conv_transpose_sites(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The transposed convs this repair rewrites (a pass applies, and is named, only for these)."""
    return [n for n in _kernel_is_stride(graph) if _depth_to_space_blocker(graph, n, _options(graph, n)) is None]  # type: ignore[arg-type]


def _kernel_is_stride(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Every ConvTranspose whose kernel equals its stride, rewritable or not (the look-alikes
    left alone are logged with the reason)."""
    out = []
    for node in graph.node:
        if node.op_type != "ConvTranspose":
            continue
        o = _options(graph, node)
        if o is not None and min(o.kernel) > 1 and o.kernel == o.strides:
            out.append(node)
    return out


def repair_conv_transpose(model: onnx.ModelProto) -> RepairResult:
    graph, res = model.graph, RepairResult()
    inits = {i.name: i for i in graph.initializer}
    for node, o in _unblocked_sites(graph, _kernel_is_stride(graph), res, _depth_to_space_blocker):
        k = o.kernel[0]
        tag = _tag(node, "conv_transpose")
        wshape = _weight_shape(graph, node.input[1])
        assert wshape is not None
        c_in, c_out = wshape[0], wshape[1]
        view = WeightView((2, 3, 1, 0), (k * k * c_out, c_in, 1, 1))
        if node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            w1 = np.ascontiguousarray(w.transpose(view.perm).reshape(view.shape))
            weight = _unique(graph, f"{tag}_w1x1")
            graph.initializer.append(numpy_helper.from_array(w1, weight))
            res.views[weight] = view
        else:  # a graph input: re-declared in the 1x1 layout, its feeder writes that view
            weight = node.input[1]
            v = next(v for v in graph.input if v.name == weight)
            dims = v.type.tensor_type.shape.dim
            del dims[:]
            for size in view.shape:
                dims.add().dim_value = size
            res.views[weight] = view
        ins = [node.input[0], weight]
        if len(node.input) > 2 and node.input[2]:
            bias = _unique(graph, f"{tag}_b1x1")
            graph.initializer.append(numpy_helper.from_array(np.tile(numpy_helper.to_array(inits[node.input[2]]), k * k), bias))
            ins.append(bias)
        mid = _unique(graph, f"{tag}_blocks")
        _replace(graph, node, [
            helper.make_node("Conv", ins, [mid], name=node.name, kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0]),
            helper.make_node("DepthToSpace", [mid], list(node.output), name=_unique(graph, f"{tag}_depth_to_space"),
                             blocksize=k, mode="DCR"),
        ])
        res.rewritten[node.name] = f"{o.describe('ConvTranspose')} -> 1x1 Conv + DepthToSpace"
    _drop_unused_initializers(graph)
    return res


# --- ConvTranspose with dilation > 1 --------------------------------------------------------------

def _dilated_conv_transposes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    return [n for n in graph.node if n.op_type == "ConvTranspose" and (o := _options(graph, n)) is not None
            and max(o.dilations) > 1]


def _undilate_blocker(graph: onnx.GraphProto, node: onnx.NodeProto, o: _ConvOptions) -> str | None:
    if not any(i.name == node.input[1] for i in graph.initializer):
        return "weight is not a constant"
    if o.auto_pad not in ("NOTSET", "VALID") or o.output_shape:
        return "auto_pad or output_shape"
    return None


def dilated_conv_transpose_sites(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The dilated transposed convs this repair rewrites."""
    return [n for n in _dilated_conv_transposes(graph) if _undilate_blocker(graph, n, _options(graph, n)) is None]  # type: ignore[arg-type]


def repair_dilated_conv_transpose(model: onnx.ModelProto) -> RepairResult:
    """A dilated kernel is the plain kernel of size d*(k-1)+1 with zeros between its taps, so the
    transposed conv becomes an undilated one with that kernel (same pads, output_padding, groups):
    TF lowers a dilated conv2d_transpose to Conv2DBackpropInput, which TFLite cannot hold."""
    graph, res = model.graph, RepairResult()
    inits = {i.name: i for i in graph.initializer}
    for node, o in _unblocked_sites(graph, _dilated_conv_transposes(graph), res, _undilate_blocker):
        w = numpy_helper.to_array(inits[node.input[1]])
        n = len(o.kernel)
        big = np.zeros(w.shape[:2] + tuple(d * (k - 1) + 1 for k, d in zip(o.kernel, o.dilations)), w.dtype)
        big[(slice(None), slice(None), *(slice(None, None, d) for d in o.dilations))] = w
        weight = _unique(graph, f"{_tag(node, 'conv_transpose')}_w_undilated")
        graph.initializer.append(numpy_helper.from_array(big, weight))
        node.input[1] = weight
        keep = [a for a in node.attribute if a.name not in ("dilations", "kernel_shape")]
        del node.attribute[:]
        node.attribute.extend(keep + [helper.make_attribute("dilations", [1] * n),
                                      helper.make_attribute("kernel_shape", list(big.shape[2:]))])
        res.rewritten[node.name] = f"{o.describe('ConvTranspose')} -> undilated {'x'.join(map(str, big.shape[2:]))} kernel"
    _drop_unused_initializers(graph)
    return res


# --- Erf (exact GELU) -------------------------------------------------------------------------------

# Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7 for x >= 0
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_SIGN_FLOOR = 2.0 ** -14  # smallest normal fp16: stays nonzero in fp16 files


def erf_sites(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    return [n for n in graph.node if n.op_type == "Erf"]


def repair_erf(model: onnx.ModelProto) -> RepairResult:
    """Erf (torch's exact GELU) -> A&S 7.1.26 with builtin ops: 1 - poly(t) * exp(-x^2) with
    t = 1 / (1 + p|x|), times x / max(|x|, 2^-14) for the sign. The TFLite converter has no Erf
    builtin (it stops on tf.Erf). Not bit-exact: |error| <= 1.5e-7, and below |x| = 6e-5 the
    sign factor scales a value already below 7e-5."""
    graph, res = model.graph, RepairResult()
    for out in _outputs(erf_sites(graph)):
        node = _node(graph, out)
        tag = _tag(node, "erf")
        new: list[onnx.NodeProto] = []

        def const(value: float, name: str) -> str:
            c = _unique(graph, f"{tag}_{name}")
            graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), c))
            return c

        def step(op: str, ins: list[str], name: str) -> str:
            value = _unique(graph, f"{tag}_{name}")
            new.append(helper.make_node(op, ins, [value], name=_unique(graph, f"{tag}_{name}_op")))
            return value

        x = node.input[0]
        ax = step("Abs", [x], "abs")
        t = step("Div", [const(1.0, "one"), step("Add", [step("Mul", [ax, const(_ERF_P, "p")], "px"),
                                                          const(1.0, "one_b")], "den")], "t")
        poly = const(_ERF_A[-1], "a5")
        for i, a in reversed(list(enumerate(_ERF_A[:-1]))):
            poly = step("Add", [step("Mul", [poly, t], f"h{i}"), const(a, f"a{i + 1}")], f"p{i}")
        poly = step("Mul", [poly, t], "poly")
        decay = step("Exp", [step("Mul", [step("Mul", [ax, ax], "sq"), const(-1.0, "minus")], "neg_sq")], "exp")
        magnitude = step("Sub", [const(1.0, "one_c"), step("Mul", [poly, decay], "tail")], "mag")
        sign = step("Div", [x, step("Max", [ax, const(_SIGN_FLOOR, "floor")], "safe_abs")], "sign")
        step("Mul", [magnitude, sign], "erf")
        new[-1].output[0] = node.output[0]
        _replace(graph, node, new)
        res.rewritten[node.name] = "Erf -> Abramowitz-Stegun 7.1.26 (|error| <= 1.5e-7)"
    return res


# --- LayerNormalization over more than the last axis ---------------------------------------------

def layer_norm_sites(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """LayerNormalization normalising over more than the channel-last axis: onnx2tf moves the
    channels of a 4-D tensor last and cannot place a (C, H, W) scale (it stops on the node)."""
    out = []
    for node in graph.node:
        if node.op_type == "LayerNormalization":
            axis = int(_attrs(node).get("axis", -1))
            if axis != -1:
                out.append(node)
    return out


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)


def repair_layer_norm(model: onnx.ModelProto) -> RepairResult:
    """mean / variance over the normalised axes with ReduceMean, then (x - mean) / sqrt(var + eps)
    * scale + bias; scale and bias reshaped to the input's rank so the broadcast is explicit."""
    graph, res = model.graph, RepairResult()
    inits = {i.name: i for i in graph.initializer}
    sizes = _spatial_sizes(model)
    for out in _outputs(layer_norm_sites(graph)):
        node = _node(graph, out)
        a = _attrs(node)
        shape = sizes.get(node.input[0])
        params = [i for i in node.input[1:] if i]
        if shape is None or any(p not in inits for p in params) or len(node.output) > 1 and any(node.output[1:]):
            res.left[node.name] = "input rank unknown, scale / bias computed, or mean / inv-std outputs used"
            continue
        rank = len(shape)
        axis = int(a.get("axis", -1)) % rank
        axes = list(range(axis, rank))
        tag = _tag(node, "layer_norm")
        x = node.input[0]
        new: list[onnx.NodeProto] = []

        def step(op: str, ins: list[str], name: str, **attrs: object) -> str:
            value = _unique(graph, f"{tag}_{name}")
            new.append(helper.make_node(op, ins, [value], name=_unique(graph, f"{tag}_{name}_op"), **attrs))
            return value

        def reduce_mean(t: str, name: str) -> str:
            if _opset(model) >= 18:
                return step("ReduceMean", [t, _int64_init(graph, f"{tag}_axes", axes)], name, keepdims=1)
            return step("ReduceMean", [t], name, axes=axes, keepdims=1)

        eps = _unique(graph, f"{tag}_eps")
        graph.initializer.append(numpy_helper.from_array(np.asarray(float(a.get("epsilon", 1e-5)), np.float32), eps))
        centred = step("Sub", [x, reduce_mean(x, "mean")], "centred")
        var = reduce_mean(step("Mul", [centred, centred], "square"), "var")
        y = step("Div", [centred, step("Sqrt", [step("Add", [var, eps], "var_eps")], "std")], "normed")
        for i, p in enumerate(params):
            value = numpy_helper.to_array(inits[p])
            full = _unique(graph, f"{tag}_{'scale' if i == 0 else 'bias'}")
            graph.initializer.append(numpy_helper.from_array(value.reshape((1,) * (rank - value.ndim) + value.shape), full))
            y = step("Mul" if i == 0 else "Add", [y, full], "scaled" if i == 0 else "shifted")
        new[-1].output[0] = node.output[0]
        _replace(graph, node, new)
        res.rewritten[node.name] = f"LayerNormalization axis {a.get('axis', -1)} over {shape} -> ReduceMean form"
    _drop_unused_initializers(graph)
    return res


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


REPAIRS: tuple[OnnxRepair, ...] = (
    OnnxRepair("repair_same_pads", "Conv auto_pad SAME_* -> explicit pads (ONNX Runtime refuses SAME with dilation)",
               same_pad_sites, repair_same_pads, shipped=True),
    OnnxRepair("repair_strided_dilated_conv", "Conv with stride > 1 and dilation > 1 (TF refuses it)",
               strided_dilated_sites, repair_strided_dilated),
    OnnxRepair("repair_dilated_conv_transpose", "ConvTranspose with dilation > 1 -> undilated zero-inserted kernel",
               dilated_conv_transpose_sites, repair_dilated_conv_transpose),
    OnnxRepair("repair_erf", "Erf (exact GELU) -> builtin-op polynomial, |error| <= 1.5e-7",
               erf_sites, repair_erf),
    OnnxRepair("repair_layer_norm", "LayerNormalization over more than the last axis -> ReduceMean form",
               layer_norm_sites, repair_layer_norm),
    OnnxRepair("repair_conv_transpose_depth_to_space", "ConvTranspose with kernel == stride -> 1x1 Conv + DepthToSpace",
               conv_transpose_sites, repair_conv_transpose),
)
