"""A checkpoint folder as downloaded from the Hub (``config.json`` + ``model.safetensors``) loaded strictly."""
from __future__ import annotations

import os
from typing import Dict, Tuple

import numpy as np
import torch

from . import safetensors_io
from .config import EfficientLoFTRConfig, load as load_config
from .model import EfficientLoFTR

DOWNLOAD_HINT = ("Download the checkpoint on a machine with internet (pip install huggingface_hub): "
                 "huggingface-cli download zju-community/matchanything_eloftr config.json model.safetensors --local-dir matchanything_eloftr "
                 "-- then copy that folder here and pass it as --checkpoint.")


class CheckpointError(ValueError):
    """The folder or its tensors do not fit the configured architecture; the message names what is wrong."""


def read_folder(folder: str) -> Tuple[EfficientLoFTRConfig, Dict[str, np.ndarray]]:
    if not os.path.isdir(folder):
        raise CheckpointError(f"checkpoint folder {folder!r} does not exist. {DOWNLOAD_HINT}")
    for name in ("config.json", "model.safetensors"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise CheckpointError(f"{folder} has no {name}; a checkpoint folder holds config.json and model.safetensors as on the Hub. {DOWNLOAD_HINT}")
    cfg = load_config(os.path.join(folder, "config.json"))
    tensors, _ = safetensors_io.read(os.path.join(folder, "model.safetensors"))
    return cfg, tensors


def load_into(model: EfficientLoFTR, tensors: Dict[str, np.ndarray]) -> None:
    """Copies every checkpoint tensor into ``model``; any missing, unexpected or mis-shaped tensor stops it."""
    expected = model.state_dict()
    # HF keys carry the task model's prefixes: the module mirrors them exactly.
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    misshaped = sorted(f"{k}: checkpoint {list(tensors[k].shape)}, model {list(expected[k].shape)}"
                       for k in set(expected) & set(tensors) if tuple(tensors[k].shape) != tuple(expected[k].shape))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (first: {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (first: {', '.join(unexpected[:5])})")
    if misshaped:
        problems.append(f"{len(misshaped)} mis-shaped ({'; '.join(misshaped[:5])})")
    if problems:
        raise CheckpointError("the checkpoint does not fit its config: " + "; ".join(problems) +
                              ". Is config.json the one the weights were saved with?")
    state = {k: torch.from_numpy(np.ascontiguousarray(v)).to(expected[k].dtype) for k, v in tensors.items()}
    model.load_state_dict(state, strict=True)


def build(folder: str, height_px: int, width_px: int, top_k: int = 0, hf_compat: bool = False) -> Tuple[EfficientLoFTR, EfficientLoFTRConfig]:
    """The module for ``folder``'s checkpoint at one input size, in eval mode."""
    cfg, tensors = read_folder(folder)
    model = EfficientLoFTR(cfg, height_px, width_px, top_k=top_k, hf_compat=hf_compat)
    load_into(model, tensors)
    return model.eval(), cfg
