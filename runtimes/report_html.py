"""parity.html: one self-contained page (no network) with the decision table, the runs, the
details and pictures: per output an error histogram, and for segmentation outputs the reference
mask, the runtime's mask and where they differ, each over its input image (report_overlay.py).
Images are PNGs embedded as data URIs. Each run's details are one <section> keyed by its label,
so a report rebuilt from parity.json (`frlite bench` adding phone runs) keeps earlier pictures."""
from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import numpy as np

from frlite.runtimes.parity_run import ParityReport, RunResult
from frlite.runtimes.report_decision import render_html as render_decision
from frlite.runtimes.report_markdown import _num, _task_cell, sample_metrics
from frlite.runtimes.report_overlay import segmentation_pictures

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}
th{background:#f3f3f3}.pass{color:#0a7d28;font-weight:bold}.fail{color:#c00;font-weight:bold}
figure{display:inline-block;margin:4px}figcaption{font-size:12px;text-align:center}
.legend{font-size:12px;color:#444}#decision td{white-space:nowrap}.overlay img{width:320px;image-rendering:pixelated}"""


def _png(fig) -> str:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _histogram(err: np.ndarray, title: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.6))
    e = np.abs(err).ravel()
    e = e[np.isfinite(e) & (e > 0)]  # NaN/Inf (e.g. fp16 arithmetic) are counted in the table and verdict, they have no bin
    if e.size:
        bins = np.logspace(np.log10(e.min()), np.log10(e.max()) + 1e-9, 40)
        ax.hist(e, bins=bins, color="#4a78b5")
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("|runtime - reference|")
    ax.set_ylabel("elements")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def _kept(report: ParityReport, kind: str, label: str) -> dict[str, list]:
    """A run's own reference / input samples (a phone's run) or the report's."""
    return report.samples_kept.get(f"{kind}|{label}") or report.samples_kept.get(kind, {})


def _input_sample(report: ParityReport, label: str) -> np.ndarray | None:
    """The first sample of the first image-like (N, C, H, W) input, to draw masks over."""
    for arrays in _kept(report, "input", label).values():
        if arrays and getattr(arrays[0], "ndim", 0) == 4:
            return arrays[0][0]
    return None


def _pictures(report: ParityReport, r: RunResult) -> list[str]:
    e = html.escape
    refs, got = _kept(report, "reference", r.label), report.samples_kept.get(r.label, {})
    parts = []
    for o in r.outputs:
        if o.name not in got or o.name not in refs:
            continue
        ref0, got0 = refs[o.name][0], got[o.name][0]
        parts.append(f"<figure><img alt='error histogram {e(o.name)}' src='{_histogram(got0 - ref0, f'{o.name}: error histogram')}'>"
                     f"<figcaption>{e(o.name)} error histogram</figcaption></figure>")
        if o.task == "segmentation":
            for caption, uri in segmentation_pictures(_input_sample(report, r.label), ref0, got0):
                parts.append(f"<figure class='overlay'><img alt='{e(caption.split(' (')[0])}' src='{uri}'>"
                             f"<figcaption>{e(o.name)}: {e(caption)}</figcaption></figure>")
    return parts


def _run_section(report: ParityReport, r: RunResult) -> str:
    e = html.escape
    parts = [f"<section class='run' data-run='{e(r.label, quote=True)}'>",
             f"<h2>{e(r.label)}</h2><table class='details'><tr><th>output</th><th>sample</th><th>max abs</th><th>index</th>"
             "<th>mean abs</th><th>RMSE</th><th>max rel</th><th>cosine</th><th>PSNR dB</th><th>min atol</th><th>min rtol</th><th>pass</th></tr>"]
    for o in r.outputs:
        parts += [f"<tr><td>{e(o.name)}</td><td>{e(source)}</td><td>{m.max_abs_error:.3e}</td><td>{m.max_abs_index}</td>"
                  f"<td>{m.mean_abs_error:.2e}</td><td>{m.rmse:.2e}</td><td>{m.max_rel_error:.2e}</td><td>{m.cosine_similarity:.8f}</td>"
                  f"<td>{m.psnr_db:.1f}</td><td>{m.min_atol:.2e}</td><td>{m.min_rtol:.2e}</td>"
                  f"<td class='{'pass' if m.passed else 'fail'}'>{'yes' if m.passed else 'NO'}</td></tr>"
                  for source, m in sample_metrics(report, r, o)]
    parts += ["</table><div>", *_pictures(report, r), "</div></section>"]
    return "\n".join(parts)


_SECTION = re.compile(r"<section class='run' data-run='([^']*)'>.*?</section>", re.S)


def run_sections(page: str) -> dict[str, str]:
    """The per-run sections of a parity.html frlite wrote, by result label: a report rebuilt
    from parity.json (which holds no pictures) keeps the pictures of the runs it did not redo."""
    return {html.unescape(m.group(1)): m.group(0) for m in _SECTION.finditer(page)}


def format_html(report: ParityReport, earlier_sections: dict[str, str] | None = None) -> str:
    """The page. `earlier_sections` (run_sections of an earlier page) stand in for runs whose
    outputs this report no longer holds."""
    import matplotlib

    matplotlib.use("Agg")
    e = html.escape
    verdict = "PASS" if report.passed else "FAIL"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>frlite parity</title><style>{_CSS}</style></head><body>",
             f"<h1>Parity: {e(report.model_spec)} <span class='{'pass' if report.passed else 'fail'}'>{verdict}</span></h1>",
             f"<p>Folder {e(report.folder)}; reference PyTorch; {len(report.inputs)} input sample(s).</p>"]
    if report.decision is not None:
        parts += ["<h2>Decision table</h2>", render_decision(report.decision)]
    parts += ["<h2>Runs</h2>",
              "<table id='summary'><tr><th>artifact</th><th>runtime</th><th>result</th><th>worst error / scale</th><th>task agreement</th></tr>"]
    for r in report.results:
        if r.error:
            parts.append(f"<tr><td>{e(r.path)}</td><td>{e(r.runtime)} ({e(r.variant)})</td><td class='fail'>ERROR</td><td>-</td><td>{e(r.error)}</td></tr>")
            continue
        worst = r.worst_rel_error
        cls, word = ("pass", "pass") if r.passed else ("fail", "FAIL")
        parts.append(f"<tr><td>{e(r.path)}</td><td>{e(r.runtime)} ({e(r.variant)})</td><td class='{cls}'>{word}</td>"
                     f"<td>{worst:.2e}</td><td>{e(_task_cell(r))}</td></tr>")
    parts.append("</table>")
    arith = [r for r in report.results if r.fp16_arith is not None]
    if arith:
        parts.append("<h2>fp16 arithmetic (GPU delegate with precision loss allowed, NNAPI allow_fp16)</h2><ul>")
        parts += [f"<li class='{'pass' if r.fp16_arith.safe else 'fail'}'>{e(r.path)}: {e(r.fp16_arith.message)}</li>"  # type: ignore[union-attr]
                  for r in arith]
        parts.append("</ul>")
    earlier = earlier_sections or {}
    for r in report.results:
        if r.error:
            continue
        has_outputs = r.label in report.samples_kept
        parts.append(earlier[r.label] if not has_outputs and r.label in earlier else _run_section(report, r))
    for label, cmp in report.layers.items():
        first = cmp["first_divergent"]
        parts.append(f"<h2>Per-layer comparison: {e(label)}</h2><p>"
                     + (f"<b class='fail'>First layer where the error jumps: {e(first)}</b>" if first else e(cmp.get("note") or "No single layer stands out."))
                     + "</p><table>")
        quant = any(r.get("sqnr_db") is not None for r in cmp["rows"])  # an integer file: error per op
        parts.append("<tr><th>op output</th><th>SQNR dB</th><th>cosine</th><th>loses dB here</th></tr>" if quant
                     else "<tr><th>FR layer</th><th>max abs error</th><th>/ layer scale</th></tr>")
        for r in cmp["rows"]:
            cls = " class='fail'" if r["layer"] == first else ""
            cells = ([_num(r.get("sqnr_db")), _num(r.get("cosine"), 4), _num(r.get("added_db"))] if quant
                     else [f"{r['max_abs_error']:.3e}", f"{r['rel_to_scale']:.2e}"])
            parts.append(f"<tr{cls}><td>{e(r['layer'])}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
    env = report.environment
    parts.append(f"<h2>Environment</h2><p>{e(str(env['cpu']))}, {env['cores']} cores, threads {env['threads']}; "
                 + e(", ".join(f"{k} {v}" for k, v in env["versions"].items())) + "</p>")  # type: ignore[union-attr]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(report: ParityReport, path: Path, earlier_sections: dict[str, str] | None = None) -> Path:
    path.write_text(format_html(report, earlier_sections))
    return path
