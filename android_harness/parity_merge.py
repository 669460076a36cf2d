"""What `frlite bench` adds to a convert folder's parity report, written into bench's --out.

bench never writes into TARGET, so the report it adds to is copied: TARGET/parity/parity.json
is read back (validated like a manifest), the phones' runs (`--parity`, runtimes
`tflite@<serial>/<delegate>`) are added as results (a run for the same phone and delegate in the
old report is replaced), the decision table is rebuilt with this bench's latencies, and
parity.json / parity.md / parity.html are written beside bench.json. The HTML keeps the pictures
of the runs it did not redo (their sections of TARGET's parity.html) and gets the latency chart.
Without a parity report in TARGET, `--parity` alone makes one from the phones' runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from frlite.converter.core.bounded_read import read_bounded
from frlite.converter.core.convert_folder import ConvertFolder
from frlite.converter.core.errors import ManifestError
from frlite.runtimes.report_decision import Latency, build_table

from frlite.android_harness.bench_report import PARITY_HTML_LIMIT, parity_html_with_chart
from frlite.android_harness.bench_result import BenchResult
from frlite.android_harness.bench_run import DeviceRuns

if TYPE_CHECKING:
    from frlite.runtimes.parity_run import ParityReport

PARITY_DIR = "parity"  # where `frlite parity DIR` writes by default


def bench_latencies(results: list[BenchResult]) -> dict[str, list[Latency]]:
    """Bench results by file, as the decision table's latency cells."""
    out: dict[str, list[Latency]] = {}
    for r in results:
        where = "host" if r.backend == "host" else r.device.get("serial", "device")
        out.setdefault(r.artifact, []).append(Latency(where, r.delegate, r.threads,
                                                      r.latency.median_us / 1e3 if r.latency else None, r.error))
    return out


@dataclass
class EarlierReport:
    """TARGET's own parity report, read (and validated) before any benchmark runs."""

    report: ParityReport | None = None                           # from parity.json
    sections: dict[str, str] = field(default_factory=dict)       # its parity.html's run sections
    html_only: Path | None = None                                # a parity.html without parity.json


def read_earlier(target: Path) -> EarlierReport:
    from frlite.runtimes.report_html import run_sections
    from frlite.runtimes.report_json import read_json

    base_json, base_html = target / PARITY_DIR / "parity.json", target / PARITY_DIR / "parity.html"
    if not target.is_dir() or not (base_json.is_file() or base_html.is_file()):
        return EarlierReport()
    if not base_json.is_file():
        return EarlierReport(html_only=base_html)
    sections = {}
    if base_html.is_file():
        page = read_bounded(base_html, "parity report", ManifestError, PARITY_HTML_LIMIT)
        sections = run_sections(page.decode("utf-8", "replace"))
    return EarlierReport(read_json(base_json), sections)


def merged_report(target: Path, earlier: EarlierReport, device: DeviceRuns | None,
                  results: list[BenchResult]) -> ParityReport | None:
    """TARGET's report with the phones' runs and this bench's latencies; None when TARGET has no
    parity.json and no phone ran parity."""
    from frlite.runtimes.parity_run import SCHEMA_VERSION, ParityReport, environment, tolerance_table

    folder = ConvertFolder.open(target)
    report = earlier.report
    if report is None:
        if device is None:
            return None
        m = folder.manifest
        report = ParityReport(SCHEMA_VERSION, str(folder.root), m.model_spec, m.checkpoint_sha256, "torch",
                              device.inputs, tolerance_table(), environment(1), [], False)
    if device is not None:
        redone = {r.runtime for r in device.results}  # the same phone and delegate again: the new run replaces it
        report.results = [r for r in report.results if r.runtime not in redone] + device.results
        report.samples_kept = dict(device.kept)
    report.passed = bool(report.results) and all(r.passed for r in report.results)
    report.decision = build_table(folder, report.results, bench_latencies(results))
    return report


def write_parity_report(out: Path, target: Path, earlier: EarlierReport, device: DeviceRuns | None,
                        results: list[BenchResult], chart: Path) -> list[Path]:
    """Write parity.{json,md,html} into `out` (bench's temp output folder); the files written."""
    from frlite.runtimes.report_html import write_html
    from frlite.runtimes.report_json import write_json
    from frlite.runtimes.report_markdown import write_markdown

    if not target.is_dir():
        return []
    report = merged_report(target, earlier, device, results)
    if report is None:  # a report without parity.json (parity --format html): the chart joins its page
        if earlier.html_only is not None and parity_html_with_chart(chart, earlier.html_only, out / "parity.html"):
            return [out / "parity.html"]
        return []
    written = [write_json(report, out / "parity.json"), write_markdown(report, out / "parity.md"),
               write_html(report, out / "parity.html", earlier.sections)]
    parity_html_with_chart(chart, out / "parity.html", out / "parity.html")
    return written
