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
