"""Exact rewrites of an exported program so more of it lowers to XNNPACK.

XNNPACK's mean is a global average pool: ExecuTorch lowers `mean.dim` only over (H, W) of a 4-D
tensor with keepdim. The batch-statistics norms of FR models average over (N, H, W); with a batch
of one the N axis has size 1, and a mean over a size-1 axis is the identity, so dropping it from
the dims changes nothing but where the op runs (measured on the authors' UNet: 36 means per
dense program left the XNNPACK graph cut into 37 subgraphs).

The factorized form's fused norms take their statistics as a mean over W, then over H (for
accuracy on large maps: converter/forms/factorized.py `_stat_mean`); each single-axis mean is
portable. A mean over W then H is the mean over (H, W) (equal-size groups): the pair becomes one
global average pool, the same function up to float rounding (72 portable means per factorized
UNet program before).
"""
from __future__ import annotations

import torch
from torch.export import ExportedProgram

_SPATIAL = {2, 3}


def _mean_axes(node: torch.fx.Node) -> set[int] | None:
    """The axes of a 4-D keepdim mean.dim without dtype, else None."""
    if node.op != "call_function" or node.target is not torch.ops.aten.mean.dim or node.kwargs.get("dtype") is not None:
        return None
    val = getattr(node.args[0], "meta", {}).get("val")
    keepdim = len(node.args) > 2 and bool(node.args[2])
    if val is None or val.dim() != 4 or not keepdim or node.args[1] is None:
        return None
    return {d % 4 for d in node.args[1]}


def nested_spatial_means(program: ExportedProgram) -> int:
    """Rewrite in place every mean over one spatial axis of a mean over the other (its only user)
    into one mean over (H, W); returns how many pairs were merged."""
    merged = 0
    for node in list(program.graph.nodes):
        outer = _mean_axes(node)
        inner_node = node.args[0] if outer is not None else None
        inner = _mean_axes(inner_node) if isinstance(inner_node, torch.fx.Node) else None
        if outer is None or inner is None or len(inner_node.users) != 1 or outer | inner != _SPATIAL or outer & inner:
            continue
        node.args = (inner_node.args[0], [2, 3], True, *node.args[3:])
        program.graph.erase_node(inner_node)
        merged += 1
    if merged:
        program.graph_module.recompile()
    return merged


def unit_axis_means(program: ExportedProgram) -> int:
    """Rewrite in place every 4-D keepdim mean over (H, W) plus size-1 axes into a mean over
    (H, W) alone; returns how many were rewritten."""
    changed = 0
    for node in program.graph.nodes:
        axes = _mean_axes(node)
        if axes is None:
            continue
        src = node.args[0]
        extra = axes - _SPATIAL
        if not _SPATIAL <= axes or not extra or any(src.meta["val"].shape[d] != 1 for d in extra):
            continue
        node.args = (src, [2, 3], True, *node.args[3:])
        changed += 1
    if changed:
        program.graph_module.recompile()
    return changed


# fp16 programs: the longest accumulation chain a conv keeps, in input channels. XNNPACK's fp16
# IGEMM on ARMv8.2+ accumulates taps x input channels in one fp16 register; measured on the
# authors' factorized UNet at 640x959, four images (fp16 accumulation emulated): 99.883% of pixels
# unsplit (under the 99.9% gate), 99.951% split at 128 channels, 99.967% at 32.
FP16_CHAIN_CHANNELS = 128


def _attr(gm: torch.fx.GraphModule, target: str) -> torch.Tensor:
    owner, _, name = target.rpartition(".")
    return getattr(gm.get_submodule(owner) if owner else gm, name)


def split_long_accumulations(gm: torch.fx.GraphModule, channels: int = FP16_CHAIN_CHANNELS) -> int:
    """Rewrite in place every conv2d over more than `channels` input channels (constant weight,
    one group) into convs over consecutive channel slices whose outputs are added, the bias on the
    first: the same function, but each fp16 accumulator sums at most `channels` x taps terms, and
    the partial sums meet in fp16 adds. Returns how many convs were split."""
    split = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not torch.ops.aten.conv2d.default:
            continue
        args = list(node.args) + [None] * (7 - len(node.args))
        x, w, b = args[0], args[1], args[2]
        stride, padding, dilation, groups = args[3] or [1, 1], args[4] or [0, 0], args[5] or [1, 1], args[6] or 1
        if groups != 1 or not isinstance(w, torch.fx.Node) or w.op != "get_attr" or isinstance(padding, str):
            continue
        weight = _attr(gm, w.target)
        cin = int(weight.shape[1])
        if cin <= channels:
            continue
        acc = None
        where = {k: v for k, v in node.meta.items() if k in ("nn_module_stack", "stack_trace")}  # the FR layer's module
        with gm.graph.inserting_before(node):
            for j, c0 in enumerate(range(0, cin, channels)):
                c1 = min(cin, c0 + channels)
                name = f"_frlite_chain_{split}_{j}"
                gm.register_buffer(name, weight[:, c0:c1].detach().clone())
                piece = gm.graph.call_function(torch.ops.aten.slice.Tensor, (x, 1, c0, c1))
                piece.meta.update(where)
                part = gm.graph.call_function(torch.ops.aten.conv2d.default,
                                              (piece, gm.graph.get_attr(name), b if j == 0 else None,
                                               stride, padding, dilation, 1))
                part.meta.update(where)
                acc = part if acc is None else gm.graph.call_function(torch.ops.aten.add.Tensor, (acc, part))
                acc.meta.update(where)
        node.replace_all_uses_with(acc)
        gm.graph.erase_node(node)
        split += 1
    if split:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return split
