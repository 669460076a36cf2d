"""Find the factorized form's two fusions on the traced dataflow graph of the user's own model.

Users bring their own model code (their UNet, a functional rewrite of it, another block split), so
the fusions are recognised from what flows where, never from a class name or an nn.Sequential
position. The model is traced with torch.fx (FR layers, norms and frlite's factorized modules stay
leaf calls) and two patterns are matched:

  norm fusion   a batch-statistics norm whose only input is an ungrouped FR conv's output, that
                output read by nothing else, each module called exactly once
  up merge      a bias-free ungrouped FR transposed conv whose output is (optionally) zero-padded
                on H/W (pad amounts may be computed at run time) and concatenated along channels,
                in either order with one other tensor, into an ungrouped FR conv whose only input
                is that concat; besides the pad/cat the output may be read only for its H/W size

A model fx cannot trace (data-dependent control flow) gets no fusion and a note: never a wrong one.
The merge rewrite (`merge_ups`) edits the traced graph and returns an fx.GraphModule whose forward
equals the model's.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from frlite.converter.core.errors import UnsupportedLayerError
from frlite.converter.fr.batch_stat_norm import BatchStatNorm2d, uses_batch_stats
from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d, FRLayerMixin
from frlite.converter.fr.module_surgery import set_submodule

_SPATIAL_DIMS = {2, 3, -1, -2}  # H and W of an NCHW tensor: the merge keeps them, not the channels


@dataclass
class FusionSites:
    """What the dataflow allows: conv -> its norm, up-conv -> the conv its expand folds into."""

    norms: dict[str, str] = field(default_factory=dict)
    merges: dict[str, str] = field(default_factory=dict)
    note: str = ""  # why nothing was looked for ("" when the model traced)


class _LeafTracer(fx.Tracer):
    """Keeps FR layers, norms and frlite's factorized modules as single call_module nodes."""

    def __init__(self, leaf_types: tuple[type, ...]) -> None:
        super().__init__()
        self.leaf_types = leaf_types

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, self.leaf_types) or uses_batch_stats(m) or super().is_leaf_module(m, qualname)


def _leaf_types() -> tuple[type, ...]:
    # imported here: factorized.py imports this module for its fusion search
    from frlite.converter.forms.factorized import (FactorizedConv2d, FactorizedConvStatNorm2d,
                                                   FactorizedConvTranspose2d, FactorizedLinear)
    from frlite.converter.forms.merged_up import MergedConvInput, MergedUpProjection

    return (FRLayerMixin, BatchStatNorm2d, FactorizedConv2d, FactorizedConvStatNorm2d, FactorizedConvTranspose2d,
            FactorizedLinear, MergedConvInput, MergedUpProjection)


def trace(model: nn.Module) -> fx.GraphModule:
    """The model as an fx.GraphModule with FR/factorized layers and norms as leaves; raises the
    tracer's own error on a forward fx cannot follow."""
    if "forward" in vars(model):
        # fx traces type(model).forward; an instance attribute would run something else
        raise TypeError("the model's forward is set on the instance, not its class")
    graph = _LeafTracer(_leaf_types()).trace(model)
    return fx.GraphModule(model, graph, model.__class__.__name__)


def find_fusions(model: nn.Module) -> FusionSites:
    """The norm fusions and up merges the model's dataflow allows (names as in named_modules)."""
    try:
        gm = trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means: do not fuse
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return FusionSites(note=f"no fusion: torch.fx cannot trace the model ({type(exc).__name__}: {first[:160]})")
    calls = _call_counts(gm)
    sites = FusionSites()
    for node in gm.graph.nodes:
        conv = _single_module_call(gm, node, calls)
        if conv is None:
            continue
        if _is_ungrouped_conv(conv) and len(node.users) == 1:
            (user,) = node.users
            norm = _single_module_call(gm, user, calls)
            if norm is not None and _is_stat_norm(norm) and user.args == (node,) and not user.kwargs:
                sites.norms[str(node.target)] = str(user.target)
        if _is_mergeable_up(conv):
            target = _merge_target(gm, node, calls)
            if target is not None:
                sites.merges[str(node.target)] = str(target[0].target)
    return sites


def _call_counts(gm: fx.GraphModule) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op in ("call_module", "get_attr"):
            # a get_attr of a module's parameter is a second reader of that module
            key = str(node.target) if node.op == "call_module" else str(node.target).rpartition(".")[0]
            counts[key] = counts.get(key, 0) + 1
    return counts


def _single_module_call(gm: fx.GraphModule, node: fx.Node, calls: dict[str, int]) -> nn.Module | None:
    """The module a call_module node runs, if that module is called nowhere else and registered once."""
    if node.op != "call_module" or calls.get(str(node.target), 0) != 1:
        return None
    module = gm.get_submodule(str(node.target))
    if sum(1 for _, m in gm.named_modules(remove_duplicate=False) if m is module) != 1:
        return None  # the same module under two names: shared, so not ours to rewrite
    return module


def _is_ungrouped_conv(m: nn.Module) -> bool:
    from frlite.converter.forms.factorized import FactorizedConv2d, FactorizedConvStatNorm2d

    return isinstance(m, (FRConv2d, FactorizedConv2d, FactorizedConvStatNorm2d)) and _conv_of(m).groups == 1


