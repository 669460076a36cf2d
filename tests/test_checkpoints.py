"""Reading the authors' checkpoint, frlite's compact format, and every way a checkpoint is bad."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch
from torch import nn

from frlite.converter.checkpoints.checkpoint_reader import read_checkpoint
from frlite.converter.checkpoints.compact_format import decode_compact, encode_compact, write_compact
from frlite.converter.core.errors import CheckpointError, CheckpointMismatchError
from frlite.converter.fr.fr_layers import FRConv2d, FRConvTranspose2d, FRLinear
from frlite.converter.models.model_loading import compact_from_model, load_fr_model
from frlite.converter.models.summary import summarize_checkpoint, summarize_model
from frlite.converter.checkpoints.weights_loader import apply_checkpoint

AUTHORS_PT_BYTES = 40_539


def test_authors_checkpoint_reads_safely(unet_pt: Path, unet_archive: Path) -> None:
    assert unet_pt.stat().st_size == AUTHORS_PT_BYTES
    ckpt = read_checkpoint(unet_pt)
    assert ckpt.format == "torch-sparse" and len(ckpt.tensors) == 23
    assert ckpt.stored_sparse == set(ckpt.tensors)
    from_archive = read_checkpoint(unet_archive)
    assert from_archive.member == "unet_fr.pt" and from_archive.size_bytes == AUTHORS_PT_BYTES
    for k, v in ckpt.tensors.items():
        assert torch.equal(v, from_archive.tensors[k])
    s = summarize_checkpoint(ckpt)
    assert (len(s.layers), s.kept, s.dense) == (23, 759, 31_024_960)
    assert all(layer.kept == 33 for layer in s.layers)
    boxes = {layer.name: layer.box for layer in s.layers}
    assert boxes["inc.double_conv.3.weight"] == (4, 4, 3, 3)
    assert boxes["up1.up.weight"] == (4, 5, 2, 2)
    assert boxes["outc.conv.weight"] == (2, 17, 1, 1)


def test_unet_model_loads_authors_checkpoint(unet_model: nn.Module) -> None:
    s = summarize_model(unet_model)
    kinds = [layer.kind for layer in s.layers]
    assert (len(s.layers), s.kept, s.dense) == (23, 759, 31_024_960)
    assert kinds.count("conv2d") == 19 and kinds.count("conv_transpose2d") == 4


def test_compact_round_trip_is_exact_and_small(unet_model: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "unet.frl"
    size = write_compact(path, compact_from_model(unet_model, {"note": "x"}))
    assert size == path.stat().st_size
    assert size < AUTHORS_PT_BYTES / 5, size  # measured 4,608 B
    back = read_checkpoint(path)
    assert back.format == "frlite-compact"
    for k, v in unet_model.state_dict().items():
        assert torch.equal(back.tensors[k], v), k
    assert back.layers["up1.up.weight"].kind == "conv_transpose2d"
    reloaded = load_fr_model("unet", path).model
    for (k, a), b in zip(unet_model.state_dict().items(), reloaded.state_dict().values()):
        assert torch.equal(a, b), k


class _Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = FRConv2d(3, 8, 3, stride=2, groups=1)
        self.dw = FRConv2d(8, 8, 3, groups=8, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.up = FRConvTranspose2d(8, 4, 3, stride=2, output_padding=1)
        self.fc = FRLinear(16, 5)
        self.plain = nn.Linear(5, 2)


def test_compact_round_trip_of_mixed_model_with_biases_and_buffers() -> None:
    m = _Mixed()
    with torch.no_grad():
        m.bn.running_mean.uniform_()
        m.bn.num_batches_tracked.fill_(7)
        m.fc.weight[2:, 3:] = 0  # some exact zeros among kept values
    back = decode_compact(encode_compact(compact_from_model(m)))
    for k, v in m.state_dict().items():
        assert back.tensors[k].dtype == v.dtype and torch.equal(back.tensors[k], v), k
    assert set(back.layers) == {"conv.weight", "dw.weight", "up.weight", "fc.weight"}
    assert back.layers["dw.weight"].config["groups"] == 8
    assert back.layers["up.weight"].config["output_padding"] == [1, 1]


def _expect(exc_type: type[Exception], path: Path, *needles: str) -> str:
    with pytest.raises(exc_type) as info:
        read_checkpoint(path)
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_bad_checkpoint_files(tmp_path: Path, unet_pt: Path, unet_model: nn.Module) -> None:
    _expect(CheckpointError, tmp_path / "nope.pt", "does not exist")
    _expect(CheckpointError, tmp_path, "is a directory")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    _expect(CheckpointError, empty, "empty")
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(unet_pt.read_bytes()[:20_000])
    _expect(CheckpointError, truncated, "truncated or corrupt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x02this is not a checkpoint" * 50)
    _expect(CheckpointError, garbage, str(garbage))
    whole = tmp_path / "whole_model.pt"
    torch.save(nn.Linear(2, 2), whole)
    msg = _expect(CheckpointError, whole, "safe loader", "Linear", "state_dict()")
    assert "weights_only" not in msg and "add_safe_globals" not in msg  # never advise running the file's code
    not_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], not_dict)
    _expect(CheckpointError, not_dict, "not a state_dict")
    # compact file with one flipped byte / cut short
    good = encode_compact(compact_from_model(unet_model))
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    (tmp_path / "flip.frl").write_bytes(bytes(flipped))
    _expect(CheckpointError, tmp_path / "flip.frl", "checksum mismatch")
    (tmp_path / "cut.frl").write_bytes(good[:-100])
    _expect(CheckpointError, tmp_path / "cut.frl", "truncated or corrupt")
    # archives: corrupt, and with two checkpoints inside
    (tmp_path / "bad.tar.xz").write_bytes(b"\xfd7zXZ\x00" + b"0" * 100)
    _expect(CheckpointError, tmp_path / "bad.tar.xz", "archive")
    two = tmp_path / "two.tar"
    with tarfile.open(two, "w") as tar:
        for name in ("a.pt", "b.pt"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    _expect(CheckpointError, two, "exactly one checkpoint", "a.pt, b.pt")


def test_nested_state_dict_is_accepted(tmp_path: Path) -> None:
    m = FRConv2d(2, 3, 3)
    path = tmp_path / "nested.pt"
    torch.save({"state_dict": m.state_dict(), "epoch": 3}, path)
    assert read_checkpoint(path).format == "torch-dense"


def test_mismatch_names_first_key_and_both_shapes(unet_pt: Path, tmp_path: Path) -> None:
    sd = torch.load(unet_pt, weights_only=True)
    bad = dict(sd)
    bad["down1.maxpool_conv.1.double_conv.3.weight"] = torch.zeros(128, 64, 3, 3).to_sparse()
    path = tmp_path / "bad_shape.pt"
    torch.save(bad, path)
    model = load_fr_model("unet").model
    with pytest.raises(CheckpointMismatchError) as info:
        apply_checkpoint(model, read_checkpoint(path), "unet")
    msg = str(info.value)
    assert "'down1.maxpool_conv.1.double_conv.3.weight'" in msg
    assert "(128, 64, 3, 3)" in msg and "(128, 128, 3, 3)" in msg

    missing = {k: v for k, v in sd.items() if k != "up2.up.weight"}
    torch.save(missing, path)
    with pytest.raises(CheckpointMismatchError, match="'up2.up.weight'.*missing"):
        apply_checkpoint(model, read_checkpoint(path), "unet")

    extra = dict(sd)
    extra["head.extra.weight"] = torch.zeros(3)
    torch.save(extra, path)
    with pytest.raises(CheckpointMismatchError, match="'head.extra.weight'.*does not have"):
        apply_checkpoint(model, read_checkpoint(path), "unet")
    # nothing was copied by the failed attempts
    assert summarize_model(model).kept != 759


def test_compact_kind_mismatch_is_named(tmp_path: Path) -> None:
    conv = nn.Sequential(FRConv2d(4, 4, 2))
    convt = nn.Sequential(FRConvTranspose2d(4, 4, 2))
    path = tmp_path / "convt.frl"
    write_compact(path, compact_from_model(convt))
    with pytest.raises(CheckpointMismatchError, match="conv_transpose2d weight in the checkpoint but an FR conv2d"):
        apply_checkpoint(conv, read_checkpoint(path))
