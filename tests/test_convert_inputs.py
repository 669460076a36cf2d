"""`frlite convert --inputs`: the user's data, not seeded noise, feeds every check of the
conversion (references, quick parity, the fp16 rewrites, the fp16-arithmetic verdict), and the
manifest names what they ran on."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from frlite.converter.core.manifest import read_manifest
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.passes.convert_pipeline import ConvertRequest, convert


@pytest.mark.slow  # a real conversion end to end (7 s): the fast suite keeps under 3 min
def test_checks_run_on_the_given_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    stack = (rng.random((2, 1, 3, 32, 32)) * 0.5 + 0.25).astype(np.float32)  # two samples, not [0, 1) noise
    np.save(tmp_path / "mine.npy", stack)
    out = tmp_path / "out"
    convert(ConvertRequest("tests.models.small_fr:classifier", None, [parse_input_shape("input:1x3x32x32")], out,
                           targets=["tflite-gpu"], input_files=[str(tmp_path / "mine.npy")]))
    m = read_manifest(out)
    assert [c["source"] for c in m.check_inputs] == ["mine.npy[0]", "mine.npy[1]"]
    for c, arr in zip(m.check_inputs, stack):
        assert c["sha256"] == {"input": hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()}
    log = (out / "convert.log").read_text()
    assert "quick parity of" in log and "on 2 inputs (mine.npy[0], mine.npy[1])" in log
    gpu = [a for a in m.artifacts if a.target == "tflite-gpu"]
    assert gpu and all(a.parity is not None and a.parity.samples == 2 for a in gpu)
    for a in gpu:
        assert a.fp16_arith is not None and a.fp16_arith.samples == 2
        assert a.fp16_arith.inputs == "2 inputs (mine.npy[0], mine.npy[1])"


def test_without_inputs_the_checks_say_seeded(tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert(ConvertRequest("tests.models.small_fr:classifier", None, [parse_input_shape("input:1x3x32x32")], out))
    m = read_manifest(out)
    assert [c["source"] for c in m.check_inputs] == ["random(seed=0)[0]", "random(seed=0)[1]"]
    assert "on 2 seeded random samples" in (out / "convert.log").read_text()
