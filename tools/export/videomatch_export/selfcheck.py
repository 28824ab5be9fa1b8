"""The self-check: inputs and the PyTorch module's outputs, so the server can check an export on the machine that
serves it (``videomatch verify``, and the server at start)."""
from __future__ import annotations

from typing import Dict, Iterable, Optional

import numpy as np
import torch

from . import contract, safetensors_io
from .model import EfficientLoFTR


def synthetic_pairs(height_px: int, width_px: int, stride_px: int, seed: int = 7) -> np.ndarray:
    """Three pairs of gray images, uint8 (3, 2, 1, H, W): a shift by whole cells (2 right, 1 down), the same image
    twice, and a shift by a fraction of a cell. The scene: random discs and boxes of random gray on mid-gray, with a
    little noise; sharp edges give even randomly initialised fixture weights distinctive features to match."""
    rng = np.random.default_rng(seed)
    margin = 4 * stride_px
    big_h, big_w = height_px + 2 * margin, width_px + 2 * margin
    image = np.full((big_h, big_w), 128.0)
    ys, xs = np.mgrid[0:big_h, 0:big_w]
    for _ in range(big_h * big_w // 60):
        cy, cx, size, value = rng.uniform(0, big_h), rng.uniform(0, big_w), rng.uniform(2, 14), rng.uniform(0, 255)
        if rng.random() < 0.5:
            image[(ys - cy) ** 2 + (xs - cx) ** 2 < size * size] = value
        else:
            image[(np.abs(ys - cy) < size) & (np.abs(xs - cx) < rng.uniform(2, 14))] = value
    image = np.clip(np.round(image + rng.normal(0, 4, image.shape)), 0, 255).astype(np.uint8)

    def crop(dx: int, dy: int) -> np.ndarray:
        return image[margin + dy:margin + dy + height_px, margin + dx:margin + dx + width_px]

    pairs = [(crop(0, 0), crop(2 * stride_px, stride_px)), (crop(0, 0), crop(0, 0)), (crop(0, 0), crop(3, 2))]
    return np.stack([np.stack([a, b])[:, None] for a, b in pairs])


def quantize(pixel_values: np.ndarray) -> np.ndarray:
    """HF float inputs (B, 2, C, H, W) in [0, 1] → the exported graph's uint8 gray (B, 2, 1, H, W)."""
    return np.clip(np.round(pixel_values[:, :, :1] * 255.0), 0, 255).astype(np.uint8)


def write(model: EfficientLoFTR, path: str, extra_pairs: Optional[Iterable[np.ndarray]] = None) -> Dict[str, np.ndarray]:
    """Runs ``model`` on the synthetic pairs (plus ``extra_pairs``, each (B, 2, 1, H, W) uint8) and writes inputs and
    outputs to ``path``. Returns what it wrote."""
    inputs = [synthetic_pairs(model.height_px, model.width_px, model.cfg.coarse_stride_px)]
    inputs += list(extra_pairs or [])
    pixels = np.concatenate(inputs, axis=0)
    with torch.no_grad():
        matches, scores, keypoints = model(torch.from_numpy(pixels))
    # Keyed by the whole-pair graph's tensor names: the server reads them through the manifest's pair graph.
    tensors = {
        contract.PIXELS: pixels,
        contract.MATCHES: matches.numpy().astype(np.int64),
        contract.SCORES: scores.numpy().astype(np.float32),
        contract.KEYPOINTS: keypoints.numpy().astype(np.float32),
    }
    safetensors_io.write(path, tensors, {
        "what": "inputs and PyTorch outputs of the exported module, for videomatch verify",
        "valid_slots": str(int((tensors[contract.MATCHES][:, 0] >= 0).sum())),
        # How the outputs above are laid out: the server reads PyTorch's matches with this layout and its own with the
        # manifest's, so a manifest that misdescribes its graph fails the check.
        "layout": "HuggingFaceRows" if model.hf_compat else "PairSlots",
        "torch": torch.__version__,
    })
    return tensors
