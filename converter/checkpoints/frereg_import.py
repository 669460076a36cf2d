"""Recognise the `frereg` package's layers inside any nn.Module and swap in frlite's.

frereg (the authors' PyPI package) keeps DCT coefficients as `weight` like frlite does, so the
swap copies coefficients and bias unchanged; outputs are identical up to float rounding. Only
the class name and module are inspected, so frereg need not be installed to load its checkpoint.
"""
from __future__ import annotations

import torch
from torch import nn

from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d, FRLinear
from frlite.converter.fr.module_surgery import replace_modules

_CONV = {"Conv2d", "Conv2d_FR4d"}
_CONV_T = {"ConvTranspose2d", "ConvTranspose2d_FR4d"}
_LINEAR = {"Linear", "Linear_FR2d"}
# frereg's training bookkeeping buffers; not part of the weights
FREREG_BUFFERS = ("ZMAT", "IDROP", "IMAT")


def is_frereg_layer(module: nn.Module) -> bool:
    cls = type(module)
    return cls.__module__.split(".")[0] == "frereg" and cls.__name__ in _CONV | _CONV_T | _LINEAR


def frlite_layer_for(module: nn.Module) -> nn.Module:
    """The frlite FR layer equivalent to one frereg layer, holding the same coefficients."""
    name = type(module).__name__
    w: torch.Tensor = module.weight
    bias = getattr(module, "bias", None)
    has_bias = bias is not None
    groups = int(getattr(module, "groups", 1))
    kw = {"device": w.device, "dtype": w.dtype}
    layer: nn.Module
    if name in _CONV:
        layer = FRConv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=module.stride,
                         padding=module.padding, dilation=getattr(module, "dilation", 1),
                         groups=groups, bias=has_bias, **kw)
    elif name in _CONV_T:
        layer = FRConvTranspose2d(w.shape[0], w.shape[1] * groups, tuple(w.shape[2:]),
                                  stride=module.stride, padding=module.padding, groups=groups,
                                  bias=has_bias, **kw)
    else:
        layer = FRLinear(w.shape[1], w.shape[0], bias=has_bias, **kw)
    with torch.no_grad():
        layer.weight.copy_(w)
        if has_bias:
            layer.bias.copy_(bias)
    layer.train(module.training)
    return layer


def convert_frereg_layers(model: nn.Module) -> tuple[nn.Module, int]:
    """Replace every frereg layer in `model` (in place); return (model, number replaced).

    The root itself may be a frereg layer, hence the returned module.
    """
    return replace_modules(model, is_frereg_layer, frlite_layer_for)
