"""Strict validation of a parsed manifest.json before any field of it is used.

A convert folder may come from anyone, so the manifest is checked like a network message: the
types come from the dataclasses in `manifest.py` (one source of truth: a field added there is
checked here), every required key must be present and no unknown key is accepted; then the
values that steer later steps are checked against the sets frlite itself writes (runtime, mode,
target, precision, dtype, ORT session options), paths are relative and cannot climb out of the
folder, hashes are sha256 hex, shapes are bounded lists of ints and permutations are
permutations. Any failure is one ManifestError naming the field path, e.g. `artifacts[2].path`.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import PurePosixPath
from typing import Any, TypeVar

from frlite.converter.core.errors import ManifestError

# what `frlite convert` writes (tests assert these equal convert_pipeline's own tuples)
MODES = ("dense", "idct", "factorized")
TARGETS = ("onnx", "ort-mobile", "tflite-cpu", "tflite-gpu", "tflite-nnapi", "executorch")
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8", "int16x8")
RUNTIME_OF_TARGET = {"onnx": "onnxruntime", "ort-mobile": "onnxruntime", "tflite-cpu": "tflite",
                     "tflite-gpu": "tflite", "tflite-nnapi": "tflite", "executorch": "executorch"}
RUNTIMES = ("onnxruntime", "tflite", "executorch")
DTYPES = ("float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
SESSION_OPTIONS = {"graph_optimization_level": ("disable", "basic", "extended", "all")}
MAX_RANK = 8
MAX_ELEMENTS = 1 << 34  # per tensor; a bound against int overflow, not a memory estimate
_SHA256 = re.compile(r"[0-9a-f]{64}")

T = TypeVar("T")


_REWRITE_HINT = "the folder is not as `frlite convert` writes it, re-convert"
_NONFINITE = {"inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}


class _Checker:
    def __init__(self, where: str, hint: str = _REWRITE_HINT, nonfinite_strings: bool = False) -> None:
        self.where = where  # the file's path, for messages
        self.hint = hint    # what to do about it
        # parity.json writes inf/nan as the strings "inf", "-inf", "nan" (JSON has no such numbers)
        self.nonfinite_strings = nonfinite_strings

    def fail(self, field: str, what: str) -> typing.NoReturn:
        raise ManifestError(f"{self.where}: {field} {what}; {self.hint}")

    # -- types, driven by the dataclass annotations ------------------------------------------
    def build(self, cls: type[T], data: object, field: str) -> T:
        if not isinstance(data, dict):
            self.fail(field or "the top level", f"must be a JSON object, got {_kind(data)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            self.fail(_join(field, unknown[0]), f"is not a known key (known: {', '.join(fields)})")
        values = {}
        for name, f in fields.items():
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    self.fail(_join(field, name), "is missing")
                continue
            values[name] = self.value(hints[name], data[name], _join(field, name))
        return cls(**values)

    def value(self, tp: Any, v: object, field: str) -> Any:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is Any or tp is object:
            return v
        if tp in (dict, list):  # unparameterised: the shape alone is checked
            if not isinstance(v, tp):
                self.fail(field, f"must be {'an object' if tp is dict else 'a list'}, got {_kind(v)}")
            return v
        if origin in (typing.Union, types.UnionType):
            if v is None and type(None) in args:
                return None
            (inner,) = [a for a in args if a is not type(None)]
            return self.value(inner, v, field)
        if dataclasses.is_dataclass(tp):
            return self.build(tp, v, field)  # type: ignore[arg-type]
        if origin is list:
            if not isinstance(v, list):
                self.fail(field, f"must be a list, got {_kind(v)}")
            return [self.value(args[0], x, f"{field}[{i}]") for i, x in enumerate(v)]
        if origin is dict:
            if not isinstance(v, dict):
                self.fail(field, f"must be an object, got {_kind(v)}")
            return {k: self.value(args[1], x, f"{field}.{k}") for k, x in v.items()}
        if tp is bool:
            if not isinstance(v, bool):
                self.fail(field, f"must be true or false, got {_kind(v)}")
            return v
        if tp is int:
            if not isinstance(v, int) or isinstance(v, bool):
                self.fail(field, f"must be an integer, got {_kind(v)}")
            return v
        if tp is float:
            if self.nonfinite_strings and isinstance(v, str) and v in _NONFINITE:
                return _NONFINITE[v]
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                self.fail(field, f"must be a number, got {_kind(v)}")
            return float(v)
        if tp is str:
            if not isinstance(v, str):
                self.fail(field, f"must be a string, got {_kind(v)}")
            return v
        raise TypeError(f"manifest_schema cannot check type {tp!r}")  # a new annotation: extend value()

    # -- values ------------------------------------------------------------------------------
    def one_of(self, field: str, v: str, allowed: typing.Iterable[str]) -> None:
        allowed = tuple(allowed)
        if v not in allowed:
            self.fail(field, f"is {v!r}, not one of: {', '.join(allowed)}")

    def rel_path(self, field: str, v: str) -> None:
        """Relative, inside the folder by its letters (symlinks are checked on disk later)."""
        p = PurePosixPath(v)
        if not v or "\x00" in v or "\\" in v:
            self.fail(field, f"{v!r} is not a plain relative path")
        if p.is_absolute():
            self.fail(field, f"{v!r} is an absolute path; artifact paths are relative to the folder")
        if ".." in p.parts:
            self.fail(field, f"{v!r} climbs out of the folder (..)")
        if p.parts in ((), (".",)):
            self.fail(field, f"{v!r} names the folder itself, not a file")

    def tensor(self, field: str, t: Any) -> None:
        if not t.name:
            self.fail(f"{field}.name", "is empty")
        self.one_of(f"{field}.dtype", t.dtype, DTYPES)
        if len(t.shape) > MAX_RANK:
            self.fail(f"{field}.shape", f"has rank {len(t.shape)}, over {MAX_RANK}")
        n = 1
        for d in t.shape:
            if d < 0:
                self.fail(f"{field}.shape", f"{t.shape} has a negative dimension")
            n *= d
        if n > MAX_ELEMENTS:
            self.fail(f"{field}.shape", f"{t.shape} holds {n:,} elements, over {MAX_ELEMENTS:,}")
        if t.perm_from_model is not None and sorted(t.perm_from_model) != list(range(len(t.shape))):
            self.fail(f"{field}.perm_from_model", f"{t.perm_from_model} is not a permutation of the {len(t.shape)} axes")

    def sha(self, field: str, v: str) -> None:
        if not _SHA256.fullmatch(v):
            self.fail(field, f"{v[:80]!r} is not a sha256 (64 lowercase hex digits)")


def _kind(v: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__) + (f" {v!r}"[:40] if isinstance(v, (str, int, float)) else "")


def _join(field: str, name: str) -> str:
    return f"{field}.{name}" if field else name


def _unique(c: _Checker, field: str, names: list[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            c.fail(field, f"names {n!r} twice")
        seen.add(n)


def dataclass_from_json(cls: type[T], data: object, where: str, hint: str, nonfinite_strings: bool = False) -> T:
    """Any frlite record read back from JSON (e.g. a parity report), checked as strictly as the
    manifest: types from the dataclass annotations, no unknown key, nothing required missing."""
    return _Checker(where, hint, nonfinite_strings).build(cls, data, "")


def manifest_from_json(data: object, where: str, format_version: int) -> Any:
    """A validated `Manifest` from parsed JSON; ManifestError (one line) on anything else."""
    from frlite.converter.core.manifest import Manifest

    c = _Checker(where)
    if not isinstance(data, dict):
        c.fail("the top level", f"must be a JSON object, got {_kind(data)}")
    version = data.get("format_version")
    if version != format_version or isinstance(version, bool):
        raise ManifestError(f"{where}: format_version is {version!r}, this frlite reads {format_version}; "
                            "re-convert with this frlite")
    m = c.build(Manifest, data, "")
    if not m.model_spec.strip():
        c.fail("model_spec", "is empty")
    if (m.checkpoint is None) != (m.checkpoint_sha256 is None):
        c.fail("checkpoint_sha256", "and checkpoint must both be set or both be null")
    if m.checkpoint_sha256 is not None:
        c.sha("checkpoint_sha256", m.checkpoint_sha256)
    for group in ("model_inputs", "model_outputs"):
        for i, t in enumerate(getattr(m, group)):
            c.tensor(f"{group}[{i}]", t)
    in_names = [t.model_name for t in m.model_inputs]
    out_names = [t.model_name for t in m.model_outputs]
    _unique(c, "model_inputs", in_names)
    _unique(c, "model_outputs", out_names)
    if not in_names or not out_names:
        c.fail("model_inputs" if not in_names else "model_outputs", "is empty")
    both = set(in_names) & set(out_names)
    if both:
        c.fail("model_outputs", f"reuses the input name {sorted(both)[0]!r}")
    if not m.artifacts:
        raise ManifestError(f"{where} lists no artifacts: there is nothing to compare or run; "
                            "convert with at least one --target")
    keys: set[tuple[str, str, str]] = set()
    hashes: dict[str, str] = {}
    for i, a in enumerate(m.artifacts):
        f = f"artifacts[{i}]"
        c.one_of(f"{f}.runtime", a.runtime, RUNTIMES)
        c.one_of(f"{f}.mode", a.mode, MODES)
        c.one_of(f"{f}.target", a.target, TARGETS)
        c.one_of(f"{f}.precision", a.precision, PRECISIONS)
        if RUNTIME_OF_TARGET[a.target] != a.runtime:
            c.fail(f"{f}.runtime", f"is {a.runtime!r} but target {a.target} runs on {RUNTIME_OF_TARGET[a.target]}")
        if (a.mode, a.target, a.precision) in keys:
            c.fail(f, f"repeats {a.mode}/{a.target}/{a.precision}")
        keys.add((a.mode, a.target, a.precision))
        c.rel_path(f"{f}.path", a.path)
        c.sha(f"{f}.sha256", a.sha256)
        if hashes.setdefault(a.path, a.sha256) != a.sha256:
            c.fail(f"{f}.sha256", f"differs from another artifact's sha256 for the same file {a.path}")
        if a.size_bytes < 0:
            c.fail(f"{f}.size_bytes", "is negative")
        for k, p in a.extra_files.items():
            c.rel_path(f"{f}.extra_files.{k}", p)
        for k, v in a.session_options.items():
            if k not in SESSION_OPTIONS:
                c.fail(f"{f}.session_options.{k}", f"is not a known key (known: {', '.join(SESSION_OPTIONS)})")
            c.one_of(f"{f}.session_options.{k}", v, SESSION_OPTIONS[k])
        for k, v in a.layer_outputs.items():
            ok = isinstance(v, str) if a.runtime == "onnxruntime" else isinstance(v, int) and not isinstance(v, bool) and v >= 0
            if not ok:
                c.fail(f"{f}.layer_outputs.{k}", f"must be a {'value name' if a.runtime == 'onnxruntime' else 'tensor index'}, got {_kind(v)}")
        for group, model_names in (("inputs", in_names), ("outputs", out_names)):
            tensors = getattr(a, group)
            for j, t in enumerate(tensors):
                c.tensor(f"{f}.{group}[{j}]", t)
                if t.model_name not in model_names:
                    c.fail(f"{f}.{group}[{j}].model_name", f"{t.model_name!r} is not one of the model's {group}")
            _unique(c, f"{f}.{group}", [t.name for t in tensors])
            if sorted(t.model_name for t in tensors) != sorted(model_names):
                c.fail(f"{f}.{group}", f"do not map one to one onto the model's {group}")
    return m
