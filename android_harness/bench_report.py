"""bench.json, bench.md and a latency chart per artifact x delegate (PNG, matplotlib)."""
from __future__ import annotations

import json
from pathlib import Path

from frlite.android_harness.bench_result import BenchResult

SCHEMA_VERSION = 1


PARITY_HTML_LIMIT = 256 << 20  # a parity.html holds its pictures inline: the UNet's is a few MB


def parity_html_with_chart(chart: Path, parity_html: Path, dest: Path) -> bool:
    """Write `dest`: the convert folder's parity report with the latency chart added (one
    self-contained page for both). The folder's own page is read, never rewritten: bench
    writes only into its --out."""
    import base64

    from frlite.converter.core.errors import ManifestError
    from frlite.converter.core.bounded_read import read_bounded

    if not parity_html.is_file():
        return False
    page = read_bounded(parity_html, "parity report", ManifestError, PARITY_HTML_LIMIT).decode("utf-8", "replace")
    marker = "<!-- frlite-bench -->"
    section = (f"{marker}<h2 id='bench'>Latency (frlite bench)</h2><img alt='latency chart' "
               f"src='data:image/png;base64,{base64.b64encode(chart.read_bytes()).decode()}'>")
    if marker in page:  # a page that already has a bench section: replace it
        page = page[:page.index(marker)] + section + "</body></html>"
    else:
        page = page.replace("</body></html>", section + "</body></html>")
    dest.write_text(page)
    return True


def write_reports(results: list[BenchResult], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "bench.json"
    jpath.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "results": [r.to_json() for r in results]}, indent=2) + "\n")
    lines = ["# Benchmark", "", "| backend | device | artifact | delegate | threads | median ms | min ms | p90 ms | init ms | delegated | peak MB |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in results:
        dev = r.device.get("model") or r.device.get("cpu", "")
        if r.error:
            lines.append(f"| {r.backend} | {dev} | {r.artifact} | {r.delegate} | {r.threads} | ERROR: {r.error} | | | | | |")
            continue
        lat = r.latency
        delegated = f"{r.delegated_nodes}/{r.total_nodes}" if r.total_nodes else "-"
        lines.append(f"| {r.backend} | {dev} | {r.artifact} | {r.delegate} | {r.threads} | {lat.median_us / 1e3:.2f} | "
                     f"{lat.min_us / 1e3:.2f} | {(lat.p90_us or 0) / 1e3:.2f} | {(r.init_us or 0) / 1e3:.1f} | {delegated} | "
                     f"{r.peak_memory_mb or 0:.0f} |" if lat else f"| {r.backend} | {dev} | {r.artifact} | {r.delegate} | {r.threads} | - | | | | {delegated} | |")
    numerics = sorted({(r.artifact, r.numerics) for r in results if r.numerics})
    if numerics:
        lines += ["", "## GPU / NNAPI precision (from the fp16-arithmetic verdict)", ""]
        lines += [f"- {art}: {why}" for art, why in numerics]
    warnings = sorted({w for r in results for w in r.warnings})
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    mpath = out / "bench.md"
    mpath.write_text("\n".join(lines) + "\n")
    return [jpath, mpath, _chart(results, out / "bench_latency.png")]


def _chart(results: list[BenchResult], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r.latency]
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(ok), 2) + 1))
    labels = [f"{Path(r.artifact).name} / {r.delegate} / {r.threads}t ({r.backend})" for r in ok]
    ax.barh(labels, [r.latency.median_us / 1e3 for r in ok], color="#4a78b5")  # type: ignore[union-attr]
    ax.set_xlabel("median latency (ms)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
