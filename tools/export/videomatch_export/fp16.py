"""The fp16 variant: the backbone, the transformer and the fine-feature FPN (all but ~4% of the multiply-accumulates)
in fp16; the coarse similarity, dual softmax, mutual check, window gathers, fine matching, indices and coordinates
stay fp32 (fp16 products below 6e-8 flush to 0 and mutual-max ties appear).

torch 1.13 cannot run fp16 convolutions on CPU, so the module cannot be traced in fp16 there. Instead the fp32 graph
is traced with the region's ends as extra outputs (scaled images, coarse features, fine map), and every node between
them is converted: float initializers and constants to fp16, a Cast to fp16 on the way in, a Cast to fp32 on every
way out. The inputs and outputs of the graph are unchanged."""
from __future__ import annotations

import os
from typing import Dict, List, Set, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import contract, onnx_export
from .model import EfficientLoFTR

# Inputs that are parameters of an op, not data, and must keep their own type (Resize: roi and scales).
_KEEP_TYPE = {("Resize", 1), ("Resize", 2)}
BOUNDARIES = ["fp16_images", "fp16_coarse", "fp16_fine"]
# The split's region ends: the encoder's starts at its scaled frames and ends at its outputs; the matcher's starts at
# the features gathered from the bank and ends at the cross-attended coarse features and the fine map.
ENCODER_BOUNDARIES = ["fp16_frames"]
MATCHER_BOUNDARIES = ["fp16_stage1", "fp16_stage2", "fp16_coarse0", "fp16_coarse", "fp16_fine"]
_ALL_BOUNDARIES = set(BOUNDARIES) | set(ENCODER_BOUNDARIES) | set(MATCHER_BOUNDARIES)


def export(model: EfficientLoFTR, path: str) -> dict:
    """Writes the fp16 whole-pair graph; returns its contract (the fp32 graph's, at fp16 precision)."""
    spec = contract.pair(model.height_px, model.width_px, model.cells, os.path.basename(path), "fp16")
    model.export_boundaries = True
    try:
        graph = onnx_export.trace(model, 2, dynamic_batch=True, extra_outputs=BOUNDARIES)
    finally:
        model.export_boundaries = False
    convert(graph, BOUNDARIES[:1], BOUNDARIES[1:])
    contract.declare(graph, spec)
    _save_checked(graph, spec, path)
    return spec


def export_split(model: EfficientLoFTR, encoder_path: str, matcher_path: str) -> Tuple[dict, dict]:
    """Writes the fp16 split graphs (the backbone in fp16 in the encoder; transformer and FPN in the matcher); the
    features they exchange through the bank stay fp32. Returns their contracts."""
    model.export_boundaries = True
    try:
        encoder, matcher, encoder_spec, matcher_spec = onnx_export.trace_split(model, encoder_path, matcher_path, ENCODER_BOUNDARIES, MATCHER_BOUNDARIES)
    finally:
        model.export_boundaries = False
    convert(encoder, ENCODER_BOUNDARIES, contract.names(encoder_spec, "outputs"))
    convert(matcher, MATCHER_BOUNDARIES[:3], MATCHER_BOUNDARIES[3:])
    encoder_spec, matcher_spec = dict(encoder_spec, precision="fp16"), dict(matcher_spec, precision="fp16")
    contract.declare(matcher, matcher_spec)
    _save_checked(encoder, encoder_spec, encoder_path)
    _save_checked(matcher, matcher_spec, matcher_path)
    return encoder_spec, matcher_spec


def _save_checked(graph: onnx.ModelProto, spec: dict, path: str) -> None:
    problems = onnx_export.check(graph, spec)
    if problems:
        raise RuntimeError(f"the fp16 graph {spec['file']} is not what the server expects: " + "; ".join(problems))
    onnx.save(graph, path)


