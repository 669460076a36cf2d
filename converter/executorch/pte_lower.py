"""Lower a PyTorch module to an ExecuTorch program (.pte) with the XNNPACK delegate.

The module is exported as it is (NCHW, no ONNX detour): torch.export, then ExecuTorch's edge
dialect with XnnpackPartitioner, then the program buffer. The ops XNNPACK does not take stay
in the program and run on ExecuTorch's portable kernels, many times slower; the lowered graph
is read here so the report can name each of them (converter/executorch/pte_delegation.py).
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from frlite.converter.core.errors import FrliteError
from frlite.converter.executorch.pte_rewrites import (FP16_CHAIN_CHANNELS, nested_spatial_means,
                                                     split_long_accumulations, unit_axis_means)

PTE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
# call_function targets that are bookkeeping, not ops (tuple unpacking of a delegate's outputs)
_NOT_OPS = ("getitem",)


@dataclass
class PteProgram:
    """A lowered program: its bytes and which ops went where."""

    buffer: bytes
    delegated: Counter = field(default_factory=Counter)    # op -> count inside XNNPACK subgraphs
    portable: Counter = field(default_factory=Counter)     # op -> count left to the portable kernels
    subgraphs: int = 0                                     # XNNPACK delegate calls
    why_not: dict[str, list[str]] = field(default_factory=dict)  # portable op -> the partitioner's reasons
    rewrites: dict[str, int] = field(default_factory=dict)   # exact rewrite -> how many ops it changed
    # the exported program (rewrites applied) as a module, before lowering: what the fp16 verdict
    # walks op by op (runtimes/fp16_executor/aten_graph.py); kept only when asked
    graph: torch.fx.GraphModule | None = None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.buffer)


def op_name(target: object) -> str:
    """`aten.convolution.default` for an edge op, the function name for a Python builtin."""
    name = getattr(target, "__name__", None) or str(target)
    text = str(target)
    if text.startswith("<EdgeOpOverload: "):
        return text.removeprefix("<EdgeOpOverload: ").split(">", 1)[0]
    return name


def _ops(graph: torch.fx.Graph) -> list[str]:
    return [op_name(n.target) for n in graph.nodes if n.op == "call_function" and op_name(n.target) not in _NOT_OPS]


class _Reasons(logging.Handler):
    """Collects the XNNPACK partitioner's `WhyNoPartition` debug records: op -> reasons."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reasons: dict[str, set[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        why = record.msg
        node, reason = getattr(why, "node", None), getattr(why, "reason", None)
        if node is not None and reason:
            self.reasons.setdefault(op_name(node.target), set()).add(str(reason))


@contextlib.contextmanager
def _why_not_lowered() -> Iterator[dict[str, set[str]]]:
    """The partitioner says why it leaves a node out only at DEBUG level: listen there, briefly,
    without letting the records reach any other handler."""
    log = logging.getLogger("executorch.backends.xnnpack")
    handler = _Reasons()
    saved = log.level, log.propagate
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(handler)
    try:
        yield handler.reasons
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def lower_to_pte(module: nn.Module, example: tuple[torch.Tensor, ...], precision: str,
                 keep_graph: bool = False) -> PteProgram:
    """`module(*example)` as a .pte whose ops XNNPACK takes are delegated to it. fp16: module and
    inputs cast to half before export (XNNPACK then runs fp16 kernels; the program's I/O is fp16).
    `keep_graph`: also return the exported program's op graph, as lowered."""
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        raise FrliteError(f"--target executorch needs the executorch package ({exc}); "
                          "rerun scripts/setup_venv.sh (requirements/lock.txt pins it)") from exc

    dtype = PTE_DTYPES[precision]
    module = copy.deepcopy(module).eval().to(dtype)  # the caller's module stays fp32
    args = tuple(t.to(dtype) for t in example)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), torch.no_grad():
            warnings.simplefilter("ignore")
            exported = torch.export.export(module, args, strict=False)
            program = PteProgram(b"")
            if precision == "fp16":  # shorter fp16 accumulator chains (pte_rewrites.py), then export that
                graph = exported.module()
                program.rewrites[f"conv over > {FP16_CHAIN_CHANNELS} input channels -> convs over channel slices, "
                                 "added (fp16 accumulators)"] = split_long_accumulations(graph)
                exported = torch.export.export(graph, args, strict=False)
            program.rewrites["mean over W of a mean over H (or H of W) -> mean over (H, W)"] = nested_spatial_means(exported)
            program.rewrites["mean over size-1 axes -> mean over (H, W)"] = unit_axis_means(exported)
            if keep_graph:  # a copy: lowering must not change what the verdict walks
                program.graph = copy.deepcopy(exported.module())
            with _why_not_lowered() as reasons:
                edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
            graph = edge.exported_program().graph_module
            for name in _ops(graph.graph):
                if name == "executorch_call_delegate":
                    program.subgraphs += 1
                else:
                    program.portable[name] += 1
            for _, sub in graph.named_children():
                original = getattr(sub, "original_module", None)
                if original is not None:
                    program.delegated.update(_ops(original.graph))
            program.why_not = {op: sorted(reasons.get(op, {"no XNNPACK lowering"})) for op in program.portable}
            program.buffer = edge.to_executorch().buffer
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FrliteError(f"ExecuTorch export failed: {type(exc).__name__}: {first[:300]}") from exc
    return program
