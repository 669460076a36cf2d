"""One test per delegate rule check, on small .tflite graphs built for the purpose."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from frlite.converter.delegates.delegate_compat import CHECKS, check_model, format_markdown, verdict
from frlite.converter.delegates.delegate_rules import GPU_RULES, NNAPI_RULES, OpRule
from frlite.converter.tflite.tflite_file import read_tflite, save_model_object
from frlite.converter.tflite.tflite_graph_edit import GraphEditor


def _empty_model() -> schema.ModelT:
    m = schema.ModelT()
    m.version = 3
    m.operatorCodes = []
    m.buffers = [schema.BufferT()]
    sg = schema.SubGraphT()
    sg.tensors, sg.operators, sg.inputs, sg.outputs = [], [], np.array([], np.int32), np.array([], np.int32)
    m.subgraphs = [sg]
    m.signatureDefs = []
    return m


def _graph(build, tmp_path: Path):  # type: ignore[no-untyped-def]
    """build(editor) adds ops and returns (inputs, outputs); returns the summary of the file."""
    m = _empty_model()
    ed = GraphEditor(m)
    ins, outs = build(ed)
    ed.commit_prepended()
    ed.sg.inputs = np.array(ins, np.int32)
    ed.sg.outputs = np.array(outs, np.int32)
    path = tmp_path / "g.tflite"
    save_model_object(m, path)
    return read_tflite(path)


def _one(s, rules, name):  # type: ignore[no-untyped-def]
    op = s.ops[-1]
    return verdict(s, len(s.ops) - 1, op, rules.get(op.name), name)


def test_every_named_check_is_used_and_exists() -> None:
    used = {c for rules in (GPU_RULES, NNAPI_RULES) for r in rules.values() for c in r.checks}
    assert used <= set(CHECKS), used - set(CHECKS)


def test_runtime_weights_of_fully_connected(tmp_path: Path) -> None:
    def build(ed):  # type: ignore[no-untyped-def]
        x = ed.add_tensor([2, 4])
        w = ed.add_tensor([3, 4])
        return [x, w], [ed.fully_connected(x, w)]

    s = _graph(build, tmp_path)
    assert _one(s, GPU_RULES, "tflite-gpu").delegated  # runtime weights are fine on the GPU


def test_constant_input0_of_fully_connected_falls_back_on_gpu(tmp_path: Path) -> None:
    def build(ed):  # type: ignore[no-untyped-def]
        c = ed.add_tensor([2, 4], data=np.ones((2, 4), np.float32))
        w = ed.add_tensor([3, 4])
        return [w], [ed.fully_connected(c, w)]

    v = _one(_graph(build, tmp_path), GPU_RULES, "tflite-gpu")
    assert not v.delegated and "input 0 is a constant" in v.reasons


def test_slice_rank_and_constant_begin(tmp_path: Path) -> None:
    def build2d(ed):  # type: ignore[no-untyped-def]
        x = ed.add_tensor([4, 4])
        return [x], [ed.slice(x, [0, 0], [2, 2])]

    v = _one(_graph(build2d, tmp_path), GPU_RULES, "tflite-gpu")
    assert not v.delegated and "rank-2 input (needs 3-D or 4-D)" in v.reasons

    def build3d(ed):  # type: ignore[no-untyped-def]
        x = ed.add_tensor([1, 4, 4])
        return [x], [ed.slice(x, [0, 0, 0], [1, 2, 2])]

    assert _one(_graph(build3d, tmp_path), GPU_RULES, "tflite-gpu").delegated


def test_rank5_tensor_is_rejected(tmp_path: Path) -> None:
    def build(ed):  # type: ignore[no-untyped-def]
        x = ed.add_tensor([1, 2, 3, 4, 5])
        return [x], [ed.transpose(x, [0, 1, 2, 4, 3])]

    v = _one(_graph(build, tmp_path), GPU_RULES, "tflite-gpu")
    assert not v.delegated and "rank-5 tensor (max 4)" in v.reasons


def test_unary_gpu_ops_take_no_constant_input(tmp_path: Path) -> None:
    def build(ed):  # type: ignore[no-untyped-def]
        c = ed.add_tensor([1, 4], data=np.ones((1, 4), np.float32))
        return [], [ed.cos(c)]

    v = _one(_graph(build, tmp_path), GPU_RULES, "tflite-gpu")
    assert not v.delegated and "1 constant inputs (max 0)" in v.reasons


def test_broadcast_check(tmp_path: Path) -> None:
    def build(ed):  # type: ignore[no-untyped-def]
        a = ed.add_tensor([1, 4, 3])
        b = ed.add_tensor([1, 1, 3])
        return [a, b], [ed.mul(a, b)]

    assert _one(_graph(build, tmp_path), GPU_RULES, "tflite-gpu").delegated
    s = _graph(build, tmp_path)
    s.tensors[1].shape = (1, 5, 2)  # make the shapes incompatible in the summary
    assert CHECKS["broadcastable"](s, s.ops[-1]) is not None


def test_transpose_conv_runtime_weights_gpu_yes_nnapi_no(tmp_path: Path) -> None:
    def build(ed):  # type: ignore[no-untyped-def]
        shape = ed.const_int32([1, 8, 8, 4])
        w = ed.add_tensor([4, 2, 2, 3])
        x = ed.add_tensor([1, 4, 4, 3])
        o = schema.TransposeConvOptionsT()
        o.strideH = o.strideW = 2
        out = ed.add_tensor([1, 8, 8, 4])
        op = schema.OperatorT()
        op.opcodeIndex = len(ed.model.operatorCodes)
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.TRANSPOSE_CONV
        code.version = 1
        ed.model.operatorCodes.append(code)
        op.inputs = np.array([shape, w, x], np.int32)
        op.outputs = np.array([out], np.int32)
        op.builtinOptionsType = schema.BuiltinOptions.TransposeConvOptions
        op.builtinOptions = o
        ed.new_ops.append(op)
        return [w, x], [out]

    s = _graph(build, tmp_path)
    assert _one(s, GPU_RULES, "tflite-gpu").delegated
    v = _one(s, NNAPI_RULES, "tflite-nnapi")
    assert not v.delegated and any("must be constant" in r for r in v.reasons)


def test_op_version_cap_and_unknown_op(tmp_path: Path) -> None:
    def build(ed):  # type: ignore[no-untyped-def]
        x = ed.add_tensor([1, 4])
        return [x], [ed.cos(x)]

    s = _graph(build, tmp_path)
    rule = OpRule(max_version=0)
    assert "op version 1 (max 0)" in verdict(s, 0, s.ops[0], rule, "tflite-gpu").reasons
    assert verdict(s, 0, s.ops[0], None, "tflite-gpu").reasons == ["not supported op"]


@pytest.mark.parametrize("target", ["tflite-gpu", "tflite-nnapi"])
def test_report_formats(tmp_path: Path, target: str) -> None:
    def build(ed):  # type: ignore[no-untyped-def]
        x = ed.add_tensor([1, 2, 2, 4])
        return [x], [ed.transpose(x, [0, 3, 1, 2])]

    _graph(build, tmp_path)
    rep = check_model(tmp_path / "g.tflite", target, "fp32")
    md = format_markdown(rep)
    assert "1 of 1 ops run on the delegate" in md and "| TRANSPOSE | 1 | yes |" in md
    assert rep.to_json()["all_delegated"]


def _entry_cases() -> list[tuple[str, str]]:
    return [(t, op) for t, rules in (("tflite-gpu", GPU_RULES), ("tflite-nnapi", NNAPI_RULES)) for op in sorted(rules)]


def _synthetic(op_name: str, rule: OpRule, rank: int = 4, version: int = 1, runtime_inputs: set[int] | None = None,
               dtype: str = "float32"):  # type: ignore[no-untyped-def]
    """A one-op summary shaped to pass `rule`'s generic fields: input count, constants, rank."""
    from frlite.converter.tflite.tflite_file import TfliteOp, TfliteSummary, TfliteTensor

    n_in = rule.inputs[0] if rule.inputs else max([2, *(p + 1 for p in rule.const_inputs)])
    if runtime_inputs is None:  # as many run-time inputs as allowed, the rest constant
        limit = n_in if rule.max_runtime_inputs is None else rule.max_runtime_inputs
        runtime_inputs = {i for i in range(n_in) if i not in rule.const_inputs}
        runtime_inputs = set(sorted(runtime_inputs)[:max(limit, 0)])
        if rule.max_const_inputs is not None:
            runtime_inputs |= set(range(n_in - rule.max_const_inputs))
    tensors = [TfliteTensor(i, f"t{i}", (1,) * rank, dtype, 0 if i in runtime_inputs else 16) for i in range(n_in)]
    tensors.append(TfliteTensor(n_in, "out", (1,) * rank, dtype, 0))
    op = TfliteOp(op_name, list(range(n_in)), [n_in], version)
    return TfliteSummary(Path("x.tflite"), 0, [op], tensors, [], [])


