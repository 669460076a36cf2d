"""Pass tflite_artifacts: one artifact per .tflite file and tflite target, its I/O matched to the
model's (onnx2tf's NHWC layout recorded as a permutation), and for tflite-gpu / tflite-nnapi a
delegate compatibility report (converter/delegates/delegate_compat.py)."""
from __future__ import annotations

from frlite.converter.core.errors import FrliteError
from frlite.converter.core.layouts import onnx2tf_layout
from frlite.converter.core.manifest import Artifact, TensorInfo
from frlite.converter.passes.context import TFLITE_TARGETS, ConvertContext, sha256
from frlite.converter.passes.driver import BasePass
from frlite.converter.passes.onnx2tf import wants_tflite
from frlite.converter.tflite.tflite_file import read_tflite


def tflite_io(summary, names: list[str], shapes: list[tuple[int, ...]], kind: str, by_sig: dict[str, int]) -> list[TensorInfo]:  # type: ignore[no-untyped-def]
    infos = []
    sig_names = list(by_sig)
    for i, (name, shape) in enumerate(zip(names, shapes)):
        layout, perm = onnx2tf_layout(len(shape))
        want = tuple(shape[p] for p in perm) if perm else tuple(shape)
        if name in by_sig:
            sig = name
        elif len(sig_names) == len(names):
            sig = sig_names[i]
        else:
            raise FrliteError(f"converted .tflite has {kind}s {sig_names}, cannot match {name}")
        got = tuple(summary.tensors[by_sig[sig]].shape)
        if got != want:
            raise FrliteError(f"converted .tflite {kind} {sig} has shape {got}, expected {want} ({layout}); "
                              "onnx2tf changed the layout in an unexpected way")
        # the file's own type: float32, or int8 / uint8 for a full-integer file with --io-dtype
        infos.append(TensorInfo(sig, list(got), summary.tensors[by_sig[sig]].dtype, layout, name, perm))
    return infos


class TfliteArtifacts(BasePass):
    def __init__(self) -> None:
        super().__init__("tflite_artifacts", needs=("tmp", "example", "out_names", "ref_outputs", "tflite_files"),
                         adds=("artifacts",))

    def applies(self, ctx: ConvertContext) -> bool:
        return wants_tflite(ctx)

    def run(self, ctx: ConvertContext) -> None:
        assert ctx.tmp is not None and ctx.example is not None and ctx.out_names is not None and ctx.ref_outputs is not None
        tmp = ctx.tmp
        targets = [t for t in ctx.req.targets if t in TFLITE_TARGETS]
        summary_cache = {}
        in_names = list(ctx.example)
        in_shapes = [tuple(t.shape) for t in ctx.example.values()]
        out_shapes = [tuple(o.shape) for o in ctx.ref_outputs[0]]
        for (mode, precision), path in ctx.tflite_files.items():
            if path not in summary_cache:
                summary_cache[path] = read_tflite(path)
            s = summary_cache[path]
            ins = tflite_io(s, in_names, in_shapes, "input", s.signature_inputs)
            outs = tflite_io(s, ctx.out_names, out_shapes, "output", s.signature_outputs)
            for target in targets:
                extra = {}
                if target in ("tflite-gpu", "tflite-nnapi"):
                    from frlite.converter.delegates.delegate_compat import write_compat_report

                    extra = write_compat_report(tmp, path, target, precision)
                ctx.artifacts.append(Artifact(mode=mode, target=target, precision=precision, runtime="tflite",
                                              path=str(path.relative_to(tmp)), size_bytes=path.stat().st_size,
                                              sha256=sha256(path), op_counts=s.op_counts, inputs=ins, outputs=outs,
                                              extra_files=extra, convert_seconds=ctx.tflite_seconds.get(mode, 0.0)))
