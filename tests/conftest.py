"""Shared fixtures: the authors' real UNet checkpoint from ../shared, and small FR models."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("FRLITE_SHARED", REPO.parent / "shared")) / "fixtures" / "frereg_unet"
UNET_ARCHIVE = FIXTURES / "unet_fr.tar.xz"
# Dice of the foreground class per image, from the fixture README (PyTorch CPU, 640x959)
README_DICE = {"0000": 0.978770, "0001": 0.979274, "0002": 0.974674, "0003": 0.980772}


@pytest.fixture(scope="session")
def unet_archive() -> Path:
    if not UNET_ARCHIVE.exists():
        pytest.fail(f"fixture {UNET_ARCHIVE} missing: the repo expects ../shared beside the checkout")
    return UNET_ARCHIVE


@pytest.fixture(scope="session")
def unet_pt(unet_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plain `unet_fr.pt` (40,539 B), extracted once into a temp dir."""
    import tarfile

    out = tmp_path_factory.mktemp("unet")
    with tarfile.open(unet_archive) as tar:
        tar.extractall(out, filter="data")
    return out / "unet_fr.pt"


@pytest.fixture(scope="session")
def unet_model(unet_archive: Path):  # type: ignore[no-untyped-def]
    from frlite.converter.models.model_loading import load_fr_model

    return load_fr_model("unet", unet_archive).model


@pytest.fixture(scope="session")
def unet_out(unet_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The authors' UNet converted once at 640x959 (dense + idct + factorized, onnx + tflite, fp32 + fp16).
    Tests using it are marked slow and share one xdist group, so one worker converts once."""
    from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
    from frlite.converter.core.shape_spec import parse_input_shape

    out = tmp_path_factory.mktemp("unet") / "out"
    convert(ConvertRequest("unet", unet_archive, [parse_input_shape("input:1x3x640x959")], out,
                           modes=["dense", "idct", "factorized"], targets=["onnx", "tflite-cpu"],
                           precisions=["fp32", "fp16"],
                           parity_samples=1))
    return out


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `frlite` command as a user would."""
    exe = Path(sys.executable).with_name("frlite")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="session")
def overflowing_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests.models.small_fr:overflowing converted for the GPU delegate: right in fp32, its first
    conv's output passes fp16's 65,504 (fp16-arithmetic verdict: unsafe)."""
    from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
    from frlite.converter.core.shape_spec import parse_input_shape

    out = tmp_path_factory.mktemp("overflowing") / "out"
    convert(ConvertRequest("tests.models.small_fr:overflowing", None, [parse_input_shape("input:1x3x16x16")], out,
                           modes=["dense"], targets=["tflite-cpu", "tflite-gpu"], precisions=["fp32", "fp16"]))
    return out
