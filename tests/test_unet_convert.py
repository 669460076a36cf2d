"""The authors' FR UNet at full size (1x3x640x959): every converted file reproduces PyTorch's
masks and the fixture README's Dice on the four real images. Slow: one conversion shared."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FIXTURES, README_DICE
from converter.convert_pipeline import ConvertRequest, convert
from converter.manifest import read_manifest
from converter.segmentation import argmax_mask, dice, load_image, load_mask
from converter.shape_spec import parse_input_shape
from runtimes.base import RunOptions
from runtimes.loader import open_artifact

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("unet")]
IDCT_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def unet_out(unet_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("unet") / "out"
    convert(ConvertRequest("unet", unet_archive, [parse_input_shape("input:1x3x640x959")], out,
                           modes=["dense", "idct"], targets=["onnx", "tflite-cpu"], precisions=["fp32", "fp16"],
                           parity_samples=1))
    return out


@pytest.fixture(scope="module")
def images_and_reference(unet_model):  # type: ignore[no-untyped-def]
    data = []
    for key in README_DICE:
        x = load_image(FIXTURES / f"in{key}.png")
        with torch.no_grad():
            ref = argmax_mask(unet_model(torch.from_numpy(x)).numpy())
        data.append((key, x, ref, load_mask(FIXTURES / f"gt{key}.png")))
    return data


def test_idct_files_are_small(unet_out: Path) -> None:
    m = read_manifest(unet_out)
    onnx_idct = m.artifact("idct", "onnx", "fp32")
    tfl_idct = m.artifact("idct", "tflite-cpu", "fp32")
    assert onnx_idct.size_bytes <= IDCT_LIMIT and tfl_idct.size_bytes <= IDCT_LIMIT
    assert m.artifact("dense", "onnx", "fp32").size_bytes > 100_000_000
    assert not onnx_idct.notes and not tfl_idct.notes


@pytest.mark.parametrize("mode,target,precision,min_agree", [
    ("dense", "onnx", "fp32", 0.9999), ("idct", "onnx", "fp32", 0.9999),
    ("dense", "tflite-cpu", "fp32", 0.9999), ("idct", "tflite-cpu", "fp32", 0.9999),
    ("dense", "tflite-cpu", "fp16", 0.999), ("idct", "tflite-cpu", "fp16", 0.999),
])
def test_masks_and_dice_on_fixture_images(unet_out: Path, images_and_reference, mode: str, target: str,  # type: ignore[no-untyped-def]
                                          precision: str, min_agree: float) -> None:
    art = read_manifest(unet_out).artifact(mode, target, precision)
    runtime = open_artifact(unet_out, art, RunOptions(threads=2))
    for key, x, ref_mask, truth in images_and_reference:
        mask = argmax_mask(runtime.run({"input": x})["output"])
        agree = float((mask == ref_mask).mean())
        assert agree >= min_agree, (art.path, key, agree)
        if precision == "fp32":
            assert abs(dice(mask == 1, truth) - README_DICE[key]) <= 1e-4, (art.path, key)
