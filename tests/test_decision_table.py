"""The decision table (runtimes/report_decision.py) at the end of `frlite convert` and at the top
of the parity report, and the mask overlays of parity.html (runtimes/report_overlay.py)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from frlite.converter.core.convert_folder import ConvertFolder
from frlite.converter.core.errors import ManifestError
from frlite.runtimes.parity_run import run_parity
from frlite.runtimes.reference_model import ReferenceRequest
from frlite.runtimes.report_decision import Latency, build_table, render_markdown, render_text
from frlite.runtimes.report_json import read_json, write_json
from frlite.runtimes.report_overlay import background, difference_over, mask_over, segmentation_pictures

DEC = "tests.models.small_fr:decoder"
COLUMNS = ["file", "mode", "targets", "precision", "size", "parity fp32", "parity fp16-arith", "task agreement",
           "host latency", "delegate coverage"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A convert run through the CLI: two modes, three targets sharing each .tflite file."""
    out = tmp_path_factory.mktemp("dt") / "out"
    r = run_cli("convert", DEC, "--input", "input:1x8x10x12", "--mode", "dense", "factorized",
                "--target", "onnx", "tflite-cpu", "tflite-gpu", "tflite-nnapi", "--precision", "fp32", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out, r.stdout


@pytest.mark.slow
def test_convert_lists_each_file_once_aligned(converted: tuple[Path, str]) -> None:
    out, stdout = converted
    lines = stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("file "))
    rows = lines[head + 2:head + 2 + 4]
    files = [r.split()[0] for r in rows]
    assert sorted(files) == ["onnx/dense.onnx", "onnx/factorized.onnx", "tflite/dense_fp32.tflite",
                             "tflite/factorized_fp32.tflite"]
    assert lines[head + 6] == ""  # nothing else in the table: each file once
    assert all(stdout.count(f) == 1 for f in files)
    starts = [m.start() for m in re.finditer(r"(?<=  )\S", lines[head])]  # where each header column starts
    assert [c.strip() for c in re.split(r"\s{2,}", lines[head])] == COLUMNS
    size_end = lines[head].index("size") + len("size")
    starts = [s for s in starts if s != size_end - len("size")]  # size is right-aligned
    for row in rows:  # every cell starts under its header (size: ends under it), factorized rows too
        assert all(row[s - 2:s] == "  " and row[s] != " " for s in starts), row
        assert row[size_end - 2:size_end] == " B" and row[size_end] == " "
    (tfl,) = [r for r in rows if r.startswith("tflite/factorized_fp32.tflite")]
    assert "tflite-cpu,gpu,nnapi" in tfl and "not benched" in tfl
    assert re.search(r"gpu \d+/\d+ ready; nnapi \d+/\d+", tfl) and re.search(r"(safe|unsafe) \d\.\de-\d\d", tfl)


@pytest.mark.slow
def test_parity_table_takes_parity_verdicts_and_round_trips(converted: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = converted
    report = run_parity(out, samples=2, reference=ReferenceRequest(DEC))
    table = report.decision
    assert table is not None and table.columns() == COLUMNS
    rows = {r.file: r for r in table.rows}
    assert len(rows) == len(table.rows) == 4
    tfl = rows["tflite/dense_fp32.tflite"]
    assert tfl.targets == ["tflite-cpu", "tflite-gpu", "tflite-nnapi"]
    assert tfl.fp32 is not None and tfl.fp32.measured_by == "parity" and tfl.fp32.state == "pass"
    run = next(r for r in report.results if r.path == tfl.file and r.variant == "xnnpack")
    assert tfl.fp32.worst_rel == pytest.approx(run.worst_rel_error)
    assert tfl.fp16_arith is not None and tfl.fp16_arith.measured_by == "parity"  # the gpu target runs fp16-arith
    assert tfl.task is not None and tfl.task.task == "segmentation" and tfl.task.pixel_agreement == 1.0
    assert [c.target for c in tfl.coverage] == ["tflite-gpu", "tflite-nnapi"]
    compat = json.loads((out / "compat" / "dense_fp32.tflite-gpu.json").read_text())
    assert (tfl.coverage[0].delegated, tfl.coverage[0].total) == (compat["ops_delegated"], compat["ops_total"])
    assert rows["onnx/dense.onnx"].fp16_arith is None and rows["onnx/dense.onnx"].coverage == []
    md = "\n".join(render_markdown(table))
    assert md.startswith("| " + " | ".join(COLUMNS) + " |") and md.count("tflite/dense_fp32.tflite") == 1
    write_json(report, tmp_path / "parity.json")
    back = read_json(tmp_path / "parity.json")
    assert back.decision == table and back.results[0].outputs == report.results[0].outputs


@pytest.mark.slow
def test_bench_latency_fills_the_column(converted: tuple[Path, str]) -> None:
    out, _ = converted
    folder = ConvertFolder.open(out)
    table = build_table(folder, latencies={"tflite/dense_fp32.tflite": [Latency("host", "xnnpack", 2, 1.234),
                                                                       Latency("P", "gpu", 4, 0.5)]})
    text = render_text(table)
    assert "xnnpack 2t 1.2 ms" in text and "P/gpu 4t 0.5 ms" in text and "on device" in text
    assert "not benched" not in text and "`frlite bench" not in text
    assert "not benched" in render_text(build_table(folder))


@pytest.mark.slow
def test_a_tampered_parity_json_is_one_line(tmp_path: Path, converted: tuple[Path, str]) -> None:
    out, _ = converted
    report = run_parity(out, samples=1, runtimes=["torch", "onnxruntime"], reference=ReferenceRequest(DEC))
    path = write_json(report, tmp_path / "parity.json")
    data = json.loads(path.read_text())
    data["results"][0]["outputs"][0]["samples"][0]["rmse"] = "small"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"results\[0\]\.outputs\[0\]\.samples\[0\]\.rmse must be a number"):
        read_json(path)
    data["results"][0]["surprise"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"results\[0\]\.surprise is not a known key"):
        read_json(path)


