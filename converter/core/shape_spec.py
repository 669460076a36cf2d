"""Parse `--input NAME:1x3x640x959` strings into named static shapes."""
from __future__ import annotations

import re
from dataclasses import dataclass

from frlite.converter.core.errors import UsageError

_PATTERN = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*):(?P<dims>\d+(?:x\d+)*)$")


@dataclass(frozen=True)
class InputShape:
    name: str
    shape: tuple[int, ...]


def parse_input_shape(text: str) -> InputShape:
    m = _PATTERN.match(text.strip())
    if not m:
        raise UsageError(f"--input {text!r} does not parse; write NAME:DIMS such as input:1x3x640x959")
    shape = tuple(int(d) for d in m.group("dims").split("x"))
    if any(d == 0 for d in shape):
        raise UsageError(f"--input {text!r} has a zero dimension; every dimension must be >= 1")
    return InputShape(m.group("name"), shape)


def parse_input_shapes(texts: list[str]) -> list[InputShape]:
    shapes = [parse_input_shape(t) for t in texts]
    names = [s.name for s in shapes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"--input names must be unique; {', '.join(dupes)} appears more than once")
    return shapes
