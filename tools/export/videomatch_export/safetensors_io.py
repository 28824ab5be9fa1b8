"""The safetensors format with numpy: an 8-byte little-endian header length, a JSON header (``dtype``, ``shape``,
``data_offsets`` per tensor, optional ``__metadata__``), then one row-major little-endian data buffer."""
from __future__ import annotations

import json
import struct
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}


class SafetensorsError(ValueError):
    """The file is not a readable safetensors file; the message says where it breaks."""


def read(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Every tensor of ``path`` (as arrays that own their memory) and the header's ``__metadata__``."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise SafetensorsError(f"{path}: {len(raw)} bytes is too short for a safetensors file")
    (length,) = struct.unpack("<Q", raw[:8])
    if 8 + length > len(raw):
        raise SafetensorsError(f"{path}: the header claims {length} bytes but the file holds {len(raw) - 8} after the length")
    try:
        header = json.loads(raw[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SafetensorsError(f"{path}: the header is not JSON ({error})") from error
    metadata = header.pop("__metadata__", None) or {}
    data = memoryview(raw)[8 + length:]
    tensors: Dict[str, np.ndarray] = {}
    for name, entry in header.items():
        dtype = _DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise SafetensorsError(f"{path}: tensor {name!r} has dtype {entry.get('dtype')!r}, which this reader does not know")
        start, end = entry["data_offsets"]
        shape = tuple(int(d) for d in entry["shape"])
        count = int(np.prod(shape)) if shape else 1
        if end - start != count * dtype.itemsize or end > len(data):
            raise SafetensorsError(f"{path}: tensor {name!r} ({entry['dtype']} {list(shape)}) has {end - start} bytes at "
                                   f"{start}..{end}; {count * dtype.itemsize} within {len(data)} were expected")
        tensors[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(shape).copy()
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def write(path: str, tensors: Mapping[str, np.ndarray], metadata: Optional[Mapping[str, str]] = None) -> None:
    """Writes ``tensors`` (sorted by name, contiguous: the format allows no holes) with optional string ``metadata``."""
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        # Not ascontiguousarray: it turns 0-d tensors (batch norms' step counters) into shape (1,).
        array = np.asarray(tensors[name])
        array = array if array.flags.c_contiguous else array.copy()
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if np.dtype(dtype) not in _NAMES:
            raise SafetensorsError(f"tensor {name!r} has dtype {array.dtype}, which safetensors cannot hold here")
        blob = array.astype(dtype, copy=False).tobytes()
        header[name] = {"dtype": _NAMES[np.dtype(dtype)], "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
