"""Tracing to ONNX the same way on torch 1.13 and 2.x: the TorchScript exporter (``dynamo=False``), opset 17,
a dynamic batch, static everything else; checks the graph for the patterns ONNX Runtime runs badly."""
from __future__ import annotations

import inspect
import io
import os
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import onnx
import torch

from . import contract
from .model import EfficientLoFTR

OPSET = 17
# NonZero: data-dependent shapes. Einsum: unsupported or slow in places. ArgMax over the N×N confidences is replaced
# by TopK (k=1); any ArgMax is flagged. Loop/If: control flow that tracing should never produce here.
FORBIDDEN = {"NonZero", "Einsum", "ArgMax", "ArgMin", "Loop", "If", "Scan"}


def export(model: EfficientLoFTR, path: str, example_batch: int = 2) -> dict:
    """Writes ``model`` to ``path`` and returns its contract. The example batch is 2 so that no exporter can
    specialise the batch dimension to 1."""
    spec = contract.pair(model.height_px, model.width_px, model.cells, os.path.basename(path))
    graph = trace(model, example_batch, dynamic_batch=True)
    # The tracer loses some static sizes through index arithmetic (the slot count shows up as a symbol); they are
    # known, so the outputs declare them, and ONNX Runtime checks them against what it computes.
    contract.declare(graph, spec)
    problems = check(graph, spec)
    if problems:
        raise RuntimeError("the exported graph is not what the server expects: " + "; ".join(problems))
    onnx.save(graph, path)
    return spec


def trace(model: EfficientLoFTR, batch: int, dynamic_batch: bool, extra_outputs: Optional[List[str]] = None) -> onnx.ModelProto:
    """The traced graph in memory; with ``dynamic_batch`` False every shape is static (for counting its cost).
    ``extra_outputs`` names further outputs the module returns (the fp16 export's region ends)."""
    pixels = torch.zeros(batch, 2, 1, model.height_px, model.width_px, dtype=torch.uint8)
    spec = contract.pair(model.height_px, model.width_px, model.cells, "")
    names = contract.names(spec, "outputs") + list(extra_outputs or [])
    dynamic = {**contract.dynamic_axes(spec), **{name: {0: "batch"} for name in extra_outputs or []}}
    return _trace_module(model, (pixels,), contract.names(spec, "inputs"), names, dynamic if dynamic_batch else None)


def check(graph: onnx.ModelProto, spec: dict) -> List[str]:
    """What is wrong with ``graph`` for serving: forbidden ops, wrong opset, or inputs and outputs other than the
    contract's."""
    onnx.checker.check_model(graph)
    problems = _check_ops(graph) + contract.problems(graph, spec)
    opsets = [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")]
    if opsets != [OPSET]:
        problems.append(f"opset {opsets}, expected {OPSET}")
    return problems


def op_counts(graph: onnx.ModelProto) -> dict:
    counts: dict = {}
    for node in graph.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def feature_shapes(model: EfficientLoFTR) -> Dict[str, List[int]]:
    """The encoder's per-frame features and their shapes (without the frame dimension), from a run on one frame."""
    from .model import FrameEncoder

    with torch.no_grad():
        features = FrameEncoder(model)(torch.zeros(1, 1, model.height_px, model.width_px, dtype=torch.uint8))
    return {name: list(value.shape[1:]) for name, value in zip(contract.FEATURES, features)}


def export_split(model: EfficientLoFTR, encoder_path: str, matcher_path: str) -> Tuple[dict, dict]:
    """The stream split: ``encoder.onnx`` (uint8 frames (F, 1, H, W) → per-frame features, dynamic F) and
    ``matcher.onnx`` (a feature bank of S slots and (B, 2) slot numbers → pair-slot outputs; dynamic S and B), both
    traced from the same module as ``model.onnx``. Returns their contracts."""
    encoder, matcher, encoder_spec, matcher_spec = trace_split(model, encoder_path, matcher_path)
    problems = [f"encoder: {p}" for p in check(encoder, encoder_spec)] + [f"matcher: {p}" for p in check(matcher, matcher_spec)]
    if problems:
        raise RuntimeError("the split graphs are not what the server expects: " + "; ".join(problems))
    onnx.save(encoder, encoder_path)
    onnx.save(matcher, matcher_path)
    return encoder_spec, matcher_spec


def trace_split(model: EfficientLoFTR, encoder_file: str, matcher_file: str, extra_encoder: Sequence[str] = (),
                extra_matcher: Sequence[str] = ()) -> Tuple[onnx.ModelProto, onnx.ModelProto, dict, dict]:
    """The traced split graphs in memory with their contracts; ``extra_*`` name further outputs the modules return
    (the fp16 export's region ends)."""
    from .model import FrameEncoder, PairMatcher

    features = feature_shapes(model)
    encoder_spec = contract.encoder(model.height_px, model.width_px, features, os.path.basename(encoder_file))
    matcher_spec = contract.matcher(model.cells, features, os.path.basename(matcher_file))
    frames = torch.zeros(4, 1, model.height_px, model.width_px, dtype=torch.uint8)
    encoder = _trace_module(FrameEncoder(model), (frames,), contract.names(encoder_spec, "inputs"),
                            contract.names(encoder_spec, "outputs") + list(extra_encoder),
                            {**contract.dynamic_axes(encoder_spec), **{name: {0: "frames"} for name in extra_encoder}})
    with torch.no_grad():
        bank = FrameEncoder(model)(frames)[:len(features)]
    pairs = torch.tensor([[0, 1], [2, 3]], dtype=torch.int64)
    matcher = _trace_module(PairMatcher(model), (*bank, pairs), contract.names(matcher_spec, "inputs"),
                            contract.names(matcher_spec, "outputs") + list(extra_matcher),
                            {**contract.dynamic_axes(matcher_spec), **{name: {0: "rows"} for name in extra_matcher}})
    contract.declare(matcher, matcher_spec)
    return encoder, matcher, encoder_spec, matcher_spec


def _trace_module(module: torch.nn.Module, args: tuple, inputs: List[str], outputs: List[str], dynamic: Optional[dict]) -> onnx.ModelProto:
    kwargs = dict(opset_version=OPSET, input_names=inputs, output_names=outputs, dynamic_axes=dynamic, do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter warns about every traced shape and un-foldable strided slice; none matter here.
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, buffer, **kwargs)
    graph = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(graph)
    return graph


def _check_ops(graph: onnx.ModelProto) -> List[str]:
    ops = sorted({node.op_type for node in graph.graph.node} & FORBIDDEN)
    return [f"it contains {', '.join(ops)}"] if ops else []