def convert(graph: onnx.ModelProto, starts: List[str], ends: List[str]) -> None:
    """Converts, in place, the nodes that depend on ``starts`` and that ``ends`` depend on, and removes every
    boundary output that is not one of the graph's own (an end that is a graph output stays, cast back to fp32)."""
    g = graph.graph
    producers = {o: n for n in g.node for o in n.output}
    consumers: Dict[str, List[onnx.NodeProto]] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in g.output}

    # The region: nodes that depend on the scaled images and that the coarse features or the fine map depend on.
    ancestors: Set[int] = set()
    stack = [producers[e] for e in ends]
    while stack:
        node = stack.pop()
        if id(node) in ancestors:
            continue
        ancestors.add(id(node))
        if set(starts) & set(node.output):
            continue
        stack.extend(producers[i] for i in node.input if i in producers)
    descendants: Set[int] = set()
    stack = [c for start in starts for c in consumers.get(start, [])]
    while stack:
        node = stack.pop()
        if id(node) in descendants:
            continue
        descendants.add(id(node))
        for output in node.output:
            stack.extend(consumers.get(output, []))
    region = [n for n in g.node if id(n) in ancestors and id(n) in descendants]
    in_region = {id(n) for n in region}
    floats = _float_tensors(graph)
    initializers = {i.name: i for i in g.initializer}

    renamed: Dict[str, str] = {}
    casts_in: List[onnx.NodeProto] = []
    for node in region:
        if node.op_type == "Constant":
            value = node.attribute[0]
            if value.name == "value" and value.t.data_type == TensorProto.FLOAT:
                value.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(value.t).astype(np.float16), value.t.name))
            continue
        for position, name in enumerate(node.input):
            if not name or (node.op_type, position) in _KEEP_TYPE:
                continue
            if name in initializers and initializers[name].data_type == TensorProto.FLOAT:
                users = consumers[name]
                half_name = name + "_fp16"
                if half_name not in initializers:
                    initializers[half_name] = numpy_helper.from_array(numpy_helper.to_array(initializers[name]).astype(np.float16), half_name)
                    g.initializer.append(initializers[half_name])
                node.input[position] = half_name
                if all(id(u) in in_region for u in users):
                    pass
            elif name in floats and (name in starts or (name in producers and id(producers[name]) not in in_region)):
                if name not in renamed:
                    renamed[name] = name + "_to_fp16"
                    casts_in.append(helper.make_node("Cast", [name], [renamed[name]], to=TensorProto.FLOAT16, name=name + "/CastFp16"))
                node.input[position] = renamed[name]
        if node.op_type == "Cast" and any(a.name == "to" and a.i == TensorProto.FLOAT for a in node.attribute):
            for attribute in node.attribute:
                if attribute.name == "to":
                    attribute.i = TensorProto.FLOAT16

    # Every fp16 tensor read outside the region is cast back to fp32 for those readers; a region end that is one of the
    # graph's outputs (the encoder's features) is renamed and cast back under its own name.
    casts_out: List[onnx.NodeProto] = []
    for node in region:
        for position, output in enumerate(node.output):
            if output not in floats:
                continue
            if output in graph_outputs and output in ends and output not in _ALL_BOUNDARIES:
                node.output[position] = output + "_fp16"
                casts_out.append(helper.make_node("Cast", [node.output[position]], [output], to=TensorProto.FLOAT, name=output + "/CastFp32"))
                for user in consumers.get(output, []):
                    user.input[:] = [node.output[position] if i == output else i for i in user.input]
                output = node.output[position]
            outside = [u for u in consumers.get(output, []) if id(u) not in in_region]
            if not outside:
                continue
            back = output + "_fp32"
            casts_out.append(helper.make_node("Cast", [output], [back], to=TensorProto.FLOAT, name=output + "/CastFp32"))
            for user in outside:
                for position1, name in enumerate(user.input):
                    if name == output:
                        user.input[position1] = back

    # Unused fp32 copies of converted initializers go.
    used = {i for n in g.node for i in n.input} | {i for n in casts_in + casts_out for i in n.input}
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(nodes + casts_in + casts_out)
    _topological_sort(graph)
    outputs = [o for o in g.output if o.name not in _ALL_BOUNDARIES]
    del g.output[:]
    g.output.extend(outputs)
    del g.value_info[:]


def _float_tensors(graph: onnx.ModelProto) -> Set[str]:
    inferred = onnx.shape_inference.infer_shapes(graph)
    names = set()
    for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            names.add(value.name)
    for init in graph.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            names.add(init.name)
    for node in graph.graph.node:
        if node.op_type == "Constant" and node.attribute[0].t.data_type == TensorProto.FLOAT:
            names.update(node.output)
    return names


def _topological_sort(graph: onnx.ModelProto) -> None:
    g = graph.graph
    available = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending = list(g.node)
    ordered = []
    while pending:
        progressed = False
        rest = []
        for node in pending:
            if all(i in available for i in node.input):
                ordered.append(node)
                available.update(node.output)
                progressed = True
            else:
                rest.append(node)
        if not progressed:
            raise RuntimeError(f"fp16 conversion left a cycle or a dangling input at {rest[0].name}")
        pending = rest
    del g.node[:]
    g.node.extend(ordered)
