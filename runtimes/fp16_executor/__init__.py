"""Execute a shipped .tflite's own graph with fp16 storage after every op (what a phone's GPU /
NNAPI delegate with precision loss allowed does), or in fp32 to validate the kernels."""
from .executor import GraphExecutor, OpStat
from .graph import Graph, read_graph
from .kernels import UnsupportedOp
from .rounding import FP16_MAX, RoundingPolicy

__all__ = ["FP16_MAX", "Graph", "GraphExecutor", "OpStat", "RoundingPolicy", "UnsupportedOp", "read_graph"]
