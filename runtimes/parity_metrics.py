"""Numbers a deployment engineer trusts when comparing one output against the reference.

Closeness follows numpy.isclose: an element passes when |got - ref| <= atol + rtol * |ref|.
A NaN or Inf anywhere in either array fails the comparison outright: `nan > tol` is False, so a
check written as "fail when the error exceeds the tolerance" would pass it.
The relative error is taken only where |ref| >= 1e-3 * max|ref|, so values near zero (where any
relative error is meaningless) do not swamp it; the absolute error covers them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from frlite.converter.core.tolerances import TOLERANCES


@dataclass
class OutputMetrics:
    max_abs_error: float
    max_abs_index: list[int]     # where it occurs, in the model's layout
    ref_at_max: float
    got_at_max: float
    mean_abs_error: float
    rmse: float
    max_rel_error: float
    cosine_similarity: float
    psnr_db: float               # 20 log10(range(ref) / rmse); inf when identical
    ref_scale: float             # max |ref|
    min_atol: float              # smallest atol that passes with the rtol used
    min_rtol: float              # smallest rtol that passes with the atol used
    atol: float
    rtol: float
    passed: bool
    nonfinite: int = 0           # NaN/Inf values in the runtime's output: any fails the comparison
    ref_nonfinite: int = 0       # NaN/Inf values in the reference: any fails it too (nothing to compare with)


def compare(ref: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> OutputMetrics:
    if not (math.isfinite(atol) and math.isfinite(rtol)) or atol < 0 or rtol < 0:
        raise ValueError(f"tolerances must be finite and >= 0, got atol={atol}, rtol={rtol}")
    if ref.shape != got.shape:
        raise ValueError(f"shape {got.shape} differs from the reference {ref.shape}")
    r = ref.astype(np.float64).ravel()
    g = got.astype(np.float64).ravel()
    d = np.abs(g - r)
    ar = np.abs(r)
    i = int(np.argmax(d)) if d.size else 0
    scale = float(ar.max()) if ar.size else 0.0
    sig = ar >= 1e-3 * scale if scale > 0 else np.zeros_like(ar, dtype=bool)
    max_rel = float((d[sig] / ar[sig]).max()) if sig.any() else 0.0
    rmse = float(np.sqrt(np.mean(d * d))) if d.size else 0.0
    denom = float(np.linalg.norm(r) * np.linalg.norm(g))
    cosine = float(np.dot(r, g) / denom) if denom > 0 else (1.0 if not d.any() else 0.0)
    span = float(r.max() - r.min()) if r.size else 0.0
    if not math.isfinite(rmse):  # inf / NaN in the output (fp16 arithmetic overflow): no signal left
        psnr = -math.inf
    else:
        psnr = math.inf if rmse == 0 else (20 * math.log10(span / rmse) if span > 0 else -math.inf)
    min_atol = float(np.maximum(d - rtol * ar, 0).max()) if d.size else 0.0
    excess = np.maximum(d - atol, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(excess > 0, excess / np.where(ar > 0, ar, np.nan), 0.0)
    min_rtol = float(np.nanmax(np.where(np.isnan(need), np.inf, need))) if d.size else 0.0
    bad_got = int(np.count_nonzero(~np.isfinite(g)))
    bad_ref = int(np.count_nonzero(~np.isfinite(r)))
    passed = bad_got == 0 and bad_ref == 0 and bool(np.all(d <= atol + rtol * ar))
    idx = [int(v) for v in np.unravel_index(i, ref.shape)] if d.size else []
    return OutputMetrics(float(d[i]) if d.size else 0.0, idx, float(r[i]) if d.size else 0.0,
                         float(g[i]) if d.size else 0.0, float(d.mean()) if d.size else 0.0, rmse, max_rel,
                         cosine, psnr, scale, min_atol, min_rtol, atol, rtol, passed, bad_got, bad_ref)


def guess_task(shape: tuple[int, ...]) -> str:
    """segmentation: (N, C>=2, H, W); classification: (N, C>=2); else none. `--task` overrides."""
    if len(shape) == 4 and shape[1] >= 2:
        return "segmentation"
    if len(shape) == 2 and shape[1] >= 2:
        return "classification"
    return "none"


@dataclass
class TaskMetrics:
    task: str
    pixel_agreement: float | None = None   # segmentation: argmax equal per pixel
    dice: float | None = None              # segmentation: mean Dice over foreground classes
    top1_agreement: float | None = None    # classification
    top5_agreement: float | None = None    # classification: same top-5 set


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio: 10 log10(sum ref^2 / sum (ref - got)^2); inf when equal."""
    err = float(((ref.astype(np.float64) - got) ** 2).sum())
    power = float((ref.astype(np.float64) ** 2).sum())
    return math.inf if err == 0 else (10 * math.log10(power / err) if power > 0 else -math.inf)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * np.logical_and(a, b).sum() / s)


def task_metrics(task: str, ref: np.ndarray, got: np.ndarray) -> TaskMetrics:
    if task == "segmentation":
        rm, gm = ref.argmax(axis=1), got.argmax(axis=1)
        classes = range(1, ref.shape[1])
        dices = [_dice(rm == c, gm == c) for c in classes]
        return TaskMetrics(task, float((rm == gm).mean()), float(np.mean(dices)) if dices else 1.0)
    if task == "classification":
        k = min(5, ref.shape[1])
        top1 = float((ref.argmax(1) == got.argmax(1)).mean())
        rs = np.sort(np.argsort(-ref, axis=1)[:, :k], axis=1)
        gs = np.sort(np.argsort(-got, axis=1)[:, :k], axis=1)
        return TaskMetrics(task, top1_agreement=top1, top5_agreement=float(np.all(rs == gs, axis=1).mean()))
    return TaskMetrics("none")


# default (atol relative to the reference's scale, rtol) per precision: the one table convert's
# quick parity uses too (converter/core/tolerances.py, where the values are justified)
DEFAULT_TOLERANCES = {p: (a, 0.0) for p, a in TOLERANCES.items()}
