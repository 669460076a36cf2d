"""The fp16-arithmetic verdict (runtimes/fp16_verdict.measure): value tolerance, task gate, ceiling.

Outputs are built by hand so each rule is hit exactly: a segmentation output whose errors stay
off the argmax is safe by the task gate (as the idct UNet at 6.9e-2 of scale with 99.95% of
pixels is), flipping pixels or passing the ceiling makes it unsafe, an output without a task
must meet the value tolerance, and an overflow is unsafe whatever the outputs look like."""
from __future__ import annotations

import numpy as np
import pytest

from frlite.converter.core.tolerances import FP16_ARITH_CEILING, TASK_GATES, tolerance
from frlite.runtimes.fp16_executor import OpStat
from frlite.runtimes.fp16_verdict import measure

TOL = tolerance("fp16")


def _seg(rng: np.random.Generator) -> np.ndarray:
    """Two-class logits with a clear margin: class 1 wins where the mask is set."""
    mask = rng.random((1, 1, 40, 50)) > 0.5
    fg = np.where(mask, 4.0, -4.0)
    return np.concatenate([-fg, fg], axis=1).astype(np.float32)


def _clean_run() -> list[list[OpStat]]:
    return [[OpStat(0, "CONV_2D", "conv", 1, 10.0, False, False)]]


def test_errors_off_the_argmax_are_safe_by_the_task_gate() -> None:
    ref = _seg(np.random.default_rng(0))
    got = ref.copy()
    got[0, :, 3, 4] += 2.0 * (TOL * 4.0)  # 2x the value tolerance at one pixel, still the same class
    v = measure(_clean_run(), [{"out": ref}], [{"out": got}], TOL, inputs="2 inputs (a.png, b.png)")
    assert v.safe and v.judged_by == "task" and v.pixel_agreement == 1.0
    assert v.worst_rel_to_scale == pytest.approx(2 * TOL, rel=1e-3)
    assert "safe by the task gate" in v.message and "on 2 inputs (a.png, b.png)" in v.message


def test_within_the_value_tolerance_is_safe_by_value() -> None:
    ref = _seg(np.random.default_rng(1))
    got = ref + np.float32(0.5 * TOL * 4.0)
    v = measure(_clean_run(), [{"out": ref}], [{"out": got}], TOL)
    assert v.safe and v.judged_by == "value"


def test_flipped_pixels_fail_the_gate() -> None:
    ref = _seg(np.random.default_rng(2))
    got = ref.copy()
    least = TASK_GATES["segmentation"][1]
    flips = int(np.ceil((1 - least) * 40 * 50)) + 1  # just past the gate
    got[0, :, 0, :flips] = -got[0, :, 0, :flips]
    v = measure(_clean_run(), [{"out": ref}], [{"out": got}], TOL, inputs="1 seeded random sample")
    assert not v.safe and v.judged_by == "task" and v.pixel_agreement < least
    assert "pixel agreement" in v.message and "--gpu_precision_loss_allowed=false" in v.message
    assert "convert --inputs" in v.message  # measured on noise: the user is told to measure on data


def test_ceiling_holds_even_when_the_argmax_survives() -> None:
    ref = _seg(np.random.default_rng(3))
    got = ref.copy()
    got[0, 1] += np.where(got[0, 1] > 0, 1.5 * FP16_ARITH_CEILING * 4.0, 0.0).astype(np.float32)  # winners grow
    v = measure(_clean_run(), [{"out": ref}], [{"out": got}], TOL)
    assert v.pixel_agreement == 1.0 and v.worst_rel_to_scale > FP16_ARITH_CEILING
    assert not v.safe and "ceiling" in v.message


def test_output_without_a_task_must_meet_the_value_tolerance() -> None:
    ref = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 1, 8, 8)  # one channel: no task
    got = ref + np.float32(2 * TOL)
    v = measure(_clean_run(), [{"out": ref}], [{"out": got}], TOL)
    assert not v.safe and v.judged_by == "value" and "tolerance" in v.message


def test_the_gate_does_not_lift_an_output_without_a_task() -> None:
    seg = _seg(np.random.default_rng(4))
    plain = np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 1, 4, 4)
    v = measure(_clean_run(), [{"seg": seg, "plain": plain}], [{"seg": seg, "plain": plain + np.float32(2 * TOL)}], TOL)
    assert not v.safe


def test_overflow_is_unsafe_however_good_the_outputs() -> None:
    ref = _seg(np.random.default_rng(5))
    runs = [[OpStat(0, "CONV_2D", "conv", 1, 10.0, False, False), OpStat(1, "MUL", "sq", 2, 7.0e4, True, False)]]
    v = measure(runs, [{"out": ref}], [{"out": ref.copy()}], TOL, layer_outputs={"conv.weight": 1}, producers={1: 0})
    assert not v.safe and v.judged_by == "overflow"
    assert v.first_overflow is not None and v.first_overflow["op_type"] == "MUL"
    assert "op 1 MUL (sq) (at or after FR layer conv.weight) overflows fp16" in v.message


def test_non_finite_output_is_unsafe() -> None:
    ref = _seg(np.random.default_rng(6))
    got = ref.copy()
    got[0, 0, 0, 0] = np.nan
    v = measure(_clean_run(), [{"out": ref}], [{"out": got}], TOL)
    assert not v.safe
