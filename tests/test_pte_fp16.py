"""The fp16-arithmetic verdict of fp16 .pte files: the exported program walked op by op with fp16
storage and, as XNNPACK's ARMv8.2+ kernels do, fp16 accumulators in conv / linear.

The accumulation kernels are checked element for element against a scalar loop of exact fused
multiply-adds in XNNPACK's order; the walker against the real .pte run by ExecuTorch on this
x86 host (fp16 storage, fp32 accumulators); the verdict end to end through `frlite convert`.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from frlite.converter.core.errors import FrliteError
from frlite.converter.core.manifest import FP16_ACCUMULATION, STORAGE_ONLY, read_manifest
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.executorch.pte_lower import lower_to_pte
from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
from frlite.runtimes.fp16_executor.aten_graph import AtenGraphExecutor
from frlite.runtimes.fp16_executor.fp16_accumulate import (conv2d_fp16_acc, conv_transpose2d_fp16_acc,
                                                          linear_fp16_acc)


def _halves(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).half().float()


def _fma(acc: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """One fused multiply-add rounded once to half (float64 holds the exact value here)."""
    return torch.tensor(float(acc) + a * b, dtype=torch.float64).half()


@pytest.mark.parametrize("groups,stride,dilation", [(1, 1, 1), (2, 2, 1), (4, 1, 2)])
def test_conv_accumulates_like_xnnpack_igemm(groups: int, stride: int, dilation: int) -> None:
    x, w, b = _halves(1, 4, 7, 6, seed=1), _halves(4, 4 // groups, 3, 3, seed=2), _halves(4, seed=3)
    got = conv2d_fp16_acc(x, w, b, stride, 1, dilation, groups)
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1))
    cin_g, cout_g = 4 // groups, 4 // groups
    for co in range(4):
        g = co // cout_g
        for oy in range(got.shape[2]):
            for ox in range(got.shape[3]):
                acc = b[co].half()  # bias first, then taps row-major, input channels inner
                for ky in range(3):
                    for kx in range(3):
                        for c in range(cin_g):
                            acc = _fma(acc, float(w[co, c, ky, kx]),
                                       float(xp[0, g * cin_g + c, oy * stride + ky * dilation, ox * stride + kx * dilation]))
                assert got[0, co, oy, ox].item() == acc.item(), (co, oy, ox)


def test_transposed_conv_and_linear_accumulate_in_order() -> None:
    x, w = _halves(1, 6, 3, 4, seed=4), _halves(6, 2, 2, 2, seed=5)
    got = conv_transpose2d_fp16_acc(x, w, None, 2, 0, 0, 1)
    assert got.shape == torch.nn.functional.conv_transpose2d(x, w, None, 2).shape
    for co in range(2):
        for oy in range(6):
            for ox in range(8):
                acc = torch.tensor(0.0).half()  # kernel 2 stride 2: one tap per output, channels in order
                for c in range(6):
                    acc = _fma(acc, float(w[c, co, oy % 2, ox % 2]), float(x[0, c, oy // 2, ox // 2]))
                assert got[0, co, oy, ox].item() == acc.item()
    xl, wl, bl = _halves(2, 9, seed=6), _halves(3, 9, seed=7), _halves(3, seed=8)
    lin = linear_fp16_acc(xl, wl, bl)
    for n in range(2):
        for o in range(3):
            acc = bl[o].half()
            for k in range(9):
                acc = _fma(acc, float(wl[o, k]), float(xl[n, k]))
            assert lin[n, o].item() == acc.item()
    # strided, padded, output-padded, grouped: the same function as torch's (up to fp16 rounding)
    w2 = _halves(6, 2, 3, 3, seed=9)
    ref = torch.nn.functional.conv_transpose2d(x, w2, None, 2, 1, 1, 2)
    alt = conv_transpose2d_fp16_acc(x, w2, None, 2, 1, 1, 2).float()
    assert alt.shape == ref.shape and float((alt - ref).abs().max()) < 2e-2 * float(ref.abs().max())


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.wide = nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c2(torch.relu(self.c1(x)))
        y = y - y.mean(dim=(2, 3), keepdim=True)
        return self.wide(self.up(y))


def _graph(m: nn.Module, x: torch.Tensor) -> torch.fx.GraphModule:
    return torch.export.export(copy.deepcopy(m).half(), (x.half(),), strict=False).module()


@pytest.mark.slow  # 10 s: imports and runs the XNNPACK lowering
def test_walker_with_fp32_accumulators_is_the_host_pte() -> None:
    """x86 XNNPACK runs an fp16 .pte with fp16 storage and fp32 accumulators: the walker in that
    mode must give the .pte's own numbers (a wrong op, layout or rounding would not)."""
    from executorch.runtime import Runtime

    torch.manual_seed(0)
    m = _Net().eval()
    x = torch.rand(1, 3, 16, 16)
    program = lower_to_pte(m, (x,), "fp16", keep_graph=True)
    assert program.graph is not None
    method = Runtime.get().load_program(program.buffer).load_method("forward")
    host = method.execute([x.half()])[0].float().numpy()
    walked = AtenGraphExecutor(program.graph, "fp32").run([x.numpy()])
    scale = float(np.abs(host).max())
    assert float(np.abs(walked.outputs[0] - host).max()) <= 2e-3 * scale
    exact = m(x).detach().numpy()
    assert float(np.abs(host - exact).max()) > 0  # it is fp16: the comparison above is not trivial
    assert [s.layer for s in walked.stats[:3]] == ["c1", None, "c2"]  # each op knows its module (relu: the top)


