"""`frlite parity --layers`: compare every FR layer's output across PyTorch and a converted file,
and name the first layer where the error jumps.

The mapping comes from the conversion (manifest `layer_outputs`): frlite found each FR weight in
the converted file by its values, so the op reading it is that layer, whatever the file calls
it. PyTorch side: forward hooks on the FR modules. ONNX Runtime: the layer outputs added as
graph outputs of a temporary copy. LiteRT: builtin kernels with all tensors preserved (XNNPACK
would fuse them away).
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from frlite.converter.core.bounded_read import check_regular_file, read_bounded
from frlite.converter.core.convert_folder import member_path
from frlite.converter.fr.fr_layers import fr_layers, fr_weight_key
from frlite.converter.core.manifest import Artifact

JUMP = 10.0  # an error 10x the previous layer's, above the tolerance, is where it went wrong


@dataclass
class LayerRow:
    layer: str
    max_abs_error: float
    rel_to_scale: float
    # integer files: quantization error of the op output against the float twin (quant_layers.py)
    sqnr_db: float | None = None
    cosine: float | None = None
    added_db: float | None = None


@dataclass
class LayerComparison:
    rows: list[LayerRow]
    first_divergent: str | None
    tolerance: float
    note: str = ""


def torch_layer_outputs(model: torch.nn.Module, feeds: list[np.ndarray]) -> dict[str, np.ndarray]:
    captured: dict[str, np.ndarray] = {}
    hooks = []
    for name, layer in fr_layers(model):
        key = fr_weight_key(name)
        hooks.append(layer.register_forward_hook(
            lambda m, i, o, key=key: captured.__setitem__(key, o.detach().float().numpy().copy())))
    try:
        with torch.no_grad():
            model(*[torch.from_numpy(f) for f in feeds])
    finally:
        for h in hooks:
            h.remove()
    return captured


def _onnx_layer_outputs(path: Path, art: Artifact, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnx
    import onnxruntime as ort

    # bounded, and from bytes: external-data references of an untrusted file are never followed
    model = onnx.load_from_string(read_bounded(path, "ONNX model"))
    names = list(art.layer_outputs.values())
    present = {o.name for o in model.graph.output}
    for n in names:
        if n not in present:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / "layers.onnx"
        onnx.save(model, str(tmp))
        sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        in_names = {i.model_name: i.name for i in art.inputs}
        got = sess.run(names, {in_names[k]: v for k, v in feeds.items()})
    return {layer: arr for layer, arr in zip(art.layer_outputs, got)}


def _tflite_layer_outputs(path: Path, art: Artifact, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    check_regular_file(path, "TFLite model")
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    by_name = {d["name"]: d["index"] for d in it.get_input_details()}
    for info in art.inputs:
        arr = feeds[info.model_name]
        if info.perm_from_model:
            arr = np.ascontiguousarray(arr.transpose(info.perm_from_model))
        it.set_tensor(by_name[info.name], arr)
    it.invoke()
    out = {}
    for layer, index in art.layer_outputs.items():
        arr = it.get_tensor(int(index))
        if arr.ndim == 4:  # onnx2tf made activations NHWC
            arr = arr.transpose(0, 3, 1, 2)
        out[layer] = arr
    return out


def integer_layers(art: Artifact) -> LayerComparison:
    """A full-integer file's per-layer quantization error, as convert measured it: every op output
    against the file's fp32 twin (the same integer-ready graph in float, not kept in the folder),
    on the first gate input. The worst layer is the one adding the most noise."""
    assert art.integer is not None
    rows = [LayerRow(f"{r['tensor']} ({r['op']}" + (f", after {r['after_layer']}" if r.get("after_layer") else "") + ")",
                     math.nan, float(r["rel_error"]) if r.get("rel_error") is not None else math.nan,
                     r.get("sqnr_db"), r.get("cosine"), r.get("added_db")) for r in art.integer.layers]
    worst = art.integer.worst_layers[0]["tensor"] if art.integer.worst_layers else None
    first = next((row.layer for row in rows if worst and row.layer.startswith(worst + " (")), None)
    return LayerComparison(rows, first, art.integer.threshold,
                           f"quantization error per op against the fp32 twin, measured by convert on {art.integer.inputs}")


def compare_layers(model: torch.nn.Module, folder: Path, art: Artifact, feeds: dict[str, np.ndarray],
                   tolerance: float) -> LayerComparison:
    if art.integer is not None:
        return integer_layers(art)
    if not art.layer_outputs:
        return LayerComparison([], None, tolerance, "this file records no layer mapping (e.g. ORT format)")
    ref = torch_layer_outputs(model, [feeds[i.model_name] for i in art.inputs])
    path = member_path(folder, art.path, "artifact")
    got = _onnx_layer_outputs(path, art, feeds) if art.runtime == "onnxruntime" else _tflite_layer_outputs(path, art, feeds)
    rows, first, previous = [], None, 0.0
    for layer in ref:  # model order
        if layer not in got:
            continue
        r, g = ref[layer], got[layer]
        if r.shape != g.shape:
            rows.append(LayerRow(layer, float("nan"), float("nan")))
            continue
        err = float(np.abs(g.astype(np.float64) - r).max())
        rel = err / (float(np.abs(r).max()) or 1.0)
        rows.append(LayerRow(layer, err, rel))
        if first is None and rel > tolerance and rel > JUMP * previous:
            first = layer
        previous = max(previous, rel)
    return LayerComparison(rows, first, tolerance)
