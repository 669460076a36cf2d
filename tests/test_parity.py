"""`frlite parity` on small converted models: verdicts, reports, determinism, a broken file."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.tflite.tflite_file import load_model_object, save_model_object
from frlite.runtimes.parity_run import run_parity
from frlite.runtimes.reference_model import ReferenceRequest

DEC = ReferenceRequest("tests.models.small_fr:decoder")  # the folders name test code: the tests name it too
CLS = ReferenceRequest("tests.models.small_fr:classifier")
DEC_ARGS = ("--model", "tests.models.small_fr:decoder")


@pytest.fixture(scope="module")
def decoder_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dec") / "out"
    convert(ConvertRequest("tests.models.small_fr:decoder", None, [parse_input_shape("input:1x8x10x12")], out,
                           modes=["dense", "idct"], targets=["onnx", "tflite-cpu"], precisions=["fp32", "fp16"]))
    return out


@pytest.fixture(scope="module")
def classifier_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cls") / "out"
    convert(ConvertRequest("tests.models.small_fr:classifier", None, [parse_input_shape("input:1x3x32x32")], out,
                           modes=["dense"], targets=["onnx", "tflite-cpu"], precisions=["fp32"]))
    return out


@pytest.mark.slow
def test_cli_passes_and_writes_three_reports(decoder_out: Path, tmp_path: Path) -> None:
    r = run_cli("parity", str(decoder_out), *DEC_ARGS, "--out", str(tmp_path / "rep"), "--variants", "default,no-opt,xnnpack,builtin")
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((tmp_path / "rep" / "parity.json").read_text())
    assert data["schema_version"] == 1 and data["passed"] is True
    # 2 onnx files x 2 variants + 4 tflite files x 2 variants
    assert len(data["results"]) == 12
    m = data["results"][0]["outputs"][0]["samples"][0]
    for key in ("max_abs_error", "max_abs_index", "mean_abs_error", "rmse", "max_rel_error", "cosine_similarity",
                "psnr_db", "min_atol", "min_rtol", "passed"):
        assert key in m
    assert {"cpu", "threads", "versions"} <= set(data["environment"])
    assert all(len(v) == 64 for i in data["inputs"] for v in i["sha256"].values())
    md = (tmp_path / "rep" / "parity.md").read_text()
    assert md.startswith("# Parity:") and "| tflite/idct_fp16.tflite | tflite (builtin) | pass |" in md


@pytest.mark.slow
def test_metrics_match_an_independent_computation(decoder_out: Path) -> None:
    rep = run_parity(decoder_out, samples=1, seed=7, reference=DEC)
    ref = rep.samples_kept["reference"]["output"][0].astype(np.float64)
    for res in rep.results:
        got = rep.samples_kept[res.label]["output"][0].astype(np.float64)
        m = res.outputs[0].samples[0]
        d = np.abs(got.astype(np.float64) - ref)
        assert m.max_abs_error == pytest.approx(d.max())
        assert m.rmse == pytest.approx(np.sqrt((d ** 2).mean()))
        assert tuple(m.max_abs_index) == np.unravel_index(d.argmax(), d.shape)
        cos = float((ref.ravel() @ got.ravel()) / (np.linalg.norm(ref) * np.linalg.norm(got)))
        assert m.cosine_similarity == pytest.approx(cos, abs=1e-9)


@pytest.mark.slow
def test_same_inputs_same_report_apart_from_timings(decoder_out: Path) -> None:
    a = run_parity(decoder_out, samples=2, seed=3, reference=DEC).to_json()
    b = run_parity(decoder_out, samples=2, seed=3, reference=DEC).to_json()
    a.pop("timings"), b.pop("timings")
    assert a == b


@pytest.mark.slow
def test_broken_artifact_fails_with_exit_1(decoder_out: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(decoder_out, broken)
    tfl = broken / "tflite" / "dense_fp32.tflite"
    model = load_model_object(tfl)
    biggest = max((b for b in model.buffers if b.data is not None and len(b.data) >= 64), key=lambda b: len(b.data))
    w = np.frombuffer(np.asarray(biggest.data, np.uint8).tobytes(), np.float32) * 1.05
    biggest.data = np.frombuffer(w.astype(np.float32).tobytes(), np.uint8)
    save_model_object(model, tfl)
    _record_new_hash(broken, "tflite/dense_fp32.tflite")  # a converter bug, not tampering: the manifest agrees
    assert biggest_size(decoder_out) == 8 * 6 * 3 * 3  # the buffer scaled is up1's weight
    r = run_cli("parity", str(broken), *DEC_ARGS, "--out", str(tmp_path / "rep"), "--format", "md", "json", "--layers")
    assert r.returncode == 1, r.stdout + r.stderr
    md = (tmp_path / "rep" / "parity.md").read_text()
    assert "| tflite/dense_fp32.tflite | tflite (xnnpack) | **FAIL** |" in md
    assert "| tflite/idct_fp32.tflite | tflite (xnnpack) | pass |" in md
    assert "first layer where the error jumps: up1.weight" in r.stdout
    layers = json.loads((tmp_path / "rep" / "parity.json").read_text())["layers"]
    (cmp,) = layers.values()
    assert cmp["first_divergent"] == "up1.weight"
    rows = {row["layer"]: row["rel_to_scale"] for row in cmp["rows"]}
    assert rows["up1.weight"] > 1e-2 and all(v > 1e-3 for v in rows.values())  # it propagates


def _record_new_hash(folder: Path, rel: str) -> None:
    import hashlib

    manifest = json.loads((folder / "manifest.json").read_text())
    data = (folder / rel).read_bytes()
    for art in manifest["artifacts"]:
        if art["path"] == rel:
            art["sha256"], art["size_bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def biggest_size(folder: Path) -> int:
    from frlite.converter.tflite.tflite_file import read_tflite

    s = read_tflite(folder / "tflite" / "dense_fp32.tflite")
    return max(t.const_bytes for t in s.tensors) // 4


@pytest.mark.slow
def test_classification_task_metrics(classifier_out: Path) -> None:
    rep = run_parity(classifier_out, samples=3, reference=CLS)
    for res in rep.results:
        (out,) = res.outputs
        assert out.task == "classification"
        assert all(t.top1_agreement == 1.0 and t.top5_agreement == 1.0 for t in out.task_samples)


@pytest.mark.slow
def test_bad_inputs_exit_2(decoder_out: Path, tmp_path: Path) -> None:
    bad = tmp_path / "x.npy"
    np.save(bad, np.zeros((1, 8, 10, 13), np.float32))
    r = run_cli("parity", str(decoder_out), *DEC_ARGS, "--inputs", str(bad), "--out", str(tmp_path / "rep"))
    assert r.returncode == 2 and "input input has shape (1, 8, 10, 13), the model expects (1, 8, 10, 12)" in r.stderr
    r = run_cli("parity", str(tmp_path), "--out", str(tmp_path / "rep"))
    assert r.returncode == 2 and "no manifest.json" in r.stderr
    r = run_cli("parity", str(decoder_out), "--format", "pdf")
    assert r.returncode == 2 and "--format 'pdf'" in r.stderr
    good = tmp_path / "ok.npz"
    np.savez(good, input=np.random.default_rng(0).random((1, 8, 10, 12), dtype=np.float32))
    r = run_cli("parity", str(decoder_out), *DEC_ARGS, "--inputs", str(good), "--out", str(tmp_path / "rep2"), "--format", "json")
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_html_renders_in_headless_chromium(decoder_out: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed; .ci/run installs it (apt-get install chromium)")
    rep_dir = tmp_path / "rep"
    assert run_cli("parity", str(decoder_out), *DEC_ARGS, "--out", str(rep_dir), "--format", "html").returncode == 0
    page = (rep_dir / "parity.html").read_text()
    assert "http://" not in page and "https://" not in page  # self-contained
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", """<script>
      window.addEventListener('load', () => {
        const imgs = [...document.images];
        const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
        document.body.setAttribute('data-probe', `images=${imgs.length} loaded=${ok} tables=${document.querySelectorAll('table').length} summary_rows=${document.querySelectorAll('#summary tr').length}`);
        document.body.setAttribute('data-decision', [...document.querySelectorAll('#decision th')].map(t => t.textContent).join('|')
          + `;rows=${document.querySelectorAll('#decision tr').length}`);
        const over = imgs.filter(i => i.alt.endsWith('over the input') && i.complete && i.naturalWidth > 0);
        document.body.setAttribute('data-overlays', `${over.length}`);
      });</script></body>"""))
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-probe="images=(\d+) loaded=(\d+) tables=(\d+) summary_rows=(\d+)"', dom)
    assert found, dom[:500]
    images, loaded, tables, rows = map(int, found.groups())
    assert images >= 6 * 4 and loaded == images  # per run: histogram + 3 mask pictures
    assert tables == 1 + 1 + 6 and rows == 1 + 6  # decision table, runs, one per run
    decision = re.search(r'data-decision="([^"]*);rows=(\d+)"', dom)
    assert decision, dom[:500]
    assert decision.group(1).split("|") == ["file", "mode", "targets", "precision", "size", "parity fp32", "parity fp16-arith",
                                            "task agreement", "host latency", "delegate coverage"]
    assert int(decision.group(2)) == 1 + 6  # each of the six files once
    # every run's reference / runtime / difference mask drawn over its input image, all decoded
    assert re.search(r'data-overlays="(\d+)"', dom).group(1) == str(6 * 3)  # type: ignore[union-attr]
