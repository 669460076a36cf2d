"""Per-layer quantization error of an integer .tflite against its float twin.

An integer file and the fp32 file of the same conversion come from one concrete function, so
every op output the quantizer kept has the same tensor name in both. Both run with LiteRT's
builtin kernels and all tensors preserved (XNNPACK would fuse intermediates away); each shared
activation is dequantized with its own scale / zero point and compared: SQNR (dB) and cosine.

The error a layer *adds* is what names it: SQNR compounds down the graph, so the lowest SQNR is
usually just the last layer. `added_noise` is the relative noise power this op adds on top of its
worst input's (10^(-SQNR/10) after minus before); the worst layers are those adding the most, so
a first conv at 40 dB (noise 1e-4 of the signal) ranks below a norm that takes 30 dB to 10 dB.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from frlite.converter.core.bounded_read import check_regular_file
from frlite.runtimes.litert_runtime import dequantize, quantize
from frlite.runtimes.parity_metrics import sqnr_db

QUANTIZED = (np.int8, np.uint8, np.int16)
SQNR_CAP = 100.0  # dB; an exact tensor counts as this, so the first lossy op's drop is finite


@dataclass
class LayerError:
    tensor: str          # the op output's name in both files
    op: str              # its op (CONV_2D, MEAN, ...)
    shape: tuple[int, ...]
    sqnr_db: float       # 10 log10(sum ref^2 / sum err^2); inf when exact
    cosine: float
    added_db: float      # SQNR lost at this op: min SQNR of its inputs - sqnr_db (both capped at SQNR_CAP)
    added_noise: float   # relative noise power added here: 10^(-sqnr/10) - 10^(-input sqnr/10), >= 0
    rel_error: float     # max |err| / max |ref|
    after_layer: str = ""  # the last named layer (e.g. an FR layer) upstream in op order, "" if none

    def record(self) -> dict[str, object]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        for k in ("sqnr_db", "cosine", "added_db", "added_noise", "rel_error"):
            v = d[k]
            d[k] = None if not math.isfinite(v) else round(float(v), 4)
        return d


def _values(path: Path, feeds_nhwc: dict[str, np.ndarray], wanted: list[int]) -> dict[str, np.ndarray]:
    """name -> float value of the tensors `wanted` (indices) after one run: a temporary copy of the
    file lists them as extra graph outputs, so LiteRT keeps only those alive (preserving every
    tensor of the UNet at 640x959 needs over 20 GB). Builtin kernels: XNNPACK would fuse ops away."""
    import tempfile

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from frlite.converter.tflite.tflite_file import load_model_object, save_model_object

    check_regular_file(path, "TFLite model")
    model = load_model_object(path)
    sg = model.subgraphs[0]
    sg.outputs = list(dict.fromkeys([*[int(i) for i in sg.outputs], *wanted]))
    model.signatureDefs = []  # the signature would name only the original outputs
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "layers.tflite"
        save_model_object(model, copy)
        del model
        it = Interpreter(model_path=str(copy), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
        for d in it.get_input_details():
            x = feeds_nhwc[d["name"]]
            scale, zp = d["quantization"]
            it.set_tensor(d["index"], quantize(x, d["dtype"], scale, zp) if d["dtype"] in QUANTIZED and scale else x.astype(d["dtype"]))
        it.invoke()
        values: dict[str, np.ndarray] = {}
        for d in it.get_output_details():
            a = it.get_tensor(d["index"])
            scale, zp = d["quantization"]
            values[d["name"]] = dequantize(a, scale, zp) if a.dtype in QUANTIZED and scale else a.astype(np.float32)
    return values


def _sqnr(ref: np.ndarray, got: np.ndarray) -> tuple[float, float, float]:
    r, g = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    err = float(((r - g) ** 2).sum())
    sqnr = sqnr_db(r, g)
    norms = float(np.linalg.norm(r) * np.linalg.norm(g))
    cosine = float(r @ g / norms) if norms > 0 else (1.0 if err == 0 else 0.0)
    rel = float(np.abs(r - g).max()) / (float(np.abs(r).max()) or 1.0)
    return sqnr, cosine, rel


def compare_quantized(float_file: Path, int_file: Path, feeds_nhwc: dict[str, np.ndarray],
                      layer_names: dict[str, str] | None = None, budget_bytes: int = 1 << 30) -> list[LayerError]:
    """Op outputs of `int_file` that `float_file` also has (same name, same shape), in the integer
    file's op order. Their float copies must fit `budget_bytes`; beyond it every k-th one is taken,
    evenly down the graph, and an op's `added_db` is then the loss since the compared tensors
    upstream of it. `layer_names`: tensor name -> a layer name the user knows (e.g. the FR layer
    whose output it is), used to say which layer an op follows."""
    from frlite.converter.tflite.tflite_file import read_tflite

    fsum, qsum = read_tflite(float_file), read_tflite(int_file)
    f_index = {t.name: t for t in fsum.tensors}
    names = {t.index: t.name for t in qsum.tensors}
    candidates = []
    for op in qsum.ops:
        for out in op.outputs:
            t = qsum.tensors[out]
            twin = f_index.get(t.name)
            if op.name not in ("QUANTIZE", "DEQUANTIZE") and twin is not None and twin.shape == t.shape \
                    and twin.dtype == "float32" and t.dtype in ("float32", "int8", "uint8", "int16"):
                candidates.append((t, twin))
    total = sum(4 * math.prod(t.shape) for t, _ in candidates)
    step = max(1, math.ceil(total / budget_bytes))
    chosen = candidates[step - 1::step] if step > 1 else candidates
    ref = _values(float_file, feeds_nhwc, [tw.index for _, tw in chosen])
    got = _values(int_file, feeds_nhwc, [t.index for t, _ in chosen])
    layer_names = layer_names or {}
    sqnr_of: dict[str, float] = {}
    rows: list[LayerError] = []
    last_layer = ""
    for op in qsum.ops:
        ins = [names[i] for i in op.inputs if i >= 0]
        for out in (names[i] for i in op.outputs):
            if out in layer_names:
                last_layer = layer_names[out]
            if out not in ref or out not in got or ref[out].shape != got[out].shape:
                # not compared (a (de)quantize, a renamed or a skipped tensor): its error is its inputs'
                sqnr_of[out] = min([sqnr_of[i] for i in ins if i in sqnr_of], default=SQNR_CAP)
                continue
            sqnr, cosine, rel = _sqnr(ref[out], got[out])
            sqnr_of[out] = min(sqnr, SQNR_CAP)
            before = min([sqnr_of[i] for i in ins if i in sqnr_of], default=SQNR_CAP)
            added = before - sqnr_of[out]
            noise = max(0.0, 10 ** (-sqnr_of[out] / 10) - 10 ** (-before / 10))
            rows.append(LayerError(out, op.name, tuple(ref[out].shape), sqnr, cosine, added, noise, rel, last_layer))
    return rows


def worst_layers(rows: list[LayerError], count: int = 3) -> list[LayerError]:
    """The ops that add the most noise, among activations with more than one position: per-channel
    statistics (a MEAN's (1, 1, 1, C) output) sit near zero once centred, so their own SQNR says
    little; their error shows through the ops that use them."""
    ranked = [r for r in rows if r.shape and math.prod(r.shape) > r.shape[-1] and r.added_noise > 0]
    return sorted(ranked, key=lambda r: r.added_noise, reverse=True)[:count]


def describe(row: LayerError) -> str:
    where = f" after {row.after_layer}" if row.after_layer else ""
    return f"{row.tensor} ({row.op}{where}): SQNR {row.sqnr_db:.1f} dB (loses {row.added_db:.1f} dB here)"
