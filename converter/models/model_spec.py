"""MODEL SPEC: how every command names the nn.Module to build.

    unet                       a built-in model
    path/to/file.py:factory    a callable in a Python file
    package.module:factory     a callable in an importable module

The callable takes no arguments and returns the nn.Module; frereg layers in it are swapped for
frlite's. Any failure becomes a ModelSpecError naming the spec and what to fix.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from frlite.converter.core.errors import ModelSpecError

if TYPE_CHECKING:
    from torch import nn

# built-in name -> the module:factory it stands for. Resolved only when a model is built, so a
# command refusing bad usage (spec_file, portable_spec) answers without importing torch (~2 s).
BUILTINS: dict[str, str] = {"unet": "frlite.converter.models.unet:build_unet"}
SPEC_FORMS = "a built-in name (" + ", ".join(BUILTINS) + "), path/to/file.py:factory or package.module:factory"


def _load_file_module(file: Path, spec: str) -> object:
    if not file.is_file():
        raise ModelSpecError(f"model spec {spec!r}: file {file} does not exist")
    mod_name = f"_frlite_user_model_{abs(hash(str(file.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, file)
    if loader_spec is None or loader_spec.loader is None:
        raise ModelSpecError(f"model spec {spec!r}: cannot import {file} as Python")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = module
    sys.path.insert(0, str(file.resolve().parent))  # let the file import its neighbours
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # user code: any failure is reported as a spec error
        sys.modules.pop(mod_name, None)
        raise ModelSpecError(f"model spec {spec!r}: importing {file} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(str(file.resolve().parent))
    return module


def resolve_factory(spec: str) -> Callable[[], "nn.Module"]:
    spec = spec.strip()
    if spec in BUILTINS:
        module_name, _, attr = BUILTINS[spec].partition(":")
        return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]
    if ":" not in spec:
        raise ModelSpecError(f"model spec {spec!r} is not {SPEC_FORMS}")
    target, _, attr = spec.rpartition(":")
    if not target or not attr.isidentifier():
        raise ModelSpecError(f"model spec {spec!r} is not {SPEC_FORMS}")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _load_file_module(Path(target), spec)
    else:
        if os.getcwd() not in sys.path:  # like `python -m`: modules of the current folder import
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise ModelSpecError(f"model spec {spec!r}: cannot import module {target!r}: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, attr, None)
    if factory is None:
        raise ModelSpecError(f"model spec {spec!r}: {target} has no attribute {attr!r}")
    if not callable(factory):
        raise ModelSpecError(f"model spec {spec!r}: {target}.{attr} is not callable")
    return factory


def build_model(spec: str) -> "nn.Module":
    """Build the module named by `spec`, frereg layers swapped for frlite's, in eval mode."""
    from torch import nn

    from frlite.converter.checkpoints.frereg_import import convert_frereg_layers

    factory = resolve_factory(spec)
    try:
        model = factory()
    except Exception as exc:
        raise ModelSpecError(f"model spec {spec!r}: calling the factory failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model spec {spec!r}: the factory returned {type(model).__name__}, not a torch nn.Module")
    model, _ = convert_frereg_layers(model)
    return model.eval()


def portable_spec(spec: str) -> str:
    """The spec with a file path made absolute, so it resolves from any working folder later."""
    target, sep, attr = spec.strip().rpartition(":")
    if sep and (target.endswith(".py") or "/" in target or "\\" in target):
        return f"{Path(target).resolve()}:{attr}"
    return spec.strip()


def spec_file(spec: str) -> Path | None:
    """The file (or package folder) a spec's code lives in, found without running any of it, so
    an output path can be refused before it could overwrite the model's own source."""
    spec = spec.strip()
    if spec in BUILTINS or ":" not in spec:
        return None
    target = spec.rpartition(":")[0]
    if target.endswith(".py") or "/" in target or "\\" in target:
        return Path(target)
    from importlib.machinery import PathFinder

    search: list[str] | None = [os.getcwd(), *sys.path]
    found = None
    for part in target.split("."):
        found = PathFinder.find_spec(part, search) if search is not None else None
        if found is None:
            return None
        search = list(found.submodule_search_locations or []) or None
    if found is None:
        return None
    if found.submodule_search_locations:  # a package: its folder holds the code
        return Path(list(found.submodule_search_locations)[0])
    return Path(found.origin) if found.origin else None