def _conv_of(m: nn.Module) -> nn.Module:
    return m.conv if hasattr(m, "conv") and isinstance(getattr(m, "conv"), nn.Module) else m


def _is_stat_norm(m: nn.Module) -> bool:
    return isinstance(m, BatchStatNorm2d) or uses_batch_stats(m)


def _is_mergeable_up(m: nn.Module) -> bool:
    from frlite.converter.forms.factorized import FactorizedConvTranspose2d

    return isinstance(m, (FRConvTranspose2d, FactorizedConvTranspose2d)) and m.groups == 1 and m.bias is None


def _is_cat_on_channels(node: fx.Node) -> bool:
    if node.op != "call_function" or node.target not in (torch.cat, torch.concat, torch.concatenate):
        return False
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    return dim == 1 and len(node.args[0]) == 2 and set(node.kwargs) <= {"dim"}


def _is_zero_spatial_pad(node: fx.Node, source: fx.Node) -> bool:
    """F.pad(source, [l, r] or [l, r, t, b], constant 0): pads only W/H, so it commutes with a
    bias-free 1x1 conv."""
    if node.op != "call_function" or node.target is not F.pad or not node.args or node.args[0] is not source:
        return False
    pads = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
    mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
    value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value", None)
    return isinstance(pads, (list, tuple)) and len(pads) in (2, 4) and mode == "constant" and value in (None, 0, 0.0)


def _reads_only_spatial_size(node: fx.Node, source: fx.Node) -> bool:
    """source.size(2|3), source.size()[2|3] or source.shape[2|3]: the merged tensor has the same H, W."""
    if node.op == "call_method" and node.target == "size" and node.args[0] is source and not node.kwargs:
        if len(node.args) == 2:
            return node.args[1] in _SPATIAL_DIMS
        return len(node.args) == 1 and _only_spatial_items(node)
    if node.op == "call_function" and node.target is getattr and node.args[0] is source and node.args[1] == "shape":
        return _only_spatial_items(node)
    return False


def _only_spatial_items(node: fx.Node) -> bool:
    return bool(node.users) and all(u.op == "call_function" and u.target is operator.getitem and u.args[0] is node
                                    and u.args[1] in _SPATIAL_DIMS for u in node.users)


def _merge_target(gm: fx.GraphModule, up: fx.Node, calls: dict[str, int]
                  ) -> tuple[fx.Node, fx.Node, fx.Node | None, int] | None:
    """(conv node, cat node, pad node or None, position of the up branch in the cat) if `up`'s output
    reaches an ungrouped conv only through an optional zero pad and a channel concat."""
    if len(up.args) != 1 or up.kwargs:
        return None  # an explicit output_size is not handled
    branch, pad = up, None
    others = [u for u in up.users if not _reads_only_spatial_size(u, up)]
    if len(others) != 1:
        return None
    (nxt,) = others
    if _is_zero_spatial_pad(nxt, up):
        pad, branch = nxt, nxt
        pad_users = list(nxt.users)
        if len(pad_users) != 1:
            return None
        nxt = pad_users[0]
    if not _is_cat_on_channels(nxt) or len(nxt.users) != 1 or list(nxt.args[0]).count(branch) != 1:
        return None
    (conv_node,) = nxt.users
    conv = _single_module_call(gm, conv_node, calls)
    if conv is None or not _is_ungrouped_conv(conv) or conv_node.args != (nxt,) or conv_node.kwargs:
        return None
    return conv_node, nxt, pad, list(nxt.args[0]).index(branch)


def merge_ups(model: nn.Module, merges: dict[str, str]) -> fx.GraphModule:
    """A GraphModule equal to `model` where each up-conv in `merges` (factorized, as the plan chose)
    hands the next conv its projected k-channel tensor: the up's expand and the conv's projection
    become one small matrix, and neither the upsampled map nor the concat is materialised."""
    from frlite.converter.forms.merged_up import MergedConvInput, MergedUpProjection, merged_projections

    gm = trace(model)
    calls = _call_counts(gm)
    done = set()
    for node in list(gm.graph.nodes):
        name = str(node.target)
        if node.op != "call_module" or name not in merges:
            continue
        found = _merge_target(gm, node, calls)
        if found is None or str(found[0].target) != merges[name]:
            raise UnsupportedLayerError(f"the plan merges {name} into {merges[name]}, which this model's dataflow "
                                        "does not allow (a plan made for another model?)")
        conv_node, cat, _, up_pos = found
        up_mod, conv_mod = gm.get_submodule(name), gm.get_submodule(str(conv_node.target))
        project_up, project_skip = merged_projections(up_mod, conv_mod, up_first=up_pos == 0)
        set_submodule(gm, name, MergedUpProjection(up_mod, project_up))
        set_submodule(gm, str(conv_node.target), MergedConvInput(conv_mod, project_skip))
        skip, branch = cat.args[0][1 - up_pos], cat.args[0][up_pos]
        conv_node.args = (skip, branch)
        gm.graph.erase_node(cat)
        done.add(name)
    missing = set(merges) - done
    if missing:
        raise UnsupportedLayerError(f"the plan merges {', '.join(sorted(missing))}, which this model does not call "
                                    "(a plan made for another model?)")
    gm.graph.lint()
    gm.recompile()
    return gm
