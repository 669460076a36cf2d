"""Runs convert's pass list over one ConvertContext, logging time and peak memory per pass.

A pass is a small object with a `name`, the context fields it `needs` and `adds`, an
`applies(ctx)` (modes / targets it serves) and `run(ctx)`. The list is data: later work (int8,
ExecuTorch, onnx2tf repairs) is a new pass inserted into it (`insert_after`), not a longer function.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, Sequence

from frlite.converter.core.errors import FrliteError
from frlite.converter.core.manifest import PassRecord
from frlite.converter.core.memory import release_memory
from frlite.converter.passes.context import ConvertContext


class Pass(Protocol):
    name: str
    needs: tuple[str, ...]
    adds: tuple[str, ...]

    def applies(self, ctx: ConvertContext) -> bool: ...

    def run(self, ctx: ConvertContext) -> None: ...


@dataclass
class BasePass:
    """Defaults for a pass: applies always, needs and adds nothing."""

    name: str = "pass"
    needs: tuple[str, ...] = ()
    adds: tuple[str, ...] = ()

    def applies(self, ctx: ConvertContext) -> bool:
        return True

    def run(self, ctx: ConvertContext) -> None:
        raise NotImplementedError(self.name)


class PassOrderError(FrliteError):
    """A pass list whose order is wrong: an internal error (a pass reads what no earlier pass added)."""


def insert_after(passes: Sequence[Pass], after: str, new: Pass) -> list[Pass]:
    """A copy of `passes` with `new` right after the pass named `after`."""
    names = [p.name for p in passes]
    if after not in names:
        raise PassOrderError(f"internal error: no pass named {after!r} to insert {new.name!r} after (passes: {', '.join(names)})")
    i = names.index(after) + 1
    return [*passes[:i], new, *passes[i:]]


def _present(ctx: ConvertContext, name: str) -> bool:
    """`field` is set (not None); `field.key` names a key of a dict field (onnx_files.dense)."""
    attr, _, key = name.partition(".")
    value = getattr(ctx, attr, None)
    return value is not None and (not key or key in value)


def run_passes(ctx: ConvertContext, passes: Sequence[Pass]) -> None:
    """Run each pass that applies, in order; check its needs first, record what it adds, and log
    and record (ctx.pass_records) its time and peak RSS."""
    for p in passes:
        if not p.applies(ctx):
            continue
        missing = [n for n in p.needs if n not in ctx.provided]
        if missing:
            raise PassOrderError(f"internal error: pass {p.name!r} needs {', '.join(missing)}, which no earlier pass "
                                 f"added (ran: {', '.join(r.name for r in ctx.pass_records) or 'none'})")
        ctx.mem.start_stage()
        t0 = time.perf_counter()
        p.run(ctx)
        seconds = time.perf_counter() - t0
        peak = ctx.mem.stage_peak()
        release_memory()
        absent = [n for n in p.adds if not _present(ctx, n)]
        if absent:
            raise PassOrderError(f"internal error: pass {p.name!r} did not add {', '.join(absent)}")
        ctx.provided.update(p.adds)
        ctx.pass_records.append(PassRecord(p.name, round(seconds, 3), int(peak)))
        ctx.log(f"  pass {p.name}: {seconds:.1f} s, peak {peak / 2**30:.2f} GiB")
