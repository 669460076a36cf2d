"""The `frlite` command as a user runs it: real output on the authors' UNet, one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import run_cli


def _assert_one_line_error(result, *needles: str, code: int = 1) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.slow
def test_inspect_authors_checkpoint(unet_pt: Path) -> None:
    result = run_cli("inspect", str(unet_pt), "--model", "unet")
    assert result.returncode == 0, result.stderr
    assert "23 FR layers, 759 kept coefficients of 31,024,960 dense weights" in result.stdout
    assert "up1.up.weight" in result.stdout and "4x5x2x2" in result.stdout
    as_json = json.loads(run_cli("inspect", str(unet_pt), "--json").stdout)
    assert (as_json["fr_layers"], as_json["kept"], as_json["dense"]) == (23, 759, 31_024_960)
    assert round(as_json["compression_ratio"]) == 40_876


@pytest.mark.slow
def test_pack_then_inspect(unet_archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "unet.frl"
    before = unet_archive.read_bytes()
    result = run_cli("pack", str(unet_archive), "--model", "unet", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert unet_archive.read_bytes() == before  # input untouched
    assert f"{out.stat().st_size:,} bytes" in result.stdout
    shown = run_cli("inspect", str(out))
    assert "23 FR layers, 759 kept" in shown.stdout and "conv_transpose2d" in shown.stdout


def test_bad_inputs_give_one_line(tmp_path: Path, unet_pt: Path) -> None:
    _assert_one_line_error(run_cli("inspect", str(tmp_path / "missing.pt")), "does not exist")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(unet_pt.read_bytes()[:10_000])
    _assert_one_line_error(run_cli("inspect", str(corrupt), "--model", "unet"), "truncated or corrupt")
    sd = torch.load(unet_pt, weights_only=True)
    sd["outc.conv.weight"] = torch.zeros(3, 64, 1, 1)
    wrong = tmp_path / "wrong.pt"
    torch.save(sd, wrong)
    _assert_one_line_error(run_cli("inspect", str(wrong), "--model", "unet"),
                           "'outc.conv.weight'", "(3, 64, 1, 1)", "(2, 64, 1, 1)")
    _assert_one_line_error(run_cli("inspect", str(unet_pt), "--model", "nosuch.module:f"), "nosuch.module", code=2)
    _assert_one_line_error(run_cli("inspect", str(unet_pt), "--model", "alexnet"), "not a built-in name", code=2)
    _assert_one_line_error(run_cli("pack", str(unet_pt), "--model", "unet", "--out",
                                   str(tmp_path / "no_dir" / "x.frl")), "no_dir does not exist", code=2)
    assert not (tmp_path / "no_dir").exists()


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = run_cli("--debug", "inspect", str(tmp_path / "missing.pt"))
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_evaluate_usage_error(unet_pt: Path) -> None:
    result = run_cli("evaluate", "unet", "--weights", str(unet_pt), "--images", "a.png", "b.png", "--masks", "a.png")
    _assert_one_line_error(result, "one mask per image", code=2)


@pytest.mark.slow
def test_evaluate_reproduces_readme_dice(unet_archive: Path) -> None:
    from conftest import FIXTURES, README_DICE

    imgs = [str(FIXTURES / f"in{k}.png") for k in README_DICE]
    masks = [str(FIXTURES / f"gt{k}.png") for k in README_DICE]
    result = run_cli("evaluate", "unet", "--weights", str(unet_archive), "--images", *imgs, "--masks", *masks)
    assert result.returncode == 0, result.stderr
    for key, want in README_DICE.items():
        line = next(line for line in result.stdout.splitlines() if line.startswith(f"in{key}.png"))
        assert abs(float(line.split("Dice ")[1].split()[0]) - want) < 1e-4, line
