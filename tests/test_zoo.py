"""The generated zoo (tests/zoo/zoo_models.py) through every mode x target x precision of the
survey, every artifact run on its own against PyTorch.

- fast: a couple of cases converted alone (`make test-fast`);
- slow: the whole zoo as ONE model (zoo_models.AllInOne: every case side by side, each with its
  own outputs), so onnx2tf runs once per mode for all cases, and each case's output is checked
  on its own. Since the repair passes no case is refused; a case that is would fail this test
  and be found by the survey.
Per-case results with attribution: tests/zoo/survey.py and docs/coverage.md.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from frlite.converter.core.manifest import read_manifest
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.models.model_spec import build_model
from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
from frlite.runtimes.loader import open_artifact
from tests.zoo.survey import MODES, PRECISIONS, TARGETS, convert_case
from tests.zoo.zoo_models import CASES, ZooCase, all_in_one


def _errors_against_pytorch(spec: str, input_specs: list[str], out: Path) -> dict[tuple[str, str], float]:
    """(artifact path, output name) -> max |error| / max |reference| on a fresh seeded input."""
    shapes = [parse_input_shape(s) for s in input_specs]
    rng = np.random.default_rng(99)
    feeds = {s.name: rng.random(s.shape, dtype=np.float32) for s in shapes}
    with torch.no_grad():
        refs = build_model(spec)(*(torch.from_numpy(feeds[s.name]) for s in shapes))
    refs = list(refs) if isinstance(refs, tuple) else [refs]
    manifest = read_manifest(out)
    out_names = [o.name for o in manifest.artifacts[0].outputs]
    errors = {}
    for art in manifest.artifacts:
        got = open_artifact(out, art).run(feeds)
        for name, ref in zip(out_names, refs):
            ref = ref.numpy()
            errors[(art.path, name)] = float(np.abs(got[name] - ref).max()) / float(np.abs(ref).max())
    return errors


def _limit(path: str) -> float:
    return 1e-4 if "fp16" not in path else 2e-2


@pytest.mark.slow  # onnx2tf end to end, ~22 s a case: the fast suite is unit-level
@pytest.mark.parametrize("case", [c for c in CASES if c.fast], ids=lambda c: c.name)
def test_zoo_case_alone(case: ZooCase, tmp_path: Path) -> None:
    res = convert_case(case, MODES, tmp_path)
    assert res["ok"], res.get("reason")
    errors = _errors_against_pytorch(f"tests.zoo.zoo_models:{case.name}", list(case.inputs), Path(res["out"]))
    assert {path for path, _ in errors} and all(e <= _limit(p) for (p, _), e in errors.items()), errors


@pytest.mark.slow
def test_whole_zoo_converts_in_every_mode(tmp_path: Path) -> None:
    model = all_in_one()
    cases = CASES
    xs = [torch.rand(parse_input_shape(s).shape) for s in model.input_specs]
    names = []
    with torch.no_grad():
        for case, case_model, reads in zip(cases, model.cases, model.reads):
            y = case_model(*(xs[i] for i in reads))
            extra = len(y) - 1 if isinstance(y, tuple) else 0
            names += [case.name] + [f"{case.name}_{i}" for i in range(1, 1 + extra)]
    out = tmp_path / "zoo"
    convert(ConvertRequest("tests.zoo.zoo_models:all_in_one", None, [parse_input_shape(s) for s in model.input_specs],
                           out, modes=list(MODES), targets=list(TARGETS), precisions=list(PRECISIONS), output_names=names))
    manifest = read_manifest(out)
    assert len(manifest.artifacts) == 3 * (1 + 3 * 2)
    errors = _errors_against_pytorch("tests.zoo.zoo_models:all_in_one", model.input_specs, out)
    bad = {k: e for k, e in errors.items() if not e <= _limit(k[0])}
    assert not bad, bad
    assert {name for _, name in errors} == set(names)
