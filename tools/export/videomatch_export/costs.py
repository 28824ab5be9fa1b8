"""Multiply-accumulates per pair, counted from the graph exported with a static batch of 1 (the served graph's
dynamic batch hides some shapes from ONNX shape inference): convolutions and matrix products (Conv, MatMul, Gemm),
which include the coarse similarity and the fine matching; element-wise ops are memory-bound and not counted."""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import onnx
from onnx import shape_inference


def _shapes(model: onnx.ModelProto) -> Dict[str, Tuple[int, ...]]:
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    # The exporter's own value_info can disagree with ONNX's inference (an index tensor recorded as size 1): re-infer.
    del fixed.graph.value_info[:]
    for value in fixed.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.Clear()
                dim.dim_value = 1
    for value in fixed.graph.output:
        value.type.tensor_type.ClearField("shape")
    inferred = shape_inference.infer_shapes(fixed, data_prop=True)
    shapes = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim)
        shapes[value.name] = dims
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def of_model(model) -> int:
    """MACs per pair of an :class:`EfficientLoFTR` module, counted on its static batch-1 export."""
    from .onnx_export import trace
    return count(trace(model, 1, dynamic_batch=False))


def count(model: onnx.ModelProto, by_op: bool = False):
    """MACs of one pair (batch 1). Raises ValueError if a Conv or MatMul has a shape shape inference cannot resolve."""
    shapes = _shapes(model)
    totals: Dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            out = shapes.get(node.output[0])
            weight = shapes.get(node.input[1])
            if not out or not weight or -1 in out:
                raise ValueError(f"cannot size {node.name}")
            macs = int(np.prod(out)) * int(np.prod(weight[1:]))
        elif node.op_type in ("MatMul", "Gemm"):
            a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
            if not a or not out or -1 in a or -1 in out:
                raise ValueError(f"cannot size {node.name}")
            macs = int(np.prod(out)) * a[-1]
        else:
            continue
        totals[node.op_type] = totals.get(node.op_type, 0) + macs
    total = sum(totals.values())
    return (total, totals) if by_op else total


def of_split(model) -> Tuple[int, int]:
    """MACs of the stream split: (encoder per frame, matcher per pair), each counted on a static trace."""
    import torch

    from . import contract
    from .model import FrameEncoder, PairMatcher
    from .onnx_export import _trace_module, feature_shapes

    features = feature_shapes(model)
    encoder = contract.encoder(model.height_px, model.width_px, features, "")
    matcher = contract.matcher(model.cells, features, "")
    frames = torch.zeros(2, 1, model.height_px, model.width_px, dtype=torch.uint8)
    one = _trace_module(FrameEncoder(model), (frames[:1],), contract.names(encoder, "inputs"), contract.names(encoder, "outputs"), {})
    with torch.no_grad():
        bank = FrameEncoder(model)(frames)
    pair = _trace_module(PairMatcher(model), (*bank, torch.tensor([[0, 1]])), contract.names(matcher, "inputs"), contract.names(matcher, "outputs"), {})
    return count(one), count(pair)