@pytest.mark.parametrize("target,op_name", _entry_cases())
def test_each_rule_entry_is_enforced(target: str, op_name: str) -> None:
    """Per rule entry: every limit its data states turns into a refusal with its own reason."""
    rule = (GPU_RULES if target == "tflite-gpu" else NNAPI_RULES)[op_name]
    fields = 0
    if rule.max_version is not None:
        s = _synthetic(op_name, rule, version=rule.max_version + 1)
        assert f"op version {rule.max_version + 1} (max {rule.max_version})" in verdict(s, 0, s.ops[0], rule, target).reasons
        fields += 1
    if rule.max_rank is not None:
        s = _synthetic(op_name, rule, rank=rule.max_rank + 1)
        assert any(r.startswith(f"rank-{rule.max_rank + 1} tensor") for r in verdict(s, 0, s.ops[0], rule, target).reasons)
        fields += 1
    for pos in rule.const_inputs:
        s = _synthetic(op_name, rule, runtime_inputs={pos})
        assert any(f"input {pos} is computed at run time" in r for r in verdict(s, 0, s.ops[0], rule, target).reasons)
        fields += 1
    if rule.max_runtime_inputs is not None:
        n = len(_synthetic(op_name, rule).ops[0].inputs)
        if n > rule.max_runtime_inputs:
            s = _synthetic(op_name, rule, runtime_inputs=set(range(n)))
            assert any("run-time inputs (max" in r for r in verdict(s, 0, s.ops[0], rule, target).reasons)
            fields += 1
    if rule.max_const_inputs is not None:
        s = _synthetic(op_name, rule, runtime_inputs=set())
        assert any("constant inputs (max" in r for r in verdict(s, 0, s.ops[0], rule, target).reasons)
        fields += 1
    if rule.inputs is not None:
        s = _synthetic(op_name, rule)
        s.ops[0].inputs.append(len(s.tensors) - 1)  # one input more than allowed
        assert len(s.ops[0].inputs) not in rule.inputs
        assert any("inputs (allowed:" in r for r in verdict(s, 0, s.ops[0], rule, target).reasons)
        fields += 1
    if rule.dtypes is not None:
        s = _synthetic(op_name, rule, dtype="int16")
        assert any("int16 input (allowed:" in r for r in verdict(s, 0, s.ops[0], rule, target).reasons)
        fields += 1
    if target == "tflite-nnapi" and rule.min_api is not None:
        from frlite.converter.delegates.delegate_compat import NNAPI_API_LEVEL

        s = _synthetic(op_name, rule)
        needs = any(r.startswith("needs NNAPI level") for r in verdict(s, 0, s.ops[0], rule, target).reasons)
        assert needs == (rule.min_api > NNAPI_API_LEVEL)
        fields += 1
    assert fields + len(rule.checks) > 0 or op_name in ("RELU", "RELU6", "LEAKY_RELU", "PRELU"), \
        f"{target} {op_name}: a rule with nothing to check"
