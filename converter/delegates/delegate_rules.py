"""Which TFLite ops the GPU and NNAPI delegates take, as data.

TFLite's own Analyzer no longer checks anything (in TF 2.19-2.21 and ai-edge-litert it says
"looks compatible" even for WHILE, Flex and 5-D CONV_3D models). These rules restate, for the
ops listed, the checks of LiteRT's `tflite/tools/versioning/gpu_compatibility.cc` and the GPU
model builder (op-version caps, rank <= 4 for every tensor), and of the NNAPI delegate's
`NNAPIDelegateKernel::Validate`. An op without a rule is "not supported" and falls back to the
CPU. Each named check is a function in delegate_compat.py with its own test. (NNAPI's
`ExpectOpVersion(v, n)` accepts v <= n, so its versions are maxima too.)
"""
from __future__ import annotations

from dataclasses import dataclass

F32 = ("float32",)
F32_Q8 = ("float32", "uint8", "int8")


@dataclass(frozen=True)
class OpRule:
    max_rank: int | None = 4            # largest rank of any input/output tensor (None: unchecked)
    inputs: tuple[int, ...] | None = None  # allowed numbers of (non-optional) inputs
    const_inputs: tuple[int, ...] = ()  # input positions that must be constant
    max_runtime_inputs: int | None = None  # inputs that are computed at run time
    max_const_inputs: int | None = None
    max_version: int | None = None
    min_api: int | None = None          # NNAPI: Android API level (or feature level)
    dtypes: tuple[str, ...] | None = None  # allowed type of input 0
    checks: tuple[str, ...] = ()
    note: str = ""


def _unary_gpu() -> OpRule:
    return OpRule(max_runtime_inputs=1, max_const_inputs=0, max_version=2)


def _binary_gpu() -> OpRule:
    return OpRule(inputs=(2,), max_const_inputs=1)


GPU_RULES: dict[str, OpRule] = {
    "ADD": OpRule(inputs=(2,), checks=("broadcastable",)),
    "MUL": OpRule(inputs=(2,), max_version=3, checks=("broadcastable",)),
    "SUB": OpRule(inputs=(2,), max_const_inputs=1, max_version=2),
    "DIV": OpRule(inputs=(2,), max_const_inputs=1, max_version=2),
    "SQUARED_DIFFERENCE": _binary_gpu(),
    "MAXIMUM": _binary_gpu(),
    "MINIMUM": _binary_gpu(),
    "CONV_2D": OpRule(max_runtime_inputs=2, max_version=6, checks=("no_runtime_grouped_weights",)),
    "DEPTHWISE_CONV_2D": OpRule(max_runtime_inputs=2, max_version=6, checks=("depthwise_multiplier",)),
    "TRANSPOSE_CONV": OpRule(max_runtime_inputs=2, max_version=3),
    "DEPTH_TO_SPACE": OpRule(inputs=(1,), max_runtime_inputs=1,
                             note="block_size > 1 (the transposed-conv repair writes its kernel size, >= 2)"),
    "FULLY_CONNECTED": OpRule(max_runtime_inputs=2, max_version=9, checks=("input0_runtime",)),
    "BATCH_MATMUL": OpRule(inputs=(2,), checks=("batch_matmul_gpu",)),
    "MAX_POOL_2D": OpRule(max_runtime_inputs=1),
    "AVERAGE_POOL_2D": OpRule(max_runtime_inputs=1),
    "MEAN": OpRule(inputs=(2,), const_inputs=(1,), checks=("axes_int32",)),
    "SUM": OpRule(inputs=(2,), const_inputs=(1,), checks=("axes_int32",)),
    "RESHAPE": OpRule(max_runtime_inputs=1, max_version=1),
    "TRANSPOSE": OpRule(inputs=(2,), const_inputs=(1,), max_version=4),
    "CONCATENATION": OpRule(max_version=2),
    "PAD": OpRule(max_runtime_inputs=1, checks=("pad_4x2_or_3x2",)),
    "PADV2": OpRule(max_runtime_inputs=1, checks=("pad_4x2_or_3x2",)),
    "SLICE": OpRule(const_inputs=(1, 2), max_version=2, checks=("rank_3_or_4",)),
    "STRIDED_SLICE": OpRule(const_inputs=(1, 2, 3), max_version=4, checks=("rank_3_or_4",)),
    "RSQRT": _unary_gpu(), "SQRT": _unary_gpu(), "COS": _unary_gpu(), "SIN": _unary_gpu(),
    "EXP": _unary_gpu(), "LOG": _unary_gpu(), "ABS": _unary_gpu(), "NEG": _unary_gpu(),
    "SQUARE": _unary_gpu(), "LOGISTIC": _unary_gpu(), "TANH": _unary_gpu(),
    "RELU": OpRule(), "RELU6": OpRule(), "LEAKY_RELU": OpRule(), "PRELU": OpRule(),
    "HARD_SWISH": OpRule(max_runtime_inputs=1),
    "SOFTMAX": OpRule(max_version=2),
    "DEQUANTIZE": OpRule(inputs=(1,), max_version=3, checks=("not_int16",)),
    "RESIZE_BILINEAR": OpRule(max_runtime_inputs=1, max_version=3),
    "RESIZE_NEAREST_NEIGHBOR": OpRule(max_runtime_inputs=1, max_version=3),
    "GATHER": OpRule(max_version=1, checks=("gather_1d_int32_indices",)),
    "SPLIT": OpRule(const_inputs=(0,)),
}

