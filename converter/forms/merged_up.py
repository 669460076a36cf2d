"""An upsampling conv's expand folded into the next conv's projection (the decoder's concat merge).

A decoder computes conv(cat([skip, pad(up(x))])). The conv starts with a bias-free 1x1 projection
P = [P_skip | P_up] (column blocks in the concat's order) and a bias-free up-conv ends with a 1x1
expand E, so exactly

    P cat([skip, pad(E q)]) = P_skip skip + pad((P_up E) q),      q = up's small k-channel tensor

(zero padding commutes with a bias-free 1x1 conv). Neither the upsampled C_up-channel map nor the
concatenated map is written: only k channels are padded and added. The traced graph keeps the
model's own pad (amounts computed at run time from H/W, which the k-channel tensor shares) between
the two modules below; frlite.converter.forms.dataflow_fusions finds where they apply.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from frlite.converter.core.errors import UnsupportedLayerError


def _factorized_conv(conv: nn.Module) -> nn.Module:
    from frlite.converter.forms.factorized import FactorizedConv2d, FactorizedConvStatNorm2d

    inner = conv.conv if isinstance(conv, FactorizedConvStatNorm2d) else conv
    if not isinstance(inner, FactorizedConv2d) or inner.groups != 1:
        raise UnsupportedLayerError("only an ungrouped factorized conv takes a merged upsampling")
    return inner


def merged_projections(up: nn.Module, conv: nn.Module, up_first: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(P_up E, P_skip) as 1x1 conv weights, P's column blocks taken in the concat's order."""
    from frlite.converter.forms.factorized import FactorizedConvTranspose2d

    if not isinstance(up, FactorizedConvTranspose2d) or up.groups != 1 or up.bias is not None:
        raise UnsupportedLayerError("only a bias-free, ungrouped factorized transposed conv merges into the next conv")
    project = _factorized_conv(conv).project[:, :, 0, 0]
    c_up, c_in = up.expand.shape[0], project.shape[1]
    up_cols, skip_cols = (slice(0, c_up), slice(c_up, c_in)) if up_first else (slice(c_in - c_up, c_in), slice(0, c_in - c_up))
    # float64: many entries are exact zeros (DCT orthogonality) that a float32 product leaves at ~1e-6
    merged = (project[:, up_cols].double() @ up.expand[:, :, 0, 0].double()).to(project.dtype)
    return merged[:, :, None, None].contiguous(), project[:, skip_cols, None, None].contiguous()


class MergedUpProjection(nn.Module):
    """x -> (P_up E) q: the up-conv's small core output projected straight into the next conv's
    k1-channel space (same H, W as the up-conv's output)."""

    def __init__(self, up: nn.Module, project_up: torch.Tensor) -> None:
        super().__init__()
        self.up = up
        self.register_buffer("project_up", project_up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.up.core_output(x), self.project_up)


class MergedConvInput(nn.Module):
    """(skip, u) -> conv(cat(...)) with the concat replaced by P_skip skip + u (u already projected)."""

    def __init__(self, conv: nn.Module, project_skip: torch.Tensor) -> None:
        super().__init__()
        _factorized_conv(conv)
        self.conv = conv
        self.register_buffer("project_skip", project_skip)

    def forward(self, skip: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.conv.from_projected(F.conv2d(skip, self.project_skip) + u)
