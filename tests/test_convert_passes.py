"""`frlite convert` as a pass list (converter/passes/driver.py): every pass is logged with its time
and peak memory and listed in the manifest, a pass whose needs no earlier pass added is refused,
a pass inserted into the list runs, and one tolerance table serves convert and parity."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from frlite.converter.core.errors import FrliteError
from frlite.converter.core.manifest import read_manifest
from frlite.converter.core.manifest_schema import manifest_from_json
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.passes.context import ConvertContext
from frlite.converter.passes.convert_pipeline import CONVERT_PASSES, ConvertRequest, convert
from frlite.converter.passes.driver import BasePass, PassOrderError, insert_after

SPEC, SHAPE = "tests.models.small_fr:classifier", "input:1x3x32x32"


def _request(out: Path, **kw) -> ConvertRequest:  # type: ignore[no-untyped-def]
    return ConvertRequest(SPEC, None, [parse_input_shape(SHAPE)], out, **kw)


@pytest.fixture(scope="module")
def dense_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("passes") / "out"
    convert(_request(out, modes=["dense"], targets=["onnx"]))
    return out


def test_every_pass_is_logged_and_listed(dense_out: Path) -> None:
    log = (dense_out / "convert.log").read_text()
    manifest = read_manifest(dense_out)
    names = [p.name for p in manifest.passes]
    # dense ONNX only: the idct, factorized and tflite passes do not apply
    assert names == ["load_model", "open_output", "export_dense", "onnx_artifacts", "annotate_artifacts",
                     "quick_parity", "build_manifest"]
    logged = re.findall(r"  pass (\w+): (\d+\.\d) s, peak (\d+\.\d\d) GiB", log)
    assert [n for n, _, _ in logged] == names
    for rec in manifest.passes:
        assert 0 <= rec.seconds < 600
        # a Python process holding torch is at least 50 MB resident; no process here reaches 64 GiB
        assert 50 << 20 < rec.peak_rss_bytes < 64 << 30
    # the dense export and the parity run do work: they take measurable time, the bookkeeping does not dominate
    assert sum(r.seconds for r in manifest.passes) > 0


def test_manifest_schema_checks_the_passes_field(dense_out: Path) -> None:
    data = json.loads((dense_out / "manifest.json").read_text())
    assert data["passes"][0]["name"] == "load_model"
    manifest_from_json(data, "m", data["format_version"])  # accepted as written
    old = dict(data)
    del old["passes"]  # folders written before the pass list still read
    assert manifest_from_json(old, "m", data["format_version"]).passes == []
    bad = json.loads(json.dumps(data))
    bad["passes"][0]["seconds"] = "fast"
    with pytest.raises(FrliteError, match=r"passes\[0\]\.seconds must be a number"):
        manifest_from_json(bad, "m", data["format_version"])
    bad = json.loads(json.dumps(data))
    bad["passes"][0]["extra"] = 1
    with pytest.raises(FrliteError, match=r"passes\[0\]\.extra is not a known key"):
        manifest_from_json(bad, "m", data["format_version"])


class _AddNote(BasePass):
    """A pass a later change might add: it reads the artifacts and adds a note to each."""

    def __init__(self) -> None:
        super().__init__("add_note", needs=("artifacts",), adds=())

    def run(self, ctx: ConvertContext) -> None:
        for art in ctx.artifacts:
            art.notes.append(f"seen by add_note ({len(ctx.artifacts)} artifacts)")


def test_an_inserted_pass_runs(tmp_path: Path) -> None:
    passes = insert_after(CONVERT_PASSES, "annotate_artifacts", _AddNote())
    out = tmp_path / "out"
    result = convert(_request(out, modes=["dense"], targets=["onnx"]), passes=passes)
    manifest = read_manifest(out)
    assert [a.notes for a in manifest.artifacts] == [["seen by add_note (1 artifacts)"]]
    names = [p.name for p in manifest.passes]
    assert names.index("add_note") == names.index("annotate_artifacts") + 1
    assert "  pass add_note: " in (out / "convert.log").read_text()
    assert result.manifest.passes == manifest.passes


class _NeedsGhost(BasePass):
    def __init__(self) -> None:
        super().__init__("needs_ghost", needs=("artifacts", "int8_calibration"), adds=())

    def run(self, ctx: ConvertContext) -> None:
        raise AssertionError("must not run")


def test_a_pass_with_missing_needs_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    passes = insert_after(CONVERT_PASSES, "open_output", _NeedsGhost())
    out = tmp_path / "out"
    with pytest.raises(PassOrderError, match=r"^internal error: pass 'needs_ghost' needs artifacts, int8_calibration, "
                                             r"which no earlier pass added \(ran: load_model, open_output\)$"):
        convert(_request(out, modes=["dense"], targets=["onnx"]), passes=passes)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # the temp folder went too


def test_a_pass_that_does_not_add_what_it_declares_fails(tmp_path: Path) -> None:
    class Liar(BasePass):
        def __init__(self) -> None:
            super().__init__("liar", needs=(), adds=("onnx_files.int8",))

        def run(self, ctx: ConvertContext) -> None:
            pass

    with pytest.raises(PassOrderError, match=r"pass 'liar' did not add onnx_files\.int8"):
        convert(_request(tmp_path / "out"), passes=insert_after(CONVERT_PASSES, "export_dense", Liar()))
    assert list(tmp_path.iterdir()) == []


def test_insert_after_an_unknown_pass_names_the_list() -> None:
    with pytest.raises(PassOrderError, match=r"no pass named 'nope'.*load_model, open_output"):
        insert_after(CONVERT_PASSES, "nope", _AddNote())
    assert [p.name for p in CONVERT_PASSES][:2] == ["load_model", "open_output"]  # the default list is untouched


def test_one_tolerance_table_for_convert_and_parity(dense_out: Path) -> None:
    from frlite.converter.core.tolerances import TOLERANCES
    from frlite.runtimes.parity_metrics import DEFAULT_TOLERANCES

    assert {p: a for p, (a, _) in DEFAULT_TOLERANCES.items()} == TOLERANCES
    (art,) = read_manifest(dense_out).artifacts
    assert art.parity is not None and art.parity.tolerance == TOLERANCES["fp32"]
    doc = (Path(__file__).resolve().parents[1] / "docs" / "parity.md").read_text()
    for precision, tol in TOLERANCES.items():
        assert f"| {precision} | {tol:.0e} |".replace("e-0", "e-") in doc, precision
