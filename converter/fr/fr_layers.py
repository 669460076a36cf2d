"""FR layers: torch layers whose trainable `weight` holds DCT coefficients.

Each class subclasses the torch layer it stands for, so every option of that layer (stride,
padding incl. 'same', padding_mode, dilation, groups, output_padding, output_size, bias, dtype)
behaves exactly as in torch. Only the weight's meaning changes: forward = orthonormal N-D
inverse DCT of the (masked) coefficients, then the ordinary op.

Code that reads `.weight` of an nn.Conv2d as spatial weights must call `spatial_weight()` on
these instead; `to_dense()` gives a plain torch layer when that is what a tool needs.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from frlite.converter.fr.idct import dct_nd, idct_nd, kept_box
from frlite.converter.fr.truncation import CONV_PROTECT, LINEAR_PROTECT, TruncationMask, TruncationSchedule


class FRLayerMixin:
    """Shared behaviour of the FR layers: weight reconstruction, truncation, introspection."""

    weight: nn.Parameter
    _protect: int = CONV_PROTECT
    kind: str = ""

    def _fr_init(self) -> None:
        self._truncation: TruncationMask | None = None
        self._mask: torch.Tensor | None = None
        self._cache_key: tuple[Any, ...] | None = None
        self._cache: torch.Tensor | None = None

    # ---- truncation (training) ----
    def enable_truncation(self, minrate: float = 0.001, droprate: float = 0.1) -> None:
        """Start the authors' dynamic tail truncation with these rates (UNet: 0.001, 0.1)."""
        schedule = TruncationSchedule(self.weight.numel(), minrate, droprate, self._protect)
        self._truncation = TruncationMask(tuple(self.weight.shape), schedule)
        self._mask = None

    def disable_truncation(self) -> None:
        """Stop advancing the schedule; the last mask stays applied (see `prune_`)."""
        self._truncation = None

    @property
    def truncation(self) -> TruncationMask | None:
        return self._truncation

    @torch.no_grad()
    def prune_(self) -> None:
        """Zero the coefficients outside the current mask, as the authors do before saving."""
        if self._mask is not None:
            self.weight.mul_(self._mask.to(self.weight.dtype))

    def _current_mask(self) -> torch.Tensor | None:
        if self._truncation is not None:
            self._mask = self._truncation.next_mask(self.weight.dtype, self.weight.device)
        return self._mask

    # ---- reconstruction ----
    def spatial_weight(self) -> torch.Tensor:
        """The ordinary (spatial) weight this layer applies.

        Under no_grad the weight is rebuilt from the corner box of nonzero coefficients only and
        cached until the coefficients change (their tensor version), so inference pays the IDCT
        once instead of on every call as the authors' layers do.
        """
        mask = self._current_mask()
        coeffs = self.weight if mask is None else self.weight * mask
        if torch.is_grad_enabled():
            return idct_nd(coeffs)
        key = (self.weight.data_ptr(), self.weight._version, self.weight.dtype, self.weight.device)
        if mask is None and self._cache is not None and self._cache_key == key:
            return self._cache
        box = kept_box(coeffs)
        dense = idct_nd(coeffs[tuple(slice(0, k) for k in box)].contiguous(), coeffs.shape)
        if mask is None:
            self._cache, self._cache_key = dense, key
        return dense

    def drop_cached_weight(self) -> None:
        """Free the cached spatial weight (as large as a dense layer); it is rebuilt when next asked."""
        self._cache, self._cache_key = None, None

    @torch.no_grad()
    def load_spatial_weight_(self, spatial: torch.Tensor) -> None:
        """Set the coefficients from an ordinary weight (forward DCT); exact up to rounding."""
        self.weight.copy_(dct_nd(spatial.to(torch.float64)).to(self.weight.dtype))

    def kept_count(self) -> int:
        return int(torch.count_nonzero(self.weight.detach()))

    def kept_box(self) -> tuple[int, ...]:
        return kept_box(self.weight)

    def extra_repr(self) -> str:  # type: ignore[override]
        base = super().extra_repr()  # type: ignore[misc]
        return f"{base}, kept={self.kept_count()}/{self.weight.numel()}"

    def _copy_params_into(self, dense: nn.Module) -> nn.Module:
        with torch.no_grad():
            dense.weight.copy_(self.spatial_weight())
            if self.bias is not None:  # type: ignore[attr-defined]
                dense.bias.copy_(self.bias)  # type: ignore[attr-defined]
        return dense


