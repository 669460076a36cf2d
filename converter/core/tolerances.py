"""The one tolerance table per precision, shared by convert's quick parity, its fp16-arithmetic
verdict and `frlite parity` / `frlite bench --parity` (stated in docs/parity.md).

Each value bounds max |got - ref| / max |ref| (an atol relative to the reference's scale, rtol 0).
fp32: the authors' UNet on its real 640x959 images reaches 1.9e-3 in TFLite fp32 (its
batch-statistics norms amplify float noise; 2e-4 on seeded inputs) with 99.998% of pixels
unchanged, while a weight off by 5% gives 5e-2: 5e-3 passes the first and fails the second.
fp16 storage / arithmetic and int8-dynamic weights round harder, hence 3e-2 and 1e-1.

fp16 arithmetic (every op's output rounded to half, as the GPU delegate with precision loss
allowed computes) is judged by the task where one is known: a file whose worst error exceeds the
fp16 value tolerance is still safe when the task gate holds and the error stays under
FP16_ARITH_CEILING. Measured on the authors' UNet at 640x959, four real images: the idct file
(weights rebuilt by fp16 ops) is off by 6.9e-2 of scale with 99.95-99.98% of pixels and Dice
within 5.3e-4, the factorized file by 2.95e-2; the same files before the fp16 rewrites overflowed
to 75-82% of pixels. The gate tells those apart; a value bound alone calls both broken.
"""
from __future__ import annotations

TOLERANCES: dict[str, float] = {"fp32": 5e-3, "fp16": 3e-2, "int8-dynamic": 1e-1}

# fp16 arithmetic: the bound on max |error| / scale that no task gate can lift
FP16_ARITH_CEILING = 1e-1
# task -> (metric, least value over samples) for fp16 arithmetic: per pixel argmax equal on
# 99.9% of pixels (segmentation), the same top-1 class on every sample (classification)
TASK_GATES: dict[str, tuple[str, float]] = {"segmentation": ("pixel_agreement", 0.999),
                                            "classification": ("top1_agreement", 1.0)}


def tolerance(precision: str) -> float:
    """The bound for `precision` (an unknown precision gets the tightest, fp32's)."""
    return TOLERANCES.get(precision, TOLERANCES["fp32"])
