"""parity.md: a summary table read in ten seconds, then the details per run and output."""
from __future__ import annotations

from pathlib import Path

from frlite.runtimes.parity_metrics import OutputMetrics
from frlite.runtimes.parity_run import OutputResult, ParityReport, RunResult
from frlite.runtimes.report_decision import render_markdown


def _num(v: object, digits: int = 1) -> str:
    return "-" if v is None else f"{float(v):.{digits}f}"  # type: ignore[arg-type]


def _task_cell(run: RunResult) -> str:
    cells = []
    for o in run.outputs:
        tm = o.task_samples
        if o.task == "segmentation":
            agree = min(t.pixel_agreement or 0 for t in tm) * 100
            dice = min(t.dice or 0 for t in tm)
            cells.append(f"pixels {agree:.4f}%, Dice {dice:.5f}")
        elif o.task == "classification":
            cells.append(f"top-1 {sum(t.top1_agreement or 0 for t in tm) / len(tm):.3f}, "
                         f"top-5 {sum(t.top5_agreement or 0 for t in tm) / len(tm):.3f}")
    return "; ".join(cells) or "-"


def sample_metrics(report: ParityReport, r: RunResult, o: OutputResult) -> list[tuple[str, OutputMetrics]]:
    """(sample source, metrics) per sample of one output: a phone's run names its own samples."""
    inputs = r.inputs or report.inputs
    return [(inputs[i]["source"], m) for i, m in enumerate(o.samples)]


def format_markdown(report: ParityReport) -> str:
    verdict = "PASS" if report.passed else "FAIL"
    lines = [f"# Parity: {report.model_spec} ({report.folder}) - {verdict}", "",
             f"Reference: PyTorch. {len(report.inputs)} input sample(s).", ""]
    if report.decision is not None:
        lines += ["## Decision table", "", *render_markdown(report.decision), ""]
    lines += ["## Runs", "", "Worst = max |error| / max |reference| over samples; task agreement is the worst sample.", "",
              "| artifact | runtime | result | worst error | task agreement |", "|---|---|---|---:|---|"]
    for r in report.results:
        if r.error:
            lines.append(f"| {r.path} | {r.runtime} ({r.variant}) | ERROR | - | {r.error} |")
            continue
        worst = r.worst_rel_error
        lines.append(f"| {r.path} | {r.runtime} ({r.variant}) | {'pass' if r.passed else '**FAIL**'} | {worst:.2e}{' (' + r.nonfinite + ')' if r.nonfinite else ''} | {_task_cell(r)} |")
    arith = [r for r in report.results if r.fp16_arith is not None]
    if arith:
        lines += ["", "## fp16 arithmetic (GPU delegate with precision loss allowed, NNAPI allow_fp16)", "",
                  "The file's own graph with every op's output rounded to IEEE fp16 (docs/parity.md).", ""]
        lines += [f"- {r.path}: {r.fp16_arith.message}" for r in arith]  # type: ignore[union-attr]
    for label, cmp in report.layers.items():
        first = cmp["first_divergent"]
        lines += ["", f"## Per-layer comparison: {label}", "",
                  (f"**First layer where the error jumps: `{first}`**" if first else
                   "No single layer stands out." if cmp["rows"] else cmp.get("note", "")), "",
                  ]
        if any(r.get("sqnr_db") is not None for r in cmp["rows"]):  # an integer file: quantization error per op
            lines += ["| op output | SQNR dB | cosine | loses dB here |", "|---|---:|---:|---:|"]
            lines += [f"| {r['layer']} | {_num(r.get('sqnr_db'))} | {_num(r.get('cosine'), 4)} | {_num(r.get('added_db'))} |"
                      for r in cmp["rows"]]
        else:
            lines += ["| FR layer | max abs error | / layer scale |", "|---|---:|---:|"]
            lines += [f"| {r['layer']} | {r['max_abs_error']:.3e} | {r['rel_to_scale']:.2e} |" for r in cmp["rows"]]
    lines += ["", "## Tolerances", "",
              "An element passes when |got - ref| <= atol + rtol x |ref|. Defaults per precision "
              "(atol as a fraction of the reference's max |value|):", ""]
    for name, tol in report.tolerances.items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:g}" for k, v in tol.items()))
    lines += ["", "## Details", ""]
    for r in report.results:
        lines.append(f"### {r.label}")
        if r.error:
            lines += ["", f"Could not run: {r.error}", ""]
            continue
        lines += ["", "| output | sample | max abs (at index) | mean abs | RMSE | max rel | cosine | PSNR dB | min atol | min rtol | pass |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for o in r.outputs:
            lines += [f"| {o.name} | {source} | {m.max_abs_error:.3e} at {m.max_abs_index} (ref {m.ref_at_max:.4g}, "
                      f"got {m.got_at_max:.4g}) | {m.mean_abs_error:.2e} | {m.rmse:.2e} | {m.max_rel_error:.2e} | "
                      f"{m.cosine_similarity:.8f} | {m.psnr_db:.1f} | {m.min_atol:.2e} | {m.min_rtol:.2e} | "
                      f"{'yes' if m.passed else 'NO'} |" for source, m in sample_metrics(report, r, o)]
            lines.append(f"\n{o.name}: atol {o.atol:.3e}, rtol {o.rtol:g}, pass rate {o.pass_rate * 100:.0f}%, task {o.task}\n")
    env = report.environment
    lines += ["## Environment", "", f"- CPU: {env['cpu']} ({env['cores']} cores), threads {env['threads']}",
              "- " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),  # type: ignore[union-attr]
              "", "## Inputs", ""] + [f"- {i['source']}: " + ", ".join(f"{k} sha256 {v[:16]}..." for k, v in i["sha256"].items())
                                      for i in report.inputs]
    return "\n".join(lines) + "\n"


def write_markdown(report: ParityReport, path: Path) -> Path:
    path.write_text(format_markdown(report))
    return path
