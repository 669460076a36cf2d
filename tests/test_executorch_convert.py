"""`--target executorch`: FR models lowered to .pte programs with the XNNPACK delegate, run on the
host by executorch.runtime, in the manifest with a delegation report, compared by `frlite parity`.

All real: torch.export, ExecuTorch's XNNPACK lowering and its runtime, on a tiny FR classifier
(strided, grouped and depthwise FR convs, an FR Linear head; its global mean has no XNNPACK
lowering, so the report has an undelegated op to name)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from frlite.converter.core.errors import FrliteError, UsageError
from frlite.converter.core.manifest import read_manifest
from frlite.converter.core.manifest_schema import manifest_from_json
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.executorch.pte_lower import lower_to_pte
from frlite.converter.passes.convert_pipeline import IDCT_EXECUTORCH_REFUSAL, ConvertRequest, check_request, convert
from frlite.runtimes.loader import open_artifact
from frlite.runtimes.parity_run import run_parity
from frlite.runtimes.reference_model import ReferenceRequest
from tests.conftest import run_cli

SPEC, SHAPE = "tests.models.small_fr:classifier", "input:1x3x32x32"


def _request(out: Path, **kw) -> ConvertRequest:  # type: ignore[no-untyped-def]
    return ConvertRequest(SPEC, None, [parse_input_shape(SHAPE)], out, **kw)


@pytest.fixture(scope="module")
def pte_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("executorch") / "out"
    convert(_request(out, modes=["dense", "factorized"], targets=["executorch"], precisions=["fp32"]))
    return out


def test_pte_files_are_in_the_manifest_with_nchw_io(pte_out: Path) -> None:
    manifest = read_manifest(pte_out)  # validated in full on read
    arts = {(a.mode, a.precision): a for a in manifest.artifacts}
    assert sorted(arts) == [("dense", "fp32"), ("factorized", "fp32")]
    for (mode, _), art in arts.items():
        assert (art.target, art.runtime, art.path) == ("executorch", "executorch", f"executorch/{mode}_fp32.pte")
        assert (pte_out / art.path).stat().st_size == art.size_bytes > 0
        assert [(t.name, t.shape, t.layout, t.perm_from_model) for t in art.inputs] == [("input", [1, 3, 32, 32], "NCHW", None)]
        assert [t.shape for t in art.outputs] == [[1, 10]]
        assert art.parity is not None and art.parity.passed and art.parity.max_rel_to_scale <= 1e-5
    assert [p.name for p in manifest.passes if p.name.startswith("executorch")] == ["executorch_artifacts"]
    # no ONNX artifact was asked: none is listed, though the ONNX export ran for the shared checks
    assert {a.target for a in manifest.artifacts} == {"executorch"}


def test_delegation_report_names_each_portable_op(pte_out: Path) -> None:
    manifest = read_manifest(pte_out)
    for art in manifest.artifacts:
        report = json.loads((pte_out / art.extra_files["compat_json"]).read_text())
        delegated, portable = report["delegated_ops"], report["portable_ops"]
        assert report["ops_total"] == sum(delegated.values()) + sum(portable.values())
        assert report["ops_delegated"] == sum(delegated.values())
        # every FR conv and the Linear head run on XNNPACK; the keepdim=False global mean does not
        assert delegated["aten.convolution.default"] >= 4
        assert "aten.mean.dim" in portable and report["delegate_ready"] is False
        assert set(report["fallback"]) == set(portable)
        assert report["fallback"]["aten.mean.dim"] == ["mean.dim only supports keepdim=True"]  # the partitioner's own reason
        md = (pte_out / art.extra_files["compat_md"]).read_text()
        assert "| aten.mean.dim | 1 | no (portable kernel) | mean.dim only supports keepdim=True |" in md
        assert {k.split("/", 1)[0] for k in art.op_counts} == {"xnnpack", "portable"}
    log = (pte_out / "convert.log").read_text()
    assert "portable kernels: aten.mean.dim x1" in log


def test_pte_runs_like_pytorch_on_the_host(pte_out: Path) -> None:
    from tests.models.small_fr import classifier

    manifest = read_manifest(pte_out)
    model = classifier().eval()
    x = np.random.default_rng(3).random((1, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    for art in manifest.artifacts:
        got = open_artifact(pte_out, art).run({"input": x})["output"]
        assert got.shape == ref.shape
        assert float(np.abs(got - ref).max()) <= 1e-5


@pytest.mark.slow  # a parity flow end to end (the fast suite is unit-level)
def test_parity_runs_pte_files_in_the_same_report(pte_out: Path) -> None:
    report = run_parity(pte_out, samples=1, runtimes=["torch", "executorch"], layers=True,
                        reference=ReferenceRequest(SPEC), keep_outputs=False)
    assert report.passed
    runs = {r.path: r for r in report.results}
    assert set(runs) == {"executorch/dense_fp32.pte", "executorch/factorized_fp32.pte"}
    assert all(r.runtime == "executorch" and r.variant == "default" for r in runs.values())
    assert all(r.worst_rel_error <= 1e-5 for r in runs.values())
    assert report.layers == {}  # --layers looks inside diverging files only


@pytest.mark.slow  # a parity flow end to end (the fast suite is unit-level)
def test_layers_on_a_diverging_pte_says_intermediates_are_not_exposed(pte_out: Path) -> None:
    # a zero tolerance makes every fp32 file diverge, so --layers looks inside each
    report = run_parity(pte_out, samples=1, runtimes=["torch", "executorch"], layers=True, atol=1e-12, rtol=0.0,
                        reference=ReferenceRequest(SPEC), keep_outputs=False)
    assert not report.passed
    assert len(report.layers) == 2
    for rep in report.layers.values():
        assert rep["rows"] == [] and "a .pte exposes no intermediate tensors" in rep["note"]


def test_idct_with_executorch_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--mode idct --target executorch: XNNPACK takes a conv only with constant weights"):
        check_request(_request(tmp_path / "o", modes=["dense", "idct"], targets=["onnx", "executorch"]))
    proc = run_cli("convert", SPEC, "--input", SHAPE, "--mode", "idct", "--target", "executorch", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"frlite convert: error: {IDCT_EXECUTORCH_REFUSAL}"]
    assert not (tmp_path / "o").exists()


def test_int8_alone_writes_no_pte(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"writes no file .*\.pte files fp32 / fp16"):
        check_request(_request(tmp_path / "o", targets=["executorch"], precisions=["int8-dynamic"]))


def test_a_conv_with_a_computed_weight_stays_on_the_portable_kernels() -> None:
    """Why idct is refused: the in-graph rebuild is neither lowered nor folded by ExecuTorch."""

    class Rebuilt(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.coef = torch.nn.Parameter(torch.randn(2, 8 * 3 * 3))
            self.register_buffer("basis", torch.randn(16, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.conv2d(x, (self.basis @ self.coef).reshape(16, 8, 3, 3), padding=1)

    program = lower_to_pte(Rebuilt(), (torch.rand(1, 8, 8, 8),), "fp32")
    assert program.portable.get("aten.convolution.default") == 1
    assert "aten.convolution.default" not in program.delegated


def test_fp16_program_runs_in_half_and_stays_close() -> None:
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 1)).eval()
    x = torch.rand(1, 3, 16, 16)
    program = lower_to_pte(conv, (x,), "fp16")
    assert not program.portable and program.delegated["aten.convolution.default"] == 2
    assert conv[0].weight.dtype == torch.float32  # the caller's module is not cast
    from executorch.runtime import Runtime

    out = Runtime.get().load_program(program.buffer).load_method("forward").execute([x.half()])[0]
    assert out.dtype == torch.float16
    with torch.no_grad():
        assert float((out.float() - conv(x)).abs().max()) < 1e-2


def test_manifest_refuses_a_pte_on_another_runtime(pte_out: Path) -> None:
    data = json.loads((pte_out / "manifest.json").read_text())
    data["artifacts"][0]["runtime"] = "tflite"
    with pytest.raises(FrliteError, match=r"artifacts\[0\]\.runtime is 'tflite' but target executorch runs on executorch"):
        manifest_from_json(data, "m", data["format_version"])


class _BatchStatNorm(torch.nn.Module):
    """A conv and a norm over (N, H, W) of this input, as FR models' batch-statistics norms."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        d = y - y.mean(dim=(0, 2, 3), keepdim=True)
        return d / torch.sqrt((d * d).mean(dim=(0, 2, 3), keepdim=True) + 1e-5)