class FRConv2d(FRLayerMixin, nn.Conv2d):
    """nn.Conv2d with DCT coefficients as weight, shape (out, in/groups, kh, kw)."""

    kind = "conv2d"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fr_init()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(input, self.spatial_weight(), self.bias)

    def to_dense(self) -> nn.Conv2d:
        dense = nn.Conv2d(
            self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
            self.dilation, self.groups, self.bias is not None, self.padding_mode,
            device=self.weight.device, dtype=self.weight.dtype,
        )
        return self._copy_params_into(dense)  # type: ignore[return-value]


class FRConvTranspose2d(FRLayerMixin, nn.ConvTranspose2d):
    """nn.ConvTranspose2d with DCT coefficients as weight, shape (in, out/groups, kh, kw)."""

    kind = "conv_transpose2d"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fr_init()

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if self.padding_mode != "zeros":
            raise ValueError("Only `zeros` padding mode is supported for ConvTranspose2d")
        output_padding = self._output_padding(
            input, output_size, list(self.stride), list(self.padding), list(self.kernel_size),
            2, list(self.dilation),
        )
        return F.conv_transpose2d(
            input, self.spatial_weight(), self.bias, self.stride, self.padding,
            output_padding, self.groups, self.dilation,
        )

    def to_dense(self) -> nn.ConvTranspose2d:
        dense = nn.ConvTranspose2d(
            self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
            self.output_padding, self.groups, self.bias is not None, self.dilation,
            self.padding_mode, device=self.weight.device, dtype=self.weight.dtype,
        )
        return self._copy_params_into(dense)  # type: ignore[return-value]


class FRLinear(FRLayerMixin, nn.Linear):
    """nn.Linear with DCT coefficients as weight, shape (out, in)."""

    kind = "linear"
    _protect = LINEAR_PROTECT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fr_init()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.linear(input, self.spatial_weight(), self.bias)

    def to_dense(self) -> nn.Linear:
        dense = nn.Linear(
            self.in_features, self.out_features, self.bias is not None,
            device=self.weight.device, dtype=self.weight.dtype,
        )
        return self._copy_params_into(dense)  # type: ignore[return-value]


def fr_weight_key(name: str) -> str:
    """The key of an FR layer's weight in checkpoints, manifests and reports: `<layer>.weight`,
    `weight` for a model that is one FR layer (its module name is empty)."""
    return f"{name}.weight" if name else "weight"


def fr_layers(model: nn.Module) -> list[tuple[str, FRLayerMixin]]:
    """(qualified name, layer) of every FR layer in `model`, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, FRLayerMixin)]


def layer_config(layer: nn.Module) -> dict[str, Any]:
    """The torch options of an FR layer as plain JSON data (for manifests and checkpoints)."""
    if isinstance(layer, FRLinear):
        return {"in_features": layer.in_features, "out_features": layer.out_features,
                "bias": layer.bias is not None}
    if isinstance(layer, (FRConv2d, FRConvTranspose2d)):
        cfg: dict[str, Any] = {
            "in_channels": layer.in_channels, "out_channels": layer.out_channels,
            "kernel_size": list(layer.kernel_size), "stride": list(layer.stride),
            "padding": layer.padding if isinstance(layer.padding, str) else list(layer.padding),
            "dilation": list(layer.dilation), "groups": layer.groups,
            "bias": layer.bias is not None, "padding_mode": layer.padding_mode,
        }
        if isinstance(layer, FRConvTranspose2d):
            cfg["output_padding"] = list(layer.output_padding)
        return cfg
    raise TypeError(f"not an FR layer: {type(layer).__name__}")
