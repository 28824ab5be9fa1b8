"""The tensor contract of an export: every graph's role, file, precision, and each input and output (name, dtype,
shape with named dimensions). The one Python place that names the tensors: the tracer, the checks, the self-check
and the manifest all read them here; the server reads the manifest's ``graphs`` through one C# type
(``GraphSpec``) and checks each session against it once.

Roles, and what their tensors mean in order (tools/export/README.md, "The contract"):

- ``pair``: inputs [pixels (B, 2, 1, H, W) uint8]; outputs [matches int64 (B, 2, N), scores float32 (B, 2, N),
  keypoints float32 (B, 2, N, 2)].
- ``encoder``: inputs [frames (F, 1, H, W) uint8]; outputs [one per-frame feature each, float32 (F, ...)].
- ``matcher``: inputs [a bank of each encoder output, float32 (S, ...), in the encoder's order; pairs int64 (B, 2)
  slot numbers]; outputs as ``pair``.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Union

from onnx import TensorProto

Dim = Union[int, str]

PIXELS = "pixel_values"
MATCHES, SCORES, KEYPOINTS = "matches", "matching_scores", "keypoints"
OUTPUTS = [MATCHES, SCORES, KEYPOINTS]
FRAMES = "frames"
FEATURES = ["stage1", "stage2", "coarse0"]
BANK_PREFIX = "bank_"
PAIRS = "pairs"

DTYPES = {"uint8": TensorProto.UINT8, "int64": TensorProto.INT64, "float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}


def tensor(name: str, dtype: str, shape: Sequence[Dim]) -> Dict:
    return {"name": name, "dtype": dtype, "shape": list(shape)}


def graph(role: str, precision: str, file: str, inputs: List[Dict], outputs: List[Dict]) -> Dict:
    return {"role": role, "precision": precision, "file": file, "inputs": inputs, "outputs": outputs}


def pair_outputs(batch: str, cells: int) -> List[Dict]:
    return [tensor(MATCHES, "int64", [batch, 2, cells]), tensor(SCORES, "float32", [batch, 2, cells]),
            tensor(KEYPOINTS, "float32", [batch, 2, cells, 2])]


def pair(height_px: int, width_px: int, cells: int, file: str, precision: str = "fp32") -> Dict:
    return graph("pair", precision, file, [tensor(PIXELS, "uint8", ["batch", 2, 1, height_px, width_px])], pair_outputs("batch", cells))


def encoder(height_px: int, width_px: int, features: Dict[str, Sequence[int]], file: str, precision: str = "fp32") -> Dict:
    """``features``: each per-frame output's shape without the frame dimension, in the contract's order."""
    return graph("encoder", precision, file, [tensor(FRAMES, "uint8", ["frames", 1, height_px, width_px])],
                 [tensor(name, "float32", ["frames", *shape]) for name, shape in features.items()])


def matcher(cells: int, features: Dict[str, Sequence[int]], file: str, precision: str = "fp32") -> Dict:
    return graph("matcher", precision, file,
                 [tensor(BANK_PREFIX + name, "float32", ["slots", *shape]) for name, shape in features.items()] + [tensor(PAIRS, "int64", ["batch", 2])],
                 pair_outputs("batch", cells))


def names(spec: Dict, side: str) -> List[str]:
    return [t["name"] for t in spec[side]]


def dynamic_axes(spec: Dict) -> Dict[str, Dict[int, str]]:
    """torch.onnx.export's ``dynamic_axes``: every named dimension of every tensor."""
    return {t["name"]: {i: d for i, d in enumerate(t["shape"]) if isinstance(d, str)} for t in spec["inputs"] + spec["outputs"]}


def declare(model_proto, spec: Dict) -> None:
    """Writes the contract's static sizes into the graph's output shapes (the tracer loses some through index
    arithmetic; ONNX Runtime checks them against what it computes)."""
    outputs = {t["name"]: t["shape"] for t in spec["outputs"]}
    for value in model_proto.graph.output:
        if value.name not in outputs:
            continue
        for dim, size in zip(value.type.tensor_type.shape.dim, outputs[value.name]):
            if isinstance(size, int):
                dim.Clear()
                dim.dim_value = size


def problems(model_proto, spec: Dict) -> List[str]:
    """Where the graph's inputs and outputs differ from the contract: names, dtypes, shapes (named dimensions must be
    dynamic, sizes static and equal)."""
    found = []
    for side, values in (("inputs", model_proto.graph.input), ("outputs", model_proto.graph.output)):
        actual = {v.name: v for v in values}
        expected = {t["name"]: t for t in spec[side]}
        for name in expected.keys() - actual.keys():
            found.append(f"{spec['file']} has no {side[:-1]} '{name}'")
        for name in actual.keys() - expected.keys():
            found.append(f"{spec['file']} has an {side[:-1]} '{name}' the contract does not name")
        for name in expected.keys() & actual.keys():
            t, value = expected[name], actual[name]
            if value.type.tensor_type.elem_type != DTYPES[t["dtype"]]:
                found.append(f"{spec['file']} {side[:-1]} '{name}' is not {t['dtype']}")
            dims = [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]
            if len(dims) != len(t["shape"]) or any(isinstance(e, int) and e != d for e, d in zip(t["shape"], dims)) \
                    or any(isinstance(e, str) and not isinstance(d, str) for e, d in zip(t["shape"], dims)):
                found.append(f"{spec['file']} {side[:-1]} '{name}' has shape {dims}, the contract says {t['shape']}")
    return found