def test_fp16_accumulation_shows_what_the_host_cannot() -> None:
    """A 4096-term dot product: fp16 accumulators drift far beyond fp32 accumulators rounded once."""
    m = nn.Conv2d(256, 8, 4, bias=False).eval()
    with torch.no_grad():
        m.weight.copy_(torch.rand(m.weight.shape, generator=torch.Generator().manual_seed(0)) * 0.05)
    x = torch.rand(1, 256, 4, 4, generator=torch.Generator().manual_seed(1))
    gm = _graph(m, x)
    exact = torch.nn.functional.conv2d(x.half().double(), m.weight.detach().half().double()).numpy()
    err = {acc: float(np.abs(AtenGraphExecutor(gm, acc).run([x.numpy()]).outputs[0] - exact).max())
           for acc in ("fp16", "fp32")}
    assert err["fp16"] > 20 * err["fp32"]
    assert AtenGraphExecutor(gm, "fp16").accumulated_macs() == 8 * 256 * 16


@pytest.mark.slow
def test_overflowing_fp16_pte_is_refused_naming_the_layer(tmp_path: Path) -> None:
    """An fp16 program has no precision-loss switch: it computes in fp16 on the host as well, so a
    file that overflows is not written, and the refusal names the op and FR layer."""
    out = tmp_path / "out"
    with pytest.raises(FrliteError) as err:
        convert(ConvertRequest("tests.models.small_fr:overflowing", None, [parse_input_shape("input:1x3x16x16")], out,
                               modes=["dense"], targets=["executorch"], precisions=["fp32", "fp16"]))
    msg = str(err.value)
    assert "executorch/dense_fp16.pte (NaN/Inf in its output; fp16 arithmetic: unsafe" in msg
    assert "op 0 conv2d (conv2d) (in FR layer conv1.weight) overflows fp16" in msg
    assert "ship the fp32 .pte instead" in msg and "nothing was written" in msg
    assert "dense_fp32.pte" not in msg and not out.exists()


@pytest.mark.slow
def test_safe_fp16_pte_and_the_accumulation_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from frlite.converter.core import tolerances

    def run(out: Path) -> object:
        convert(ConvertRequest("tests.models.small_fr:classifier", None, [parse_input_shape("input:1x3x32x32")], out,
                               modes=["factorized"], targets=["executorch"], precisions=["fp16"]))
        (art,) = read_manifest(out).artifacts
        return art.fp16_arith

    v = run(tmp_path / "a")
    assert v.verdict == "safe" and v.arithmetic == FP16_ACCUMULATION and 0 < v.worst_rel_to_scale < 3e-2
    assert v.first_overflow is None and "fp16 accumulation in conv / linear" in v.message
    (art,) = read_manifest(tmp_path / "a").artifacts
    report = json.loads((tmp_path / "a" / art.extra_files["compat_json"]).read_text())
    assert report["fp16_arithmetic"]["verdict"] == "safe"
    assert "**fp16 arithmetic: safe" in (tmp_path / "a" / art.extra_files["compat_md"]).read_text()
    assert "executorch/factorized_fp16.pte (XNNPACK fp16" in (tmp_path / "a" / "convert.log").read_text()
    monkeypatch.setattr(tolerances, "FP16_ACC_MAX_MACS", 1000)
    v = run(tmp_path / "b")
    assert v.verdict == "safe" and v.arithmetic == STORAGE_ONLY
    assert "over the 0 G the fp16-accumulation emulation takes" in (tmp_path / "b" / "convert.log").read_text()


def test_long_fp16_accumulations_are_split_exactly_and_stay_on_xnnpack() -> None:
    """fp16 programs: a conv over 1024 input channels becomes 8 convs over 128-channel slices,
    added: the same function (fp32 walk), every op still on XNNPACK, and with fp16 accumulators
    several times closer to the exact result than the one long chain."""
    from executorch.runtime import Runtime

    from frlite.converter.executorch.pte_rewrites import split_long_accumulations

    m = nn.Sequential(nn.Conv2d(1024, 16, 3, padding=1), nn.ReLU()).eval()
    with torch.no_grad():
        m[0].weight.copy_(torch.rand(m[0].weight.shape, generator=torch.Generator().manual_seed(0)) * 0.01)
    x = torch.rand(1, 1024, 6, 6, generator=torch.Generator().manual_seed(1))
    exact = m(x).detach().numpy()
    long_chain = _graph(m, x)
    split = _graph(m, x)
    assert split_long_accumulations(split) == 1
    convs = [n for n in split.graph.nodes if n.target is torch.ops.aten.conv2d.default]
    assert len(convs) == 8 and sum(n.target is torch.ops.aten.add.Tensor for n in split.graph.nodes) == 7
    same = AtenGraphExecutor(split, "fp32").run([x.numpy()]).outputs[0]
    ref32 = AtenGraphExecutor(long_chain, "fp32").run([x.numpy()]).outputs[0]
    assert float(np.abs(same - ref32).max()) <= 2e-3 * float(np.abs(ref32).max())  # fp16 storage of 8 partial sums
    err = {name: float(np.abs(AtenGraphExecutor(g, "fp16").run([x.numpy()]).outputs[0] - exact).max())
           for name, g in (("long", long_chain), ("split", split))}
    assert err["split"] * 3 < err["long"]
    program = lower_to_pte(m, (x,), "fp16")
    assert not program.portable and program.subgraphs == 1 and program.delegated["aten.convolution.default"] == 8
    assert program.rewrites["conv over > 128 input channels -> convs over channel slices, added (fp16 accumulators)"] == 1
    out = Runtime.get().load_program(program.buffer).load_method("forward").execute([x.half()])[0].float().numpy()
    assert float(np.abs(out - exact).max()) <= 3e-2 * float(np.abs(exact).max())
    assert lower_to_pte(m, (x,), "fp32").rewrites.get(
        "conv over > 128 input channels -> convs over channel slices, added (fp16 accumulators)") is None
