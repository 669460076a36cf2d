"""Open a manifest artifact in its runtime, with tensor layouts taken from the manifest."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from frlite.converter.core.convert_folder import member_path
from frlite.converter.core.errors import ManifestError
from frlite.converter.core.manifest import Artifact, TensorInfo

from frlite.runtimes.base import RunOptions, Runtime, TensorSpec


def tensor_spec(info: TensorInfo) -> TensorSpec:
    return TensorSpec(info.name, tuple(info.shape), info.dtype, info.layout,
                      tuple(info.perm_from_model) if info.perm_from_model else None)


def open_artifact(folder: Path, artifact: Artifact, options: RunOptions | None = None) -> Runtime:
    """A Runtime whose `run` takes and returns arrays in the model's own layout, keyed by the
    model's tensor names (the manifest maps them to the artifact's).

    The path goes through the convert folder's one path check (inside the folder, a regular
    file); callers handing over a folder they did not write check its hashes first
    (ConvertFolder.artifact_file)."""
    path = member_path(Path(folder), artifact.path, "artifact")
    specs = {i.name: tensor_spec(i) for i in artifact.inputs + artifact.outputs}
    if artifact.runtime == "onnxruntime":
        from frlite.runtimes.onnxruntime_runtime import OnnxRuntime

        opts = options or RunOptions()
        if artifact.session_options and "graph_optimization_level" not in opts.extra:  # the file's own setting
            opts = dataclasses.replace(opts, extra={**opts.extra, **artifact.session_options})
        rt: Runtime = OnnxRuntime(path, opts, {n: s.layout for n, s in specs.items()})
    elif artifact.runtime == "tflite" and options is not None and options.variant.endswith("-arith"):
        from frlite.runtimes.fp16_arith_runtime import Fp16ArithRuntime

        rt = Fp16ArithRuntime(path, options, specs)
    elif artifact.runtime == "tflite":
        from frlite.runtimes.litert_runtime import LiteRTRuntime

        rt = LiteRTRuntime(path, options, specs)
    elif artifact.runtime == "executorch":
        from frlite.runtimes.executorch_runtime import ExecutorchRuntime

        rt = ExecutorchRuntime(path, options, specs, ([i.name for i in artifact.inputs], [o.name for o in artifact.outputs]))
    else:
        raise ManifestError(f"artifact {artifact.path} has the unknown runtime {artifact.runtime!r}; "
                            "frlite runs onnxruntime, tflite and executorch")
    return with_model_names(rt, artifact.inputs + artifact.outputs)


def with_model_names(rt: Runtime, infos: list[TensorInfo]) -> Runtime:
    """`rt` presented under the model's tensor names (the manifest's `model_name` per tensor)."""
    return _Renamed(rt, {i.name: i.model_name for i in infos})


class _Renamed(Runtime):
    """Presents a runtime's tensors under the model's names."""

    def __init__(self, inner: Runtime, to_model: dict[str, str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.to_model = to_model
        self.to_inner = {v: k for k, v in to_model.items()}

    def _rename(self, spec: TensorSpec) -> TensorSpec:
        return TensorSpec(self.to_model.get(spec.name, spec.name), spec.shape, spec.dtype, spec.layout, spec.perm_from_model)

    def inputs(self) -> list[TensorSpec]:
        return [self._rename(s) for s in self.inner.inputs()]

    def outputs(self) -> list[TensorSpec]:
        return [self._rename(s) for s in self.inner.outputs()]

    def run_native(self, feeds):  # type: ignore[no-untyped-def]
        raw = self.inner.run_native({self.to_inner.get(k, k): v for k, v in feeds.items()})
        return {self.to_model.get(k, k): v for k, v in raw.items()}
