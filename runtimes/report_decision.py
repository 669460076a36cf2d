"""The decision table: per converted file (each file once, its targets joined) what a deployment
engineer weighs together: size, parity, task agreement, latency and delegate coverage.

It is built once as data (a DecisionTable of DecisionRow) from the convert folder's manifest,
its delegate compat reports, a parity run's results (when there is one) and bench results (when
there are any), then rendered to text (the end of `frlite convert`), Markdown and HTML (the top
of parity.md / parity.html). parity.json stores the data itself (`decision`).
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

from frlite.converter.core.bounded_read import read_bounded
from frlite.converter.core.convert_folder import ConvertFolder
from frlite.converter.core.errors import ManifestError
from frlite.converter.core.manifest import Artifact, Fp16Arith, IntegerCheck

if TYPE_CHECKING:
    from frlite.runtimes.parity_run import RunResult

DEVICE_MARK = "@"          # phone runs are named <runtime>@<serial>/<delegate> (tflite@P/gpu, executorch@P/xnnpack)


def on_device(runtime: str) -> bool:
    """A run made on a phone by `frlite bench --parity` (host runtimes' names hold no "@")."""
    return DEVICE_MARK in runtime
COMPAT_LIMIT = 16 << 20    # a compat report lists one line per op: the UNet's is ~100 KB


@dataclass
class Verdict:
    state: str                  # pass | FAIL | ERROR (fp32 runs); safe | unsafe | ERROR (fp16 arithmetic)
    worst_rel: float | None     # max |error| / max |reference|; None when not finite or not run
    measured_by: str            # "convert" (its seeded random samples) or "parity" (the report's inputs)
    note: str = ""              # shown beside the verdict (fp16: pixel agreement)


@dataclass
class TaskAgreement:
    """Agreement with PyTorch on what the model is for, worst over runs and samples."""

    task: str                           # segmentation | classification
    pixel_agreement: float | None = None
    dice: float | None = None
    top1: float | None = None


@dataclass
class Coverage:
    """From the file's compat report: how many ops the delegate takes."""

    target: str                 # tflite-gpu | tflite-nnapi
    delegated: int
    total: int
    ready: bool                 # every op delegated and fp16 arithmetic measured safe


@dataclass
class Latency:
    """One bench result, reduced to what the table shows."""

    where: str                  # "host" or the phone's serial
    delegate: str
    threads: int
    median_ms: float | None
    error: str | None = None


@dataclass
class DeviceParity:
    runtime: str                # tflite@<serial>/<delegate> or executorch@<serial>/xnnpack
    verdict: Verdict


@dataclass
class DecisionRow:
    file: str
    mode: str
    targets: list[str]
    precision: str
    size_bytes: int
    fp32: Verdict | None = None
    fp16_arith: Verdict | None = None
    task: TaskAgreement | None = None
    latency: list[Latency] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)
    device: list[DeviceParity] = field(default_factory=list)


@dataclass
class DecisionTable:
    rows: list[DecisionRow]
    measured_by: str            # convert (quick parity only) | parity (a parity run's results)
    benched: bool = False       # bench results were given (else the latency column says so)

    @property
    def has_device(self) -> bool:
        return any(r.device or any(lat.where != "host" for lat in r.latency) for r in self.rows)

    def columns(self) -> list[str]:
        cols = ["file", "mode", "targets", "precision", "size", "parity fp32", "parity fp16-arith",
                "task agreement", "host latency", "delegate coverage"]
        return cols + (["on device"] if self.has_device else [])

    def cells(self, row: DecisionRow) -> list[str]:
        cells = [row.file, row.mode, _targets(row.targets), row.precision, f"{row.size_bytes:,} B",
                 self._verdict(row.fp32), self._verdict(row.fp16_arith), _task(row.task),
                 self._host_latency(row), _coverage(row.coverage)]
        return cells + ([_device(row)] if self.has_device else [])

    def legend(self) -> list[str]:
        """What the numbers are, and how to fill what is missing."""
        pte16 = any(r.precision == "fp16" and "executorch" in r.targets and r.fp16_arith for r in self.rows)
        lines = ["parity: max |error| / max |reference| vs PyTorch, pass within the precision's tolerance; fp16-arith: "
                 "every op's output rounded to fp16, as the GPU delegate and NNAPI compute"
                 + ("; fp16 .pte: conv / linear accumulators too, as XNNPACK on ARMv8.2+" if pte16 else "")
                 + " (docs/parity.md)"
                 + ("; (convert): measured by convert on its check inputs (manifest check_inputs)" if self._mixed() else "")]
        if self.measured_by == "convert":
            lines.append("task agreement: `frlite parity DIR --inputs IMAGES`")
        if not self.benched:
            lines.append("latency: `frlite bench DIR --host` (or --device SERIAL) with DIR holding a parity report "
                         "adds it to the report it writes")
        return lines

    def _mixed(self) -> bool:
        """A parity table showing some verdict convert measured (parity did not redo it)."""
        return self.measured_by == "parity" and any(v is not None and v.measured_by == "convert"
                                                    for r in self.rows for v in (r.fp32, r.fp16_arith))

    def _verdict(self, v: Verdict | None) -> str:
        if v is None:
            return "-"
        text = v.state if v.worst_rel is None else f"{v.state} {v.worst_rel:.1e}"
        notes = [v.note] if v.note else []
        notes += ["convert"] if v.measured_by == "convert" and self.measured_by == "parity" else []
        return text + (f" ({', '.join(notes)})" if notes else "")

    def _host_latency(self, row: DecisionRow) -> str:
        if not self.benched:
            return "not benched"
        return "; ".join(_latency(lat) for lat in row.latency if lat.where == "host") or "-"


