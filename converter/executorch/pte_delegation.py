"""The XNNPACK delegation report of a .pte: which ops the delegate takes, which are left to
ExecuTorch's portable kernels (ExecuTorch users' most common slowdown), each named.

Same shape as the TFLite delegate reports (converter/delegates/delegate_compat.py): one JSON with
ops_total / ops_delegated / delegate_ready (read by the decision table, runtimes/report_decision.py)
and one Markdown table, both under compat/ and listed in the artifact's extra_files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from frlite.converter.delegates.delegate_compat import write_report_files
from frlite.converter.executorch.pte_lower import PteProgram

DELEGATE_NAME = "ExecuTorch XNNPACK delegate"


@dataclass
class PteDelegation:
    model: str
    precision: str
    delegated: dict[str, int]     # op -> count inside XNNPACK subgraphs
    portable: dict[str, int]      # op -> count on the portable kernels
    subgraphs: int
    why_not: dict[str, list[str]]  # portable op -> the XNNPACK partitioner's reasons
    rewrites: dict[str, int]       # exact rewrites applied before lowering -> ops changed
    fp16_arith: dict | None = None  # fp16 programs: the measured fp16-arithmetic verdict (manifest Fp16Arith)

    @property
    def ops_total(self) -> int:
        return sum(self.delegated.values()) + sum(self.portable.values())

    @property
    def ops_delegated(self) -> int:
        return sum(self.delegated.values())

    def to_json(self) -> dict:
        return {"target": "executorch", "delegate": DELEGATE_NAME, "model": self.model, "precision": self.precision,
                "ops_total": self.ops_total, "ops_delegated": self.ops_delegated,
                "all_delegated": not self.portable, "delegate_ready": not self.portable,
                "xnnpack_subgraphs": self.subgraphs,
                "fallback": {op: self.why_not.get(op, ["no XNNPACK lowering"]) for op in sorted(self.portable)},
                "rewrites": self.rewrites, "fp16_arithmetic": self.fp16_arith,
                "delegated_ops": dict(sorted(self.delegated.items())), "portable_ops": dict(sorted(self.portable.items()))}

    def summary(self) -> str:
        """The one convert.log line."""
        left = ", ".join(f"{op} x{n}" for op, n in sorted(self.portable.items()))
        return (f"{self.ops_delegated} of {self.ops_total} ops on XNNPACK ({self.subgraphs} subgraph"
                f"{'s' if self.subgraphs != 1 else ''})" + (f"; portable kernels: {left}" if left else ""))


def delegation(program: PteProgram, model: str, precision: str) -> PteDelegation:
    return PteDelegation(model, precision, dict(program.delegated), dict(program.portable), program.subgraphs,
                         dict(program.why_not), dict(program.rewrites))


def format_markdown(rep: PteDelegation) -> str:
    good, total = rep.ops_delegated, rep.ops_total
    lines = [f"# {DELEGATE_NAME}: {rep.model} ({rep.precision})", "",
             f"**{good} of {total} ops run on XNNPACK**" + (" (all)." if not rep.portable else
                                                            "; the rest run on ExecuTorch's portable kernels (slow)."),
             "", "| op | count | on XNNPACK | why not |", "|---|---:|---|---|"]
    rows = [(op, n, "yes", "") for op, n in rep.delegated.items()]
    rows += [(op, n, "no (portable kernel)", "; ".join(rep.why_not.get(op, []))) for op, n in rep.portable.items()]
    lines += [f"| {op} | {n} | {where} | {why} |" for op, n, where, why in sorted(rows)]
    if rep.fp16_arith is not None:
        lines += ["", f"**{rep.fp16_arith.get('message', '')}**"]
    done = [f"- {what}: {n}" for what, n in rep.rewrites.items() if n]
    if done:
        lines += ["", "Exact rewrites before lowering (converter/executorch/pte_rewrites.py):", *done]
    return "\n".join(lines) + "\n"


def write_delegation_report(folder: Path, pte_path: Path, rep: PteDelegation) -> dict[str, str]:
    """compat/<stem>.executorch.{json,md}; returns the artifact's extra_files entries."""
    return write_report_files(folder, f"{pte_path.stem}.executorch", rep.to_json(), format_markdown(rep))
