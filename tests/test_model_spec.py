"""MODEL SPEC resolution: built-ins, files, modules, and clear errors for each way it goes wrong."""
from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from frlite.converter.core.errors import ModelSpecError
from frlite.converter.models.model_spec import build_model
from frlite.converter.models.unet import FRUNet


def test_builtin_and_module_specs() -> None:
    assert isinstance(build_model("unet"), FRUNet)
    m = build_model("frlite.converter.models.unet:build_unet")
    assert isinstance(m, FRUNet) and not m.training


def test_file_spec(tmp_path: Path) -> None:
    f = tmp_path / "net.py"
    f.write_text("from frlite.converter.fr.fr_layers import FRConv2d\ndef make():\n    return FRConv2d(3, 4, 3)\n")
    m = build_model(f"{f}:make")
    assert isinstance(m, nn.Conv2d) and m.out_channels == 4


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("resnet", "is not a built-in name"),
        ("nowhere/model.py:make", "does not exist"),
        ("frlite.converter.models.unet:no_such", "has no attribute 'no_such'"),
        ("frlite.converter.models.unet:torch", "is not callable"),
        ("no_such_pkg.mod:make", "cannot import module 'no_such_pkg.mod'"),
        ("frlite.converter.models.unet:", "is not a built-in name"),
    ],
)
def test_bad_specs(spec: str, needle: str) -> None:
    with pytest.raises(ModelSpecError) as info:
        build_model(spec)
    assert needle in str(info.value) and spec in str(info.value)


def test_factory_failures(tmp_path: Path) -> None:
    f = tmp_path / "broken.py"
    f.write_text("def boom():\n    raise RuntimeError('bad config')\ndef notmodule():\n    return 42\n")
    with pytest.raises(ModelSpecError, match="calling the factory failed: RuntimeError: bad config"):
        build_model(f"{f}:boom")
    with pytest.raises(ModelSpecError, match="returned int, not a torch nn.Module"):
        build_model(f"{f}:notmodule")
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def f(:\n")
    with pytest.raises(ModelSpecError, match="importing .* failed: SyntaxError"):
        build_model(f"{syntax}:f")