def _targets(targets: list[str]) -> str:
    """tflite-cpu, tflite-gpu -> tflite-cpu,gpu: one prefix, then what differs."""
    out: list[str] = []
    for t in targets:
        prefix, _, rest = t.partition("-")
        out.append(rest if out and rest and out[0].startswith(prefix + "-") else t)
    return ",".join(out)


def _task(t: TaskAgreement | None) -> str:
    if t is None:
        return "-"
    if t.task == "segmentation":
        return f"pixels {(t.pixel_agreement or 0) * 100:.4f}%, Dice {t.dice or 0:.5f}"
    return f"top-1 {t.top1 or 0:.3f}"


def _latency(lat: Latency) -> str:
    if lat.error or lat.median_ms is None:
        return f"{lat.delegate} ERROR"
    return f"{lat.delegate} {lat.threads}t {lat.median_ms:.1f} ms"


def _coverage(cov: list[Coverage]) -> str:
    return "; ".join(f"{c.target.removeprefix('tflite-')} {c.delegated}/{c.total}" + (" ready" if c.ready else "")
                     for c in cov) or "-"


def _device(row: DecisionRow) -> str:
    parts = []
    timed = {(lat.where, lat.delegate): lat for lat in row.latency if lat.where != "host"}
    for d in row.device:
        where = d.runtime.split(DEVICE_MARK, 1)[1]
        v = d.verdict
        text = f"{where} {v.state}" + (f" {v.worst_rel:.1e}" if v.worst_rel is not None else "")
        lat = timed.pop(tuple(where.split("/", 1)), None)  # type: ignore[arg-type]
        parts.append(text + (f", {_latency(lat).split(' ', 1)[1]}" if lat else ""))
    parts += [f"{w}/{_latency(lat)}" for (w, _), lat in timed.items()]
    return "; ".join(parts) or "-"


# ---------------------------------------------------------------- building

def _fp16_verdict(a: Fp16Arith, measured_by: str) -> Verdict:
    worst = a.worst_rel_to_scale if a.worst_rel_to_scale is not None and math.isfinite(a.worst_rel_to_scale) else None
    note = f"pixels {a.pixel_agreement * 100:.3f}%" if a.pixel_agreement is not None else ""
    return Verdict(a.verdict, worst, measured_by, note)


