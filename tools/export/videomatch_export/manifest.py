"""``videomatch-model.json``: how the server feeds and reads the export (see the C# ``ModelManifest``), plus where
it came from."""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, List

import torch

from . import __version__
from .model import EfficientLoFTR

FILE_NAME = "videomatch-model.json"


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(folder: str, model: EfficientLoFTR, name: str, checkpoint: str, options: Dict[str, Any], graphs: List[Dict[str, Any]],
          seconds: float) -> Dict[str, Any]:
    """``graphs``: the contracts of the graphs written (contract.py), the fp32 whole-pair graph first."""
    manifest = {
        "name": name,
        "family": "Dense",
        "input": {"width": model.width_px, "height": model.height_px, "channels": 1, "elementType": "UInt8"},
        "outputs": {"layout": "HuggingFaceRows" if model.hf_compat else "PairSlots"},
        # The model keeps only matches above its coarse threshold; a lower stream threshold adds none.
        "defaultThreshold": model.cfg.coarse_matching_threshold,
        "coarseStride": model.cfg.coarse_stride_px,
        "maxMatches": model.top_k,
        # Every graph of the folder, its role, precision, file and tensors: what the server checks each session against.
        "graphs": graphs,
        "export": {
            "tool": f"videomatch_export {__version__}",
            "torch": torch.__version__,
            # The folder's name, not its path (which is the exporting machine's); the sha256 says which weights.
            "checkpoint": os.path.basename(os.path.normpath(checkpoint)),
            "checkpointSha256": sha256_of(os.path.join(checkpoint, "model.safetensors")),
            "configSha256": model.cfg.sha256,
            "options": options,
            "selfCheck": "selfcheck.safetensors",
            "seconds": round(seconds, 1),
        },
    }
    with open(os.path.join(folder, FILE_NAME), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return manifest
