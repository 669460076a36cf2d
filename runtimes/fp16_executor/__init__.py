"""Execute a shipped .tflite's own graph with fp16 storage after every op (what a phone's GPU /
NNAPI delegate with precision loss allowed does), or in fp32 to validate the kernels."""
from frlite.runtimes.fp16_executor.executor import GraphExecutor, OpStat
from frlite.runtimes.fp16_executor.graph import Graph, read_graph
from frlite.runtimes.fp16_executor.kernels import UnsupportedOp
from frlite.runtimes.fp16_executor.rounding import FP16_MAX, RoundingPolicy

__all__ = ["FP16_MAX", "Graph", "GraphExecutor", "OpStat", "RoundingPolicy", "UnsupportedOp", "read_graph"]
