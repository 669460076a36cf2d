"""Exact rewrites of an exported program so more of it lowers to XNNPACK.

XNNPACK's mean is a global average pool: ExecuTorch lowers `mean.dim` only over (H, W) of a 4-D
tensor with keepdim. The batch-statistics norms of FR models average over (N, H, W); with a batch
of one the N axis has size 1, and a mean over a size-1 axis is the identity, so dropping it from
the dims changes nothing but where the op runs (measured on the authors' UNet: 36 means per
dense program left the XNNPACK graph cut into 37 subgraphs).
"""
from __future__ import annotations

import torch
from torch.export import ExportedProgram

_SPATIAL = {2, 3}


def unit_axis_means(program: ExportedProgram) -> int:
    """Rewrite in place every 4-D keepdim mean over (H, W) plus size-1 axes into a mean over
    (H, W) alone; returns how many were rewritten."""
    changed = 0
    for node in program.graph.nodes:
        if node.op != "call_function" or node.target is not torch.ops.aten.mean.dim or node.kwargs.get("dtype") is not None:
            continue
        src, dims = node.args[0], node.args[1]
        keepdim = len(node.args) > 2 and bool(node.args[2])
        val = getattr(src, "meta", {}).get("val")
        if val is None or val.dim() != 4 or not keepdim or dims is None:
            continue
        axes = {d % 4 for d in dims}
        extra = axes - _SPATIAL
        if not _SPATIAL <= axes or not extra or any(val.shape[d] != 1 for d in extra):
            continue
        node.args = (src, [2, 3], True, *node.args[3:])
        changed += 1
    if changed:
        program.graph_module.recompile()
    return changed