@pytest.mark.parametrize(("batch", "rewritten"), [(1, 2), (2, 0)])
def test_means_over_a_unit_batch_are_rewritten_onto_xnnpack(batch: int, rewritten: int) -> None:
    """With N = 1 the mean over (N, H, W) is the mean over (H, W), which XNNPACK lowers; with
    N = 2 it is not the same function and stays on the portable kernels."""
    from executorch.runtime import Runtime

    module = _BatchStatNorm().eval()
    x = torch.rand(batch, 3, 8, 8)
    program = lower_to_pte(module, (x,), "fp32")
    assert sum(program.rewrites.values()) == rewritten
    assert program.portable.get("aten.mean.dim", 0) == 2 - rewritten
    out = Runtime.get().load_program(program.buffer).load_method("forward").execute([x])[0]
    with torch.no_grad():
        assert float((out - module(x)).abs().max()) <= 1e-5


def test_a_mean_over_w_then_h_becomes_one_xnnpack_mean() -> None:
    """The factorized form's statistics: mean over W, then H (converter/forms/factorized.py)."""
    from executorch.runtime import Runtime

    class WThenH(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x - x.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)

    x = torch.rand(1, 4, 6, 10)
    program = lower_to_pte(WThenH(), (x,), "fp32")
    assert program.rewrites["mean over W of a mean over H (or H of W) -> mean over (H, W)"] == 1
    assert not program.portable and program.delegated["aten.mean.dim"] == 1
    out = Runtime.get().load_program(program.buffer).load_method("forward").execute([x])[0]
    assert float((out - WThenH()(x)).abs().max()) <= 1e-6


@pytest.mark.slow
def test_authors_unet_lowers_whole_onto_xnnpack(unet_archive: Path, tmp_path: Path) -> None:
    """The authors' UNet (real checkpoint) at 320x480: both forms run in one XNNPACK subgraph,
    no op on the portable kernels, and match PyTorch within the fp32 tolerance."""
    out = tmp_path / "unet"
    convert(ConvertRequest("unet", unet_archive, [parse_input_shape("input:1x3x320x480")], out,
                           modes=["dense", "factorized"], targets=["executorch"], precisions=["fp32"], parity_samples=1))
    manifest = read_manifest(out)
    assert len(manifest.artifacts) == 2
    for art in manifest.artifacts:
        report = json.loads((out / art.extra_files["compat_json"]).read_text())
        assert report["portable_ops"] == {} and report["xnnpack_subgraphs"] == 1, report["portable_ops"]
        assert report["delegated_ops"]["aten.convolution.default"] >= 23
        assert art.parity is not None and art.parity.passed
