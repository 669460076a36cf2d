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

# int8 / int16x8: a sanity bound only (no value off by more than the output's whole scale); the
# task gate below is what judges them
TOLERANCES: dict[str, float] = {"fp32": 5e-3, "fp16": 3e-2, "int8-dynamic": 1e-1, "int8": 1.0, "int16x8": 1.0}

# fp16 arithmetic: the bound on max |error| / scale that no task gate can lift
FP16_ARITH_CEILING = 1e-1
# task -> (metric, least value over samples) for fp16 arithmetic: per pixel argmax equal on
# 99.9% of pixels (segmentation), the same top-1 class on every sample (classification)
TASK_GATES: dict[str, tuple[str, float]] = {"segmentation": ("pixel_agreement", 0.999),
                                            "classification": ("top1_agreement", 1.0)}
# fp16 .pte files: XNNPACK on ARMv8.2+ accumulates conv / linear in fp16, emulated step by step
# (runtimes/fp16_executor/fp16_accumulate.py). Above this many multiply-adds per run the verdict
# rounds storage only and says so: the authors' dense UNet at 640x959 takes 449 G
FP16_ACC_MAX_MACS = 1_000_000_000_000


# Full-integer files (int8 / int16x8) are judged by the task against PyTorch fp32 on the check
# inputs: activations quantized to 256 levels move every value, so no value bound both passes a good
# file and fails a broken one. Segmentation: the argmax equal on 99% of pixels (a Dice drop of at
# most ~1 point on the authors' UNet, whose masks cover ~1/4 of the image); classification: the
# same top-1 on every sample; outputs without a task: SQNR >= 20 dB (error power 1% of signal).
INTEGER_GATES: dict[str, tuple[str, float]] = {"segmentation": ("pixel_agreement", 0.99),
                                               "classification": ("top1_agreement", 1.0),
                                               "none": ("sqnr_db", 20.0)}
INTEGER_PRECISIONS = ("int8", "int16x8")


def tolerance(precision: str) -> float:
    """The bound for `precision` (an unknown precision gets the tightest, fp32's)."""
    return TOLERANCES.get(precision, TOLERANCES["fp32"])
