"""Segmentation pictures for parity.html: a mask means little without its image, so each mask
(the reference's, the runtime's, and where they differ) is drawn over the input it came from.

Pictures are composed with numpy at display size and encoded as PNG data URIs (the page stays
self-contained). Downscaling keeps every differing pixel visible: the difference is reduced by
block maximum, so one wrong pixel in a 640x959 mask still marks its block.
"""
from __future__ import annotations

import base64
import io
import math

import numpy as np

MAX_WIDTH = 320            # display width of one picture, in pixels
ALPHA = 0.45               # mask opacity over the image
# class colours (class 0, the background, is left transparent)
PALETTE = np.array([[0, 0, 0], [255, 200, 0], [0, 160, 255], [60, 200, 90], [230, 60, 200], [255, 120, 40],
                    [140, 90, 255], [0, 220, 200]], dtype=np.float32) / 255.0
DIFF_COLOUR = np.array([1.0, 0.0, 0.0], dtype=np.float32)


def _factor(h: int, w: int) -> int:
    return max(1, min(math.ceil(w / MAX_WIDTH), h))  # at least one row of blocks


def _blocks(a: np.ndarray, f: int) -> np.ndarray:
    """(H, W, ...) -> (H//f, W//f, f*f, ...): the f x f blocks, cropped to whole blocks."""
    h, w = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    a = a[:h, :w]
    rest = a.shape[2:]
    return a.reshape(h // f, f, w // f, f, *rest).swapaxes(1, 2).reshape(h // f, w // f, f * f, *rest)


def background(sample: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The input sample (C, H, W) as an RGB image (H, W, 3) in [0, 1] of the mask's size: three
    channels are shown as colour, any other count as the channel mean in grey, min-max scaled; an
    input of another size is sampled to the mask's (nearest). No usable input: mid grey."""
    h, w = shape
    if sample is None or sample.ndim != 3 or not np.all(np.isfinite(sample)):
        return np.full((h, w, 3), 0.5, np.float32)
    img = sample.transpose(1, 2, 0) if sample.shape[0] == 3 else np.repeat(sample.mean(axis=0)[..., None], 3, axis=2)
    img = img.astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else np.full_like(img, 0.5)
    if img.shape[:2] != (h, w):
        rows = np.minimum((np.arange(h) * img.shape[0]) // h, img.shape[0] - 1)
        cols = np.minimum((np.arange(w) * img.shape[1]) // w, img.shape[1] - 1)
        img = img[rows][:, cols]
    return img


def mask_over(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Class colours blended over the image at display size (class 0 stays clear)."""
    f = _factor(*mask.shape)
    img = _blocks(image, f).mean(axis=2)
    m = _blocks(mask, f)[:, :, 0]  # one pixel per block: classes are not averaged
    colour = PALETTE[m % len(PALETTE)]
    alpha = np.where(m > 0, ALPHA, 0.0)[..., None]
    return img * (1 - alpha) + colour * alpha


def difference_over(image: np.ndarray, differ: np.ndarray) -> np.ndarray:
    """The image dimmed to grey, with every block holding a differing pixel in red."""
    f = _factor(*differ.shape)
    grey = _blocks(image, f).mean(axis=(2, 3))[..., None] * 0.6 + 0.2
    hit = _blocks(differ, f).any(axis=2)[..., None]
    return np.where(hit, DIFF_COLOUR, np.repeat(grey, 3, axis=2))


def png_uri(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), "RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def segmentation_pictures(sample: np.ndarray | None, ref_logits: np.ndarray, got_logits: np.ndarray) -> list[tuple[str, str]]:
    """(caption, data URI) for the reference mask, the runtime's mask and their difference, each
    over the input image. Logits are one sample (1, C, H, W)."""
    rm, gm = ref_logits.argmax(axis=1)[0], got_logits.argmax(axis=1)[0]
    image = background(sample, rm.shape)
    differ = rm != gm
    return [("reference mask over the input", png_uri(mask_over(image, rm))),
            ("runtime mask over the input", png_uri(mask_over(image, gm))),
            (f"difference over the input ({int(differ.sum()):,} pixels)", png_uri(difference_over(image, differ)))]