# ---------------------------------------------------------------- overlays

def test_mask_is_drawn_over_its_image() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((3, 8, 10)).astype(np.float32)  # an RGB input of the mask's size
    image = background(x, (8, 10))
    assert image.shape == (8, 10, 3) and image.min() == 0.0 and image.max() == 1.0
    lo, hi = x.min(), x.max()
    assert np.allclose(image, (x.transpose(1, 2, 0) - lo) / (hi - lo))
    mask = np.zeros((8, 10), np.int64)
    mask[2:5, 3:7] = 1
    over = mask_over(image, mask)
    assert np.array_equal(over[mask == 0], image[mask == 0])  # the image shows where there is no object
    assert not np.allclose(over[mask == 1], image[mask == 1])  # the object is tinted, the image still under it
    assert np.unique(over[mask == 1].round(4), axis=0).shape[0] > 1


def test_one_differing_pixel_survives_downscaling() -> None:
    image = np.full((640, 959, 3), 0.5, np.float32)
    differ = np.zeros((640, 959), bool)
    differ[333, 777] = True
    pic = difference_over(image, differ)
    assert pic.shape[1] <= 320 and (pic == [1.0, 0.0, 0.0]).all(axis=2).sum() == 1


def test_grey_input_of_another_size_is_sampled_to_the_mask() -> None:
    x = np.arange(8 * 5 * 6, dtype=np.float32).reshape(8, 5, 6)  # 8 channels, half the mask's size
    image = background(x, (10, 12))
    assert image.shape == (10, 12, 3) and np.allclose(image[..., 0], image[..., 1])
    assert background(None, (4, 4)).shape == (4, 4, 3)
    ref = np.zeros((1, 2, 10, 12), np.float32)
    got = ref.copy()
    got[0, 1, 0, 0] = 1.0
    captions = [c for c, uri in segmentation_pictures(x, ref, got)]
    assert captions[2] == "difference over the input (1 pixels)"


@pytest.mark.slow
def test_html_has_the_table_and_overlays(converted: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = converted
    r = run_cli("parity", str(out), "--model", DEC, "--out", str(tmp_path / "rep"), "--runtimes", "torch,onnxruntime")
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "rep" / "parity.html").read_text()
    table = page[page.index("<table id='decision'>"):page.index("</table>", page.index("<table id='decision'>"))]
    assert re.findall(r"<th>([^<]*)</th>", table) == COLUMNS
    for alt in ("reference mask over the input", "runtime mask over the input", "difference over the input"):
        assert page.count(f"alt='{alt}'") == 2  # one per onnx file
    md = (tmp_path / "rep" / "parity.md").read_text()
    assert "## Decision table" in md and md.index("## Decision table") < md.index("## Runs")


@pytest.mark.slow
@pytest.mark.parametrize("spoil", ["garbage", "impossible", "outside"])
def test_a_bad_compat_report_stops_parity_up_front(converted: tuple[Path, str], tmp_path: Path, spoil: str) -> None:
    import shutil

    folder = tmp_path / "conv"
    shutil.copytree(converted[0], folder)
    compat = folder / "compat" / "dense_fp32.tflite-gpu.json"
    if spoil == "garbage":
        compat.write_text("{not json")
    elif spoil == "impossible":
        compat.write_text(json.dumps({**json.loads(compat.read_text()), "ops_delegated": 10**6}))
    else:
        (tmp_path / "elsewhere.json").write_text(compat.read_text())
        compat.unlink()
        compat.symlink_to(tmp_path / "elsewhere.json")
    r = run_cli("parity", str(folder), "--model", DEC, "--out", str(tmp_path / "rep"))
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("frlite parity: error:")]
    assert r.returncode == 2 and len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "compat" in errors[0] and not (tmp_path / "rep").exists()
    assert "outside the folder" in errors[0] if spoil == "outside" else "re-convert" in errors[0]
