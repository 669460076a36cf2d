"""The generated zoo (tests/zoo/zoo_models.py): one test per case, every mode x target x
precision of the survey; each artifact is run on its own against PyTorch, a case the zoo expects
refused must be refused with its reason, in the modes it names only. A few cases run in
`make test-fast`; the rest are slow (the whole zoo: see docs/coverage.md for its time)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from frlite.converter.core.manifest import read_manifest
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.models.model_spec import build_model
from frlite.runtimes.loader import open_artifact
from tests.zoo.survey import MODES, convert_case
from tests.zoo.zoo_models import CASES, ZooCase


def _check_against_pytorch(case: ZooCase, out: Path) -> int:
    """Every artifact of the folder on a fresh seeded input vs PyTorch; returns how many ran."""
    shapes = [parse_input_shape(s) for s in case.inputs]
    rng = np.random.default_rng(99)
    feeds = {s.name: rng.random(s.shape, dtype=np.float32) for s in shapes}
    with torch.no_grad():
        refs = build_model(f"tests.zoo.zoo_models:{case.name}")(*(torch.from_numpy(feeds[s.name]) for s in shapes))
    refs = list(refs) if isinstance(refs, tuple) else [refs]
    manifest = read_manifest(out)
    out_names = [o.name for o in manifest.artifacts[0].outputs]
    for art in manifest.artifacts:
        got = open_artifact(out, art).run(feeds)
        for name, ref in zip(out_names, refs):
            ref = ref.numpy()
            err = float(np.abs(got[name] - ref).max()) / float(np.abs(ref).max())
            assert err <= (1e-4 if art.precision == "fp32" else 2e-2), (art.path, name, err)
    return len(manifest.artifacts)


def _params() -> list:  # type: ignore[type-arg]
    return [pytest.param(c, id=c.name, marks=() if c.fast else (pytest.mark.slow,)) for c in CASES]


@pytest.mark.parametrize("case", _params())
def test_zoo_case(case: ZooCase, tmp_path: Path) -> None:
    expect_ok = [m for m in MODES if m not in case.refused]
    if case.refused:
        together = convert_case(case, MODES, tmp_path)
        assert not together["ok"]
        for mode, why in case.refused.items():
            alone = convert_case(case, [mode], tmp_path)
            assert not alone["ok"] and why in alone["reason"], (mode, alone)
    if expect_ok:
        res = convert_case(case, expect_ok, tmp_path)
        assert res["ok"], res.get("reason")
        assert _check_against_pytorch(case, Path(res["out"])) == res["files"]