def _read_coverage(folder: ConvertFolder, art: Artifact) -> Coverage:
    """The compat report the manifest lists for this file and target (a path inside the folder)."""
    path = folder.extra_file(art, "compat_json")
    try:
        doc = json.loads(read_bounded(path, "compat report", ManifestError, COMPAT_LIMIT))
        total, delegated, ready = doc["ops_total"], doc["ops_delegated"], doc["delegate_ready"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ManifestError(f"compat report {art.extra_files['compat_json']} of {folder.root} is not as frlite writes it "
                            f"({type(exc).__name__}); re-convert") from exc
    if not (isinstance(total, int) and isinstance(delegated, int) and isinstance(ready, bool) and 0 <= delegated <= total):
        raise ManifestError(f"compat report {art.extra_files['compat_json']} of {folder.root} holds impossible op counts; "
                            "re-convert")
    return Coverage(art.target, delegated, total, ready)


def _runs_verdict(runs: Sequence["RunResult"], ok: str, bad: str) -> Verdict:
    errors = [r for r in runs if r.error]
    worst = [r.worst_rel_error for r in runs if not r.error]
    finite = all(math.isfinite(w) for w in worst)
    state = "ERROR" if errors else ok if all(r.passed for r in runs) else bad
    return Verdict(state, max(worst) if worst and finite else None, "parity")


def _task_agreement(runs: Sequence["RunResult"]) -> TaskAgreement | None:
    seg = [t for r in runs for o in r.outputs if o.task == "segmentation" for t in o.task_samples]
    if seg:
        return TaskAgreement("segmentation", min(t.pixel_agreement or 0.0 for t in seg), min(t.dice or 0.0 for t in seg))
    cls = [(r, o) for r in runs for o in r.outputs if o.task == "classification"]
    if cls:
        return TaskAgreement("classification", top1=min(sum(t.top1_agreement or 0.0 for t in o.task_samples) /
                                                         max(len(o.task_samples), 1) for _, o in cls))
    return None


def build_table(folder: ConvertFolder, results: Sequence["RunResult"] | None = None,
                latencies: Mapping[str, list[Latency]] | None = None) -> DecisionTable:
    """One row per file of the folder. Without `results` the verdicts are convert's (quick
    parity, its fp16-arithmetic check); with them, the parity run's, falling back to convert's
    fp16 verdict where parity did not run fp16 arithmetic. `latencies`: bench results by file
    path (None: nothing was benched)."""
    return add_results(convert_table(folder), results, latencies)


def convert_table(folder: ConvertFolder) -> DecisionTable:
    """The rows as convert left them: the manifest's verdicts and the compat reports' coverage
    (read here, once: a bad report stops the caller before anything runs)."""
    rows: dict[str, DecisionRow] = {}
    for art in folder.manifest.artifacts:
        row = rows.get(art.path)
        if row is None:
            row = rows[art.path] = DecisionRow(art.path, art.mode, [], art.precision, art.size_bytes)
            if art.parity is not None:
                p = art.parity
                row.fp32 = Verdict("pass" if p.passed else "FAIL",
                                   p.max_rel_to_scale if math.isfinite(p.max_rel_to_scale) else None, "convert")
            if art.integer is not None:  # full-integer: judged by the task gate, shown as such
                _integer_cells(row, art.integer)
        row.targets.append(art.target)
        if art.fp16_arith is not None and row.fp16_arith is None:
            row.fp16_arith = _fp16_verdict(art.fp16_arith, "convert")
        if "compat_json" in art.extra_files:
            row.coverage.append(_read_coverage(folder, art))
    return DecisionTable(list(rows.values()), "convert")


def _integer_cells(row: DecisionRow, check: IntegerCheck) -> None:
    value = check.value
    shown = "-" if value is None else (f"{value:.1f} dB" if check.metric == "sqnr_db" else f"{100 * value:.2f}%")
    if row.fp32 is not None:
        row.fp32.note = f"integer gate {shown}"
    if value is not None and check.task == "segmentation":
        row.task = TaskAgreement("segmentation", pixel_agreement=value)
    elif value is not None and check.task == "classification":
        row.task = TaskAgreement("classification", top1=value)


def add_results(table: DecisionTable, results: Sequence["RunResult"] | None = None,
                latencies: Mapping[str, list[Latency]] | None = None) -> DecisionTable:
    """`table` (from convert_table) with a parity run's verdicts and bench latencies filled in."""
    for row in table.rows:
        path = row.file
        runs = [r for r in results or () if r.path == path]
        host = [r for r in runs if not on_device(r.runtime)]
        plain = [r for r in host if r.variant != "fp16-arith"]
        arith = [r for r in host if r.variant == "fp16-arith"]
        if plain:
            row.fp32 = _runs_verdict(plain, "pass", "FAIL")
            row.task = _task_agreement(plain)
        if arith:
            measured = [r.fp16_arith for r in arith if r.fp16_arith is not None]
            row.fp16_arith = _fp16_verdict(measured[0], "parity") if len(measured) == len(arith) else \
                _runs_verdict(arith, "safe", "unsafe")
        for r in runs:
            if on_device(r.runtime):
                row.device.append(DeviceParity(r.runtime, _runs_verdict([r], "pass", "FAIL")))
        row.latency = list((latencies or {}).get(path, []))
    table.measured_by = "parity" if results else "convert"
    table.benched = latencies is not None
    return table


# ---------------------------------------------------------------- rendering

def render_text(table: DecisionTable) -> str:
    """Aligned columns for a terminal (every cell padded to its column's widest)."""
    grid = [table.columns()] + [table.cells(r) for r in table.rows]
    widths = [max(len(row[i]) for row in grid) for i in range(len(grid[0]))]
    right = [c == "size" for c in grid[0]]  # numbers line up on their last digit
    lines = ["  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)).rstrip() for row in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + [""] + table.legend())


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(table: DecisionTable) -> list[str]:
    cols = table.columns()
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" if c == "size" else "---" for c in cols) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in table.cells(r)) + " |" for r in table.rows]
    return lines + [""] + [f"- {line}" for line in table.legend()]


def _css_class(cell: str) -> str:
    word = cell.split(" ", 1)[0]
    return " class='pass'" if word in ("pass", "safe") else " class='fail'" if word in ("FAIL", "ERROR", "unsafe") else ""


def render_html(table: DecisionTable) -> str:
    e = html.escape
    parts = ["<table id='decision'><tr>" + "".join(f"<th>{e(c)}</th>" for c in table.columns()) + "</tr>"]
    for r in table.rows:
        parts.append("<tr>" + "".join(f"<td{_css_class(c)}>{e(c)}</td>" for c in table.cells(r)) + "</tr>")
    parts.append("</table><ul class='legend'>" + "".join(f"<li>{e(line)}</li>" for line in table.legend()) + "</ul>")
    return "".join(parts)
