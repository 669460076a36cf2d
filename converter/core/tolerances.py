"""The one tolerance table per precision, shared by convert's quick parity, its fp16-arithmetic
verdict and `frlite parity` / `frlite bench --parity` (stated in docs/parity.md).

Each value bounds max |got - ref| / max |ref| (an atol relative to the reference's scale, rtol 0).
fp32: the authors' UNet on its real 640x959 images reaches 1.9e-3 in TFLite fp32 (its
batch-statistics norms amplify float noise; 2e-4 on seeded inputs) with 99.998% of pixels
unchanged, while a weight off by 5% gives 5e-2: 5e-3 passes the first and fails the second.
fp16 storage / arithmetic and int8-dynamic weights round harder, hence 3e-2 and 1e-1.
"""
from __future__ import annotations

TOLERANCES: dict[str, float] = {"fp32": 5e-3, "fp16": 3e-2, "int8-dynamic": 1e-1}


def tolerance(precision: str) -> float:
    """The bound for `precision` (an unknown precision gets the tightest, fp32's)."""
    return TOLERANCES.get(precision, TOLERANCES["fp32"])