NNAPI_RULES: dict[str, OpRule] = {
    "ADD": OpRule(min_api=27, max_version=2, dtypes=F32_Q8 + ("int32",)),
    "MUL": OpRule(min_api=27, max_version=2, dtypes=F32_Q8 + ("int32",)),
    "SUB": OpRule(min_api=28, max_version=3, dtypes=F32_Q8 + ("int32",)),
    "DIV": OpRule(min_api=28, max_version=1, dtypes=F32),
    "SQUARED_DIFFERENCE": OpRule(min_api=28, max_version=2),
    "MAXIMUM": OpRule(min_api=29, max_version=3, max_rank=None),
    "MINIMUM": OpRule(min_api=29, max_version=3, max_rank=None),
    "CONV_2D": OpRule(min_api=27, max_version=5, inputs=(3,), max_rank=None, note="bias input required"),
    "DEPTHWISE_CONV_2D": OpRule(min_api=27, max_version=3, max_rank=None),
    "TRANSPOSE_CONV": OpRule(min_api=29, max_version=4, const_inputs=(0, 1), max_rank=None),
    "DEPTH_TO_SPACE": OpRule(min_api=27, max_version=1, dtypes=F32_Q8),
    "FULLY_CONNECTED": OpRule(min_api=27, max_version=5, max_rank=None, checks=("keep_num_dims_api30",)),
    "BATCH_MATMUL": OpRule(min_api=1000006, max_version=2, checks=("no_batch_broadcast",)),
    "MAX_POOL_2D": OpRule(min_api=27, max_version=2, max_rank=None),
    "AVERAGE_POOL_2D": OpRule(min_api=27, max_version=2, max_rank=None),
    "MEAN": OpRule(min_api=28, max_version=2),
    "SUM": OpRule(min_api=29, max_version=1, dtypes=F32, max_rank=None),
    "RESHAPE": OpRule(min_api=27, max_version=1, checks=("shape_input_const",)),
    "TRANSPOSE": OpRule(min_api=28, max_version=2, const_inputs=(1,), max_rank=None),
    "CONCATENATION": OpRule(min_api=27, max_version=2),
    "PAD": OpRule(min_api=28, max_version=2, max_rank=None),
    "PADV2": OpRule(min_api=29, max_version=2, max_rank=None),
    "SLICE": OpRule(min_api=29, max_version=2, max_rank=None),
    "STRIDED_SLICE": OpRule(min_api=28, max_version=2, max_rank=None),
    "RSQRT": OpRule(min_api=29, max_version=2, dtypes=F32, max_rank=None),
    "SQRT": OpRule(min_api=29, max_version=1, dtypes=F32, max_rank=None),
    "COS": OpRule(min_api=29, max_version=1, dtypes=F32, max_rank=None),
    "SIN": OpRule(min_api=29, max_version=1, dtypes=F32, max_rank=None),
    "EXP": OpRule(min_api=29, max_version=1, dtypes=F32, max_rank=None),
    "LOG": OpRule(min_api=29, max_version=1, dtypes=F32, max_rank=None),
    "ABS": OpRule(min_api=29, max_version=1, dtypes=F32, max_rank=None),
    "RELU": OpRule(min_api=27, max_version=2, max_rank=None),
    "RELU6": OpRule(min_api=27, max_version=2, max_rank=None),
    "LOGISTIC": OpRule(min_api=27, max_version=2, max_rank=None),
    "TANH": OpRule(min_api=27, max_version=2, max_rank=None),
    "SOFTMAX": OpRule(min_api=27, max_version=2),
    "DEQUANTIZE": OpRule(min_api=27, max_rank=None, checks=("nnapi_dequantize",)),
    "RESIZE_BILINEAR": OpRule(min_api=27, max_version=3),
    "RESIZE_NEAREST_NEIGHBOR": OpRule(min_api=29, max_version=3, max_rank=None),
    "GATHER": OpRule(min_api=29, max_version=2, max_rank=None),
    "SPLIT": OpRule(min_api=29, max_version=3, const_inputs=(0,), max_rank=None),
    "HARD_SWISH": OpRule(min_api=27, max_rank=None),
    "LEAKY_RELU": OpRule(min_api=29, max_version=1, max_rank=None),
    "PRELU": OpRule(min_api=29, max_version=1, max_rank=None),
    "CAST": OpRule(min_api=29, max_version=1, max_rank=None),
    "ARG_MAX": OpRule(min_api=29, max_version=2, max_rank=None),
}

RULES = {"tflite-gpu": GPU_RULES, "tflite-nnapi": NNAPI_RULES}
