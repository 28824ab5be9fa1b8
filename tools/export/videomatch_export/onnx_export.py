"""Tracing to ONNX the same way on torch 1.13 and 2.x: the TorchScript exporter (``dynamo=False``), opset 17,
a dynamic batch, static everything else; checks the graph for the patterns ONNX Runtime runs badly."""
from __future__ import annotations

import inspect
import io
import warnings
from typing import List, Optional

import onnx
import torch

from .model import EfficientLoFTR

OPSET = 17
INPUT = "pixel_values"
OUTPUTS = ["matches", "matching_scores", "keypoints"]
# NonZero: data-dependent shapes. Einsum: unsupported or slow in places. ArgMax over the N×N confidences is replaced
# by TopK (k=1); any ArgMax is flagged. Loop/If: control flow that tracing should never produce here.
FORBIDDEN = {"NonZero", "Einsum", "ArgMax", "ArgMin", "Loop", "If", "Scan"}


def export(model: EfficientLoFTR, path: str, example_batch: int = 2) -> onnx.ModelProto:
    """Writes ``model`` to ``path`` and returns the checked graph. The example batch is 2 so that no exporter can
    specialise the batch dimension to 1."""
    graph = trace(model, example_batch, dynamic_batch=True)
    # The tracer loses some static sizes through index arithmetic (the slot count shows up as a symbol); they are
    # known, so the outputs declare them, and ONNX Runtime checks them against what it computes.
    _declare(graph, model)
    problems = check(graph, model)
    if problems:
        raise RuntimeError("the exported graph is not what the server expects: " + "; ".join(problems))
    onnx.save(graph, path)
    return graph


def trace(model: EfficientLoFTR, batch: int, dynamic_batch: bool, extra_outputs: Optional[List[str]] = None) -> onnx.ModelProto:
    """The traced graph in memory; with ``dynamic_batch`` False every shape is static (for counting its cost).
    ``extra_outputs`` names further outputs the module returns (the fp16 export's region ends)."""
    pixels = torch.zeros(batch, 2, 1, model.height_px, model.width_px, dtype=torch.uint8)
    names = OUTPUTS + list(extra_outputs or [])
    kwargs = dict(
        opset_version=OPSET,
        input_names=[INPUT],
        output_names=names,
        dynamic_axes={INPUT: {0: "batch"}, **{name: {0: "batch"} for name in names}} if dynamic_batch else None,
        do_constant_folding=True,
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter warns about every traced shape and un-foldable strided slice; none matter here.
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (pixels,), buffer, **kwargs)
    return onnx.load_from_string(buffer.getvalue())


def _declare(graph: onnx.ModelProto, model: EfficientLoFTR) -> None:
    static = {"matches": [2, model.cells], "matching_scores": [2, model.cells], "keypoints": [2, model.cells, 2]}
    for value in graph.graph.output:
        if value.name in static:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(list(dims)[1:], static[value.name]):
                dim.Clear()
                dim.dim_value = size


def check(graph: onnx.ModelProto, model: EfficientLoFTR) -> List[str]:
    """What is wrong with ``graph`` for serving: forbidden ops, wrong opset, or shapes other than (batch, ...static)."""
    onnx.checker.check_model(graph)
    problems = []
    ops = sorted({node.op_type for node in graph.graph.node} & FORBIDDEN)
    if ops:
        problems.append(f"it contains {', '.join(ops)}")
    opsets = [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")]
    if opsets != [OPSET]:
        problems.append(f"opset {opsets}, expected {OPSET}")
    expected = {
        INPUT: ["batch", 2, 1, model.height_px, model.width_px],
        "matches": ["batch", 2, model.cells],
        "matching_scores": ["batch", 2, model.cells],
        "keypoints": ["batch", 2, model.cells, 2],
    }
    for value in list(graph.graph.input) + list(graph.graph.output):
        dims = [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]
        if value.name in expected and dims != expected[value.name]:
            problems.append(f"{value.name} has shape {dims}, expected {expected[value.name]}")
    return problems


def op_counts(graph: onnx.ModelProto) -> dict:
    counts: dict = {}
    for node in graph.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


ENCODER_INPUT = "frames"
FEATURES = ["stage1", "stage2", "coarse0"]
BANK_INPUTS = [f"bank_{name}" for name in FEATURES]
PAIRS_INPUT = "pairs"


def export_split(model: EfficientLoFTR, encoder_path: str, matcher_path: str) -> None:
    """The stream split: ``encoder.onnx`` (uint8 frames (F, 1, H, W) → per-frame features, dynamic F) and
    ``matcher.onnx`` (a feature bank of S slots and (B, 2) slot numbers → pair-slot outputs; dynamic S and B), both
    traced from the same module as ``model.onnx``."""
    from .model import FrameEncoder, PairMatcher

    frames = torch.zeros(4, 1, model.height_px, model.width_px, dtype=torch.uint8)
    encoder = _trace_module(FrameEncoder(model), (frames,), [ENCODER_INPUT], FEATURES,
                            {ENCODER_INPUT: {0: "frames"}, **{name: {0: "frames"} for name in FEATURES}})
    with torch.no_grad():
        bank = FrameEncoder(model)(frames)
    pairs = torch.tensor([[0, 1], [2, 3]], dtype=torch.int64)
    matcher = _trace_module(PairMatcher(model), (*bank, pairs), BANK_INPUTS + [PAIRS_INPUT], OUTPUTS,
                            {**{name: {0: "slots"} for name in BANK_INPUTS}, PAIRS_INPUT: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUTS}})
    _declare(matcher, model)
    problems = [f"encoder: {p}" for p in _check_ops(encoder)] + [f"matcher: {p}" for p in _check_ops(matcher)]
    for value in matcher.graph.output:
        dims = [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]
        if dims[1:] != {"matches": [2, model.cells], "matching_scores": [2, model.cells], "keypoints": [2, model.cells, 2]}[value.name]:
            problems.append(f"matcher output {value.name} has shape {dims}")
    if problems:
        raise RuntimeError("the split graphs are not what the server expects: " + "; ".join(problems))
    onnx.save(encoder, encoder_path)
    onnx.save(matcher, matcher_path)


def _trace_module(module: torch.nn.Module, args: tuple, inputs: List[str], outputs: List[str], dynamic: dict) -> onnx.ModelProto:
    kwargs = dict(opset_version=OPSET, input_names=inputs, output_names=outputs, dynamic_axes=dynamic, do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, buffer, **kwargs)
    graph = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(graph)
    return graph


def _check_ops(graph: onnx.ModelProto) -> List[str]:
    ops = sorted({node.op_type for node in graph.graph.node} & FORBIDDEN)
    return [f"it contains {', '.join(ops)}"] if ops else []
