"""Swap submodules of a model in place (used for frereg import and export preparation)."""
from __future__ import annotations

from typing import Callable

from torch import nn


def replace_modules(model: nn.Module, match: Callable[[nn.Module], bool],
                    make: Callable[[nn.Module], nn.Module]) -> tuple[nn.Module, int]:
    """Replace every submodule for which `match` holds by `make(submodule)`; the root too
    (hence the returned module). Returns (model, number replaced)."""
    if match(model):
        return make(model), 1
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if match(child):
                setattr(parent, name, make(child))
                count += 1
    return model, count


def set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put `new` at the dotted `name` below `model` (the parent must exist)."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)
