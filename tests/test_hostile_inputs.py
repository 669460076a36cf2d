"""Hostile and broken inputs (issue 11, items 6, 7, 11, 12): bounded reads, NaN/Inf, argument checks,
messages. Every CLI case asserts the exit code, exactly one stderr line, no traceback, and that
nothing was written; the library cases assert the exception type and its one-line message.
"""
from __future__ import annotations

import io
import json
import lzma
import os
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO
from frlite.converter.checkpoints.compact_format import decode_compact, encode_compact
from frlite.converter.core.errors import CheckpointError, DataError
from frlite.converter.models.model_loading import compact_from_model

CLS = "tests.models.small_fr:classifier"
EXE = Path(sys.executable).with_name("frlite")


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The installed `frlite`, run from the repo (test model specs import from there), with a timeout
    so a read that blocks fails the test instead of hanging it."""
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_line(r: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """`frlite` in this process (no interpreter start per case: the suite stays fast): argv in,
    exit code and stdout / stderr out, captured at the file descriptors (native libraries' logs
    count as stderr lines too). The limit variable is restored afterwards, also
    when --max-file-mb set it."""
    from frlite.cli import main

    def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        monkeypatch.chdir(REPO)
        monkeypatch.delenv("FRLITE_MAX_FILE_MB", raising=False)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capfd.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)
    return _run


@pytest.fixture(scope="module")
def cls_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.models.small_fr import classifier

    path = tmp_path_factory.mktemp("ckpt") / "cls.pt"
    torch.save(classifier().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def cls_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small classifier converted once (dense ONNX, 1x3x32x32)."""
    out = tmp_path_factory.mktemp("conv") / "out"
    r = cli("convert", CLS, "--input", "input:1x3x32x32", "--target", "onnx", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.pt"
    os.mkfifo(path)
    return path


# ---- item 6: bounded reads -------------------------------------------------------------------

def test_fifo_checkpoint_is_refused_without_blocking(fifo: Path) -> None:
    # opening a FIFO for reading blocks until a writer comes: the timeout fails the test if it does
    one_line(cli("inspect", str(fifo), timeout=60), 1, "FIFO", "not a regular file")


def test_fifo_as_convert_weights_writes_nothing(fifo: Path, tmp_path: Path) -> None:
    r = cli("convert", CLS, "--weights", str(fifo), "--input", "input:1x3x32x32", "--out", str(tmp_path / "out"),
            "--quiet", timeout=120)
    one_line(r, 1, "FIFO")
    assert listing(tmp_path) == ["pipe.pt"]


def test_dev_zero_checkpoint_is_refused() -> None:
    one_line(cli("inspect", "/dev/zero", timeout=60), 1, "/dev/zero", "character device")


def test_directory_checkpoint_is_refused(tmp_path: Path, run) -> None:
    one_line(run("inspect", str(tmp_path)), 1, "is a directory")


def _zeros_tar_xz(path: Path, members: list[tuple[str, int]]) -> None:
    """A .tar.xz of zero-filled members, streamed (200 MB of zeros never sits in memory)."""
    comp = lzma.LZMACompressor(preset=0)
    with path.open("wb") as out:
        class _Sink:
            def write(self, b: bytes) -> int:
                out.write(comp.compress(b))
                return len(b)

        with tarfile.open(fileobj=_Sink(), mode="w|") as tar:  # type: ignore[call-overload]
            for name, size in members:
                info = tarfile.TarInfo(name)
                info.size = size
                tar.addfile(info, io.BytesIO(bytes(size)) if size <= 1 << 20 else _ZeroReader(size))
        out.write(comp.flush())


class _ZeroReader(io.RawIOBase):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        k = min(len(b), self.n)
        b[:k] = bytes(k)
        self.n -= k
        return k


def test_archive_bomb_is_refused_by_the_members_declared_size(tmp_path: Path, run) -> None:
    bomb = tmp_path / "unet_fr.tar.xz"
    _zeros_tar_xz(bomb, [("unet_fr.pt", 200 << 20)])
    assert bomb.stat().st_size < 40_000  # ~30 KB holding 200 MB
    line = one_line(run("inspect", str(bomb), env={"FRLITE_MAX_FILE_MB": "8"}), 1,
                    "209,715,200 bytes", "8 MiB", "FRLITE_MAX_FILE_MB")
    assert "unet_fr.pt" in line


def test_archive_bomb_is_stopped_while_decompressing(tmp_path: Path, run) -> None:
    """Forty 1 MiB members that are not checkpoints: each under the limit, together over it; the
    stream stops once the limit is passed."""
    bomb = tmp_path / "many.tar.xz"
    _zeros_tar_xz(bomb, [(f"junk{i}.dat", 1 << 20) for i in range(40)] + [("model.pt", 10)])
    one_line(run("inspect", str(bomb), env={"FRLITE_MAX_FILE_MB": "8"}), 1, "decompresses to more than", "8 MiB")
    from frlite.converter.core.bounded_read import BoundedStream, LimitExceeded, decompressed_stream

    stream = decompressed_stream(bomb.read_bytes(), 3 << 20)
    with pytest.raises(LimitExceeded):
        while stream.read(1 << 16):
            pass
    assert isinstance(stream, BoundedStream) and stream.count <= (3 << 20) + 1


def test_archive_under_the_limit_still_reads(unet_archive: Path, run) -> None:
    r = run("inspect", str(unet_archive), "--json", env={"FRLITE_MAX_FILE_MB": "1"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kept"] == 759


def test_file_over_the_limit_is_refused_before_reading(tmp_path: Path, cls_ckpt: Path, run) -> None:
    big = tmp_path / "big.pt"
    big.write_bytes(bytes(2 << 20))
    one_line(run("inspect", str(big), env={"FRLITE_MAX_FILE_MB": "1"}), 1, "2,097,152 bytes", "1 MiB")
    one_line(run("--max-file-mb", "1", "inspect", str(big)), 1, "over the limit of 1 MiB")


@pytest.mark.parametrize("value", ["abc", "0", "-5"])
def test_bad_limit_setting_is_usage_error(value: str, cls_ckpt: Path, run) -> None:
    one_line(run("inspect", str(cls_ckpt), env={"FRLITE_MAX_FILE_MB": value}), 2, "FRLITE_MAX_FILE_MB", "positive")


def test_bad_limit_flag_is_usage_error(cls_ckpt: Path, run) -> None:
    one_line(run("--max-file-mb", "0", "inspect", str(cls_ckpt)), 2, "--max-file-mb")


# .frl files whose CRC is right but whose header lies

def _frl_with_header(edit) -> bytes:  # type: ignore[no-untyped-def]
    from tests.models.small_fr import classifier

    good = encode_compact(compact_from_model(classifier()))
    (hlen,) = struct.unpack("<I", good[12:16])
    header = json.loads(zlib.decompress(good[16:16 + hlen]))
    payload = good[16 + hlen:-4]
    new_header = edit(header)
    raw = new_header if isinstance(new_header, bytes) else zlib.compress(json.dumps(new_header).encode())
    body = good[:8] + struct.pack("<II", 1, len(raw)) + raw + payload
    return body + struct.pack("<I", zlib.crc32(body))


def _set(index: int, key: str, value):  # type: ignore[no-untyped-def]
    def edit(h):  # type: ignore[no-untyped-def]
        h["tensors"][index][key] = value
        return h
    return edit


def _drop(index: int, key: str):  # type: ignore[no-untyped-def]
    def edit(h):  # type: ignore[no-untyped-def]
        del h["tensors"][index][key]
        return h
    return edit


def _first_fr(h) -> int:  # type: ignore[no-untyped-def]
    return next(i for i, e in enumerate(h["tensors"]) if e["encoding"] == "fr-sparse")


def _on_fr(make):  # type: ignore[no-untyped-def]
    return lambda h: make(_first_fr(h))(h)


def _on_dense(make):  # type: ignore[no-untyped-def]
    return lambda h: make(next(i for i, e in enumerate(h["tensors"]) if e["encoding"] == "dense"))(h)


FRL_CASES = {
    # 1024 x 1024 x 1024 x 1024 float32 = 4 TiB: refused from the header, nothing allocated
    "huge-shape": (_on_fr(lambda i: _set(i, "shape", [1024, 1024, 1024, 1024])), "past the limit"),
    "negative-dim": (_on_fr(lambda i: _set(i, "shape", [16, -3, 3, 3])), "shape"),
    "shape-not-list": (_on_fr(lambda i: _set(i, "shape", "16x3x3x3")), "shape"),
    "missing-nnz": (_on_fr(lambda i: _drop(i, "nnz")), "nnz is missing"),
    "nnz-is-string": (_on_fr(lambda i: _set(i, "nnz", "12")), "nnz is str"),
    "nnz-over-numel": (_on_fr(lambda i: _set(i, "nnz", 10**9)), "nnz"),
    "values-bytes-inconsistent": (_on_fr(lambda i: _set(i, "values_bytes", 4)), "values_bytes"),
    "offset-past-payload": (_on_fr(lambda i: _set(i, "offset", 10**9)), "offset"),
    "unknown-encoding": (_on_fr(lambda i: _set(i, "encoding", "zstd")), "encoding"),
    "unknown-kind": (_on_fr(lambda i: _set(i, "kind", "conv9d")), "kind"),
    "dense-nbytes-wrong": (_on_dense(lambda i: _set(i, "nbytes", 3)), "nbytes"),
    "dense-bad-dtype": (_on_dense(lambda i: _set(i, "dtype", "object")), "dtype"),
    "missing-name": (_on_dense(lambda i: _drop(i, "name")), "name is missing"),
    "tensors-not-list": (lambda h: {"tensors": {"a": 1}}, "no tensor list"),
    "header-is-list": (lambda h: [1, 2, 3], "no tensor list"),
    "header-not-json": (lambda h: zlib.compress(b"{not json"), "not valid JSON"),
    "header-not-zlib": (lambda h: b"plain bytes, no zlib", "does not decompress"),
    "entry-not-object": (lambda h: {"tensors": [17]}, "tensors[0] is int"),
}


@pytest.mark.parametrize("case", sorted(FRL_CASES))
def test_frl_with_valid_crc_and_bad_header_is_refused(case: str) -> None:
    edit, needle = FRL_CASES[case]
    with pytest.raises(CheckpointError) as info:
        decode_compact(_frl_with_header(edit), "x.frl")
    msg = str(info.value)
    assert "\n" not in msg and needle in msg, msg


def test_frl_positions_outside_the_tensor_are_refused() -> None:
    """A delta-coded position past the tensor's end (index byte rewritten, CRC recomputed)."""
    from frlite.converter.checkpoints.compact_format import CompactCheckpoint, LayerInfo

    w = torch.zeros(2, 2)
    w[1, 1] = 1.0  # flat position 3: one varint byte 0x03
    good = encode_compact(CompactCheckpoint({"w": w}, {"w": LayerInfo("linear", {})}))
    assert decode_compact(good).tensors["w"].equal(w)
    body = bytearray(good[:-4])
    assert body[-1] == 0x03
    body[-1] = 0x7F  # position 127 in a tensor of 4 values
    with pytest.raises(CheckpointError, match="outside the tensor"):
        decode_compact(bytes(body) + struct.pack("<I", zlib.crc32(body)), "x.frl")


def test_frl_with_bad_header_via_cli_is_one_line(tmp_path: Path, run) -> None:
    bad = tmp_path / "huge.frl"
    bad.write_bytes(_frl_with_header(FRL_CASES["huge-shape"][0]))
    one_line(run("inspect", str(bad)), 1, "huge.frl", "header field", "frlite pack")


# arrays, images and model files

def test_object_dtype_npy_is_one_line(cls_folder: Path, tmp_path: Path, run) -> None:
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    before = listing(cls_folder)
    one_line(run("parity", str(cls_folder), "--inputs", str(obj), "--runtimes", "torch,onnxruntime"), 2,
             "object-dtype", "pickle")
    assert listing(cls_folder) == before  # no report written into the folder


def test_npy_whose_header_claims_more_than_it_holds(tmp_path: Path) -> None:
    from frlite.converter.core.array_file import load_npy

    good = tmp_path / "ok.npy"
    np.save(good, np.zeros((1, 3, 32, 32), np.float32))
    lying = tmp_path / "lying.npy"
    lying.write_bytes(good.read_bytes().replace(b"(1, 3, 32, 32)", b"(9999, 3, 99999, 32)"))
    with pytest.raises(DataError, match="header says"):
        load_npy(lying)


def test_npz_member_over_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from frlite.converter.core.array_file import load_npz

    path = tmp_path / "big.npz"
    np.savez_compressed(path, input=np.zeros((2, 1024, 1024), np.float32))  # 8 MiB of zeros, a few KB packed
    monkeypatch.setenv("FRLITE_MAX_FILE_MB", "1")
    with pytest.raises(DataError, match="members decompress to"):
        load_npz(path)


def test_fifo_and_device_as_parity_inputs(cls_folder: Path, tmp_path: Path) -> None:
    pipe = tmp_path / "x.npy"
    os.mkfifo(pipe)
    one_line(cli("parity", str(cls_folder), "--inputs", str(pipe), timeout=60), 2, "FIFO")
    zero = tmp_path / "zero.npy"
    zero.symlink_to("/dev/zero")  # the name says array, the target never ends
    one_line(cli("parity", str(cls_folder), "--inputs", str(zero), timeout=60), 2, "character device")


def test_fifo_as_evaluate_image(tmp_path: Path, cls_ckpt: Path) -> None:
    pipe = tmp_path / "img.png"
    os.mkfifo(pipe)
    one_line(cli("evaluate", CLS, "--weights", str(cls_ckpt), "--images", str(pipe), "--masks", str(pipe),
                 timeout=60), 2, "image", "FIFO")


def test_model_files_are_checked_before_a_runtime_opens_them(tmp_path: Path) -> None:
    from frlite.android_harness.binary_abi import binary_abi
    from frlite.converter.core.errors import FrliteError
    from frlite.runtimes.litert_runtime import LiteRTRuntime
    from frlite.runtimes.onnxruntime_runtime import OnnxRuntime

    pipe = tmp_path / "m.onnx"
    os.mkfifo(pipe)
    with pytest.raises(DataError, match="FIFO"):
        OnnxRuntime(pipe)
    with pytest.raises(DataError, match="character device"):
        LiteRTRuntime("/dev/zero")
    with pytest.raises(FrliteError, match="FIFO"):
        binary_abi(pipe)


# ---- item 7: NaN / Inf ---------------------------------------------------------------------

def test_nan_checkpoint_is_refused_by_convert(tmp_path: Path, cls_ckpt: Path, run) -> None:
    sd = torch.load(cls_ckpt, weights_only=True)
    sd["stem.weight"][0, 0, 0, 0] = float("nan")
    sd["head.bias"][3] = float("inf")
    bad = tmp_path / "nan.pt"
    torch.save(sd, bad)
    r = run("convert", CLS, "--weights", str(bad), "--input", "input:1x3x32x32", "--out", str(tmp_path / "out"), "--quiet")
    one_line(r, 1, "NaN/Inf", "nan.pt")
    assert listing(tmp_path) == ["nan.pt"]


def test_nan_output_fails_convert(tmp_path: Path, run) -> None:
    r = run("convert", "tests.models.hostile:nan_head", "--input", "input:1x3x8x8", "--out", str(tmp_path / "out"), "--quiet")
    one_line(r, 1, "NaN/Inf values in output", "PyTorch itself")
    assert listing(tmp_path) == []


def test_quick_parity_worst_error_is_inf_for_a_nan_output(tmp_path: Path) -> None:
    """A real ONNX Runtime session whose output is sqrt(x - 2): NaN on inputs in [0, 1)."""
    import onnx
    from onnx import TensorProto, helper

    from frlite.converter.passes.convert_pipeline import _worst_error
    from frlite.runtimes.onnxruntime_runtime import OnnxRuntime

    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph([helper.make_node("Sub", ["x", "two"], ["d"]), helper.make_node("Sqrt", ["d"], ["y"])],
                              "nan", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [two])
    path = tmp_path / "nan.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    rt = OnnxRuntime(path)
    sample = {"x": np.full((1, 4), 0.5, np.float32)}
    worst = _worst_error(rt, [sample], [[np.zeros((1, 4), np.float32)]], ["y"])
    assert worst == float("inf")
    assert not worst <= 1e-3  # the pipeline's pass test


def test_parity_compare_fails_on_nan_and_inf() -> None:
    from frlite.runtimes.parity_metrics import compare

    ref = np.linspace(-1, 1, 24, dtype=np.float32).reshape(1, 2, 3, 4)
    assert compare(ref, ref.copy(), 1e-6, 0.0).passed
    got = ref.copy()
    got[0, 1, 2, 3] = np.nan
    m = compare(ref, got, 1e9, 1e9)  # no tolerance lets a NaN through
    assert not m.passed and m.nonfinite == 1 and m.ref_nonfinite == 0
    got[0, 0, 0, 0] = np.inf
    assert compare(ref, got, 1e9, 0.0).nonfinite == 2
    bad_ref = ref.copy()
    bad_ref[0, 0, 1, 1] = np.nan
    m = compare(bad_ref, bad_ref.copy(), 1e9, 0.0)  # NaN "equal" to NaN is still no comparison
    assert not m.passed and m.ref_nonfinite == 1


def test_parity_run_result_reports_nan_even_when_not_first() -> None:
    from frlite.runtimes.parity_metrics import compare
    from frlite.runtimes.parity_run import OutputResult, RunResult

    ref = np.ones((1, 4), np.float32)
    good = compare(ref, ref + 1e-3, 1.0, 0.0)
    got = ref.copy()
    got[0, 2] = np.nan
    bad = compare(ref, got, 1.0, 0.0)
    out = OutputResult("y", "none", 1.0, 0.0, [good, bad], [], 0.5, False)
    res = RunResult("f on onnxruntime (default)", "dense", ["onnx"], "fp32", "f", "onnxruntime", "default", [out], False)
    assert np.isnan(res.worst_rel_error)  # Python's max() alone would return 1e-3
    assert "1 NaN/Inf values in the output" in res.nonfinite


@pytest.mark.parametrize("flags", [["--atol", "nan"], ["--atol", "-1"], ["--atol", "inf"], ["--rtol", "nan"]])
def test_compare_itself_refuses_bad_tolerances(flags: list[str]) -> None:
    from frlite.runtimes.parity_metrics import compare

    tol = {"--atol": 0.0, "--rtol": 0.0}
    tol[flags[0]] = float(flags[1])
    with pytest.raises(ValueError, match="finite"):
        compare(np.zeros(3), np.zeros(3), tol["--atol"], tol["--rtol"])


# ---- item 11: one line, the right exit code -------------------------------------------------

def test_huge_input_shape_is_refused_with_the_estimate(tmp_path: Path, run) -> None:
    r = run("convert", CLS, "--input", "input:1x3x99999x99999", "--out", str(tmp_path / "out"), "--quiet")
    one_line(r, 2, "input:1x3x99999x99999", "120.0 GB", "smaller input size")
    assert listing(tmp_path) == []


def test_activations_that_cannot_fit_are_refused_with_the_estimate() -> None:
    """The input (4.8 GB) fits; the `point` conv's output (32 x 10000 x 10000 floats, 12.8 GB) with
    its input cannot fit in 20 GB. Decided on fake tensors: the process never allocates them."""
    import resource

    from frlite.converter.core.errors import UsageError
    from frlite.converter.models.memory_estimate import check_forward_fits, estimate_forward
    from frlite.converter.core.shape_spec import parse_input_shapes
    from tests.models.small_fr import classifier

    model = classifier()
    shapes = parse_input_shapes(["input:1x3x20000x20000"])
    est = estimate_forward(model, shapes)
    assert est.traced and est.input_bytes == 3 * 20000 * 20000 * 4
    assert (est.largest_layer, est.largest_bytes) == ("point", 32 * 10000 * 10000 * 4)
    with pytest.raises(UsageError) as info:
        check_forward_fits(model, shapes, available=20 * 10**9)
    assert "needs at least 30.4 GB" in str(info.value) and "layer point" in str(info.value)
    check_forward_fits(model, shapes, available=40 * 10**9)  # enough: no error
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 < 4 * 10**9  # nothing of that size was real


def test_unbatched_input_for_a_4d_model(tmp_path: Path, run) -> None:
    r = run("convert", CLS, "--input", "input:3x32x32", "--out", str(tmp_path / "out"), "--quiet")
    one_line(r, 2, "input:3x32x32", "unbatched", "layer stem")
    r = run("convert", "unet", "--input", "input:3x64x64", "--out", str(tmp_path / "out"), "--quiet")
    one_line(r, 2, "unbatched")
    assert listing(tmp_path) == []


def test_huge_shape_in_inspect_factorized(cls_ckpt: Path, run) -> None:
    one_line(run("inspect", str(cls_ckpt), "--model", CLS, "--mode", "factorized", "--input", "input:1x3x99999x99999"), 2, "120.0 GB")


@pytest.mark.parametrize("names", [["input"], ["out", "out"], ["1bad"], ["a;b"]])
def test_bad_output_names(names: list[str], tmp_path: Path, run) -> None:
    args = sum((["--output-name", n] for n in names), [])
    r = run("convert", CLS, "--input", "input:1x3x32x32", *args, "--out", str(tmp_path / "out"), "--quiet")
    one_line(r, 2, "--output-name")
    assert listing(tmp_path) == []


PARITY_FLAGS = [["--samples", "0"], ["--samples", "-1"], ["--threads", "0"], ["--seed", "-1"], ["--atol", "nan"],
                ["--atol", "-1"], ["--atol", "inf"], ["--rtol", "nan"], ["--rtol", "-0.5"], ["--samples", "two"]]
BENCH_FLAGS = [["--runs", "0"], ["--runs", "-1"], ["--threads", "0"], ["--warmup", "-1"], ["--min-seconds", "-1"],
               ["--min-seconds", "nan"], ["--runs", "1.5"]]


@pytest.mark.parametrize("flags", PARITY_FLAGS, ids=lambda f: " ".join(f))
def test_bad_parity_numbers(flags: list[str], cls_folder: Path, run) -> None:
    before = listing(cls_folder)
    one_line(run("parity", str(cls_folder), *flags), 2, f"argument {flags[0]}")
    assert listing(cls_folder) == before


@pytest.mark.parametrize("flags", BENCH_FLAGS, ids=lambda f: " ".join(f))
def test_bad_bench_numbers(flags: list[str], cls_folder: Path, tmp_path: Path, run) -> None:
    one_line(run("bench", str(cls_folder), "--host", "--out", str(tmp_path / "b"), *flags), 2, f"argument {flags[0]}")
    assert listing(tmp_path) == []


def test_bad_evaluate_threads(cls_ckpt: Path, run) -> None:
    one_line(run("evaluate", CLS, "--weights", str(cls_ckpt), "--images", "a.png", "--masks", "a.png", "--threads", "0"),
             2, "argument --threads")


@pytest.mark.parametrize("text", ["x:abc", "x:1x3x", "x:", ":1x3x8x8", "x:1x-3x8x8", "x:1x0x8x8", "x 1x3x8x8"])
def test_malformed_input_shapes(text: str, tmp_path: Path, cls_ckpt: Path, run) -> None:
    one_line(run("convert", CLS, "--input", text, "--out", str(tmp_path / "out"), "--quiet"), 2, "--input")
    one_line(run("inspect", str(cls_ckpt), "--model", CLS, "--mode", "factorized", "--input", text), 2, "--input")
    assert listing(tmp_path) == []


def test_input_without_factorized_mode_is_not_ignored(cls_ckpt: Path, run) -> None:
    one_line(run("inspect", str(cls_ckpt), "--input", "x:abc"), 2, "--input applies to --mode factorized")


@pytest.mark.parametrize("flags,needle", [
    (["--target", "onnx", "--precision", "fp16"], "writes no file"),
    (["--target", "onnx", "ort-mobile", "--precision", "int8-dynamic"], "writes no file"),
    (["--target", "onnx", "--precision", "fp32", "fp16"], "--precision fp16 writes no file"),
    (["--mode", "sparse"], "--mode 'sparse' is not one of"),
    (["--precision", "fp8"], "--precision 'fp8' is not one of"),
    (["--target", "coreml"], "--target 'coreml' is not one of"),
])
def test_convert_that_would_write_nothing_or_unknown_values(flags: list[str], needle: str, tmp_path: Path, run) -> None:
    r = run("convert", CLS, "--input", "input:1x3x32x32", *flags, "--out", str(tmp_path / "out"), "--quiet")
    one_line(r, 2, needle)
    assert listing(tmp_path) == []


def _png(path: Path, size: tuple[int, int], mode: str = "RGB") -> Path:
    Image.new(mode, size, 128 if mode == "L" else (10, 200, 30)).save(path)
    return path


def test_evaluate_converted_folder_of_another_size(cls_folder: Path, cls_ckpt: Path, tmp_path: Path, run) -> None:
    img = _png(tmp_path / "img.png", (48, 40))
    mask = _png(tmp_path / "mask.png", (48, 40), "L")
    r = run("evaluate", CLS, "--weights", str(cls_ckpt), "--images", str(img), "--masks", str(mask),
            "--converted", str(cls_folder))
    one_line(r, 2, "1x3x40x48", "1x3x32x32", "--converted")


def test_evaluate_of_a_non_segmentation_model(cls_ckpt: Path, tmp_path: Path, run) -> None:
    img = _png(tmp_path / "img.png", (32, 32))
    mask = _png(tmp_path / "mask.png", (32, 32), "L")
    r = run("evaluate", CLS, "--weights", str(cls_ckpt), "--images", str(img), "--masks", str(mask))
    one_line(r, 2, "not a segmentation model", "outputs 1x10")


# ---- item 12: messages ----------------------------------------------------------------------

def test_corrupt_checkpoint_never_suggests_weights_only_false(tmp_path: Path, run) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x02" + b"this is not a checkpoint" * 40)
    pickled = tmp_path / "whole_model.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    for path in (garbage, pickled):
        line = one_line(run("inspect", str(path)), 1, str(path))
        assert "weights_only" not in line and "add_safe_globals" not in line, line


def test_inspect_dense_state_dict_says_no_fr_layers(tmp_path: Path, run) -> None:
    dense = tmp_path / "dense.pt"
    torch.save(torch.nn.Conv2d(3, 4, 3).state_dict(), dense)
    r = run("inspect", str(dense))
    assert r.returncode == 0, r.stderr
    assert "no FR layers" in r.stdout and "inf" not in r.stdout.lower()
    data = json.loads(run("inspect", str(dense), "--json").stdout)  # strict JSON: no Infinity
    assert data["fr_layers"] == 0 and data["compression_ratio"] is None


@pytest.mark.parametrize("spec", ["nosuch.module:f", "alexnet", "tests/models/missing.py:f", "tests.models.small_fr:nothing"])
def test_bad_model_spec_is_usage_error(spec: str, cls_ckpt: Path, tmp_path: Path, run) -> None:
    one_line(run("inspect", str(cls_ckpt), "--model", spec), 2, "model spec")
    one_line(run("convert", spec, "--input", "input:1x3x32x32", "--out", str(tmp_path / "out"), "--quiet"), 2, "model spec")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("argv", [["nosuch"], ["convert"], ["parity"], ["inspect", "a", "--frobnicate"],
                                  ["bench", "x", "--delegate"]])
def test_argparse_errors_are_one_line_exit_2(argv: list[str], run) -> None:
    one_line(run(*argv), 2, "error:")


def test_argparse_error_in_a_real_process() -> None:
    """The installed command, as CI runs it: the usage block is not printed, one line is."""
    one_line(cli("parity", "somewhere", "--atol", "nan"), 2, "frlite parity: error: argument --atol")


@pytest.mark.parametrize("shape,needle", [([1, 3, 99999, 99999], "GB"), ([1, -3, 8, 8], "not sizes"),
                                          ([1, 3, 0, 8], "not sizes")])
def test_seeded_samples_of_a_manifest_shape_that_cannot_fit(shape: list[int], needle: str) -> None:
    from frlite.converter.core.manifest import TensorInfo
    from frlite.runtimes.parity_inputs import load_inputs

    spec = TensorInfo("input", shape, "float32", "NCHW", "input")
    with pytest.raises(DataError, match=needle):
        load_inputs(None, [spec], 2, 0)
