"""Exact folding for inference: each RepVGG block's three branches (3×3 conv + BN, 1×1 conv + BN, identity BN) into
one 3×3 convolution with bias, and the fine-fusion blocks' 3×3 conv + BN into one convolution."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from .model import EfficientLoFTR, OutConvBlock, RepVGGBlock


def _fold(weight: torch.Tensor, norm: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """conv(x, weight) then eval-mode ``norm`` == conv(x, weight') + bias'."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return weight * scale.reshape(-1, 1, 1, 1), norm.bias - norm.running_mean * scale


@torch.no_grad()
def fuse_repvgg(block: RepVGGBlock) -> None:
    conv = block.conv1.conv
    weight, bias = _fold(conv.weight, block.conv1.norm)
    w1, b1 = _fold(block.conv2.conv.weight, block.conv2.norm)
    # The 1×1 branch at stride s samples the centre of the 3×3 window (padding 0 vs 1), so it lands in the middle tap.
    weight = weight + nn.functional.pad(w1, (1, 1, 1, 1))
    bias = bias + b1
    if block.identity is not None:
        channels = conv.in_channels
        eye = torch.zeros(channels, channels, 3, 3, dtype=weight.dtype)
        eye[torch.arange(channels), torch.arange(channels), 1, 1] = 1.0
        wi, bi = _fold(eye, block.identity)
        weight, bias = weight + wi, bias + bi
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=conv.stride, padding=1, bias=True)
    fused.weight.copy_(weight)
    fused.bias.copy_(bias)
    block.fused = fused
    del block.conv1, block.conv2, block.identity
    block.conv1 = block.conv2 = block.identity = None  # type: ignore[assignment]


@torch.no_grad()
def fuse_out_conv(block: OutConvBlock) -> None:
    conv = block.out_conv2
    weight, bias = _fold(conv.weight, block.batch_norm)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1, bias=True)
    fused.weight.copy_(weight)
    fused.bias.copy_(bias)
    block.fused = fused
    del block.out_conv2, block.batch_norm
    block.out_conv2 = block.batch_norm = None  # type: ignore[assignment]


def fuse(model: EfficientLoFTR) -> EfficientLoFTR:
    """Folds every block of ``model`` in place (it no longer loads HF checkpoints afterwards) and returns it."""
    for module in list(model.modules()):
        if isinstance(module, RepVGGBlock) and module.fused is None:
            fuse_repvgg(module)
        elif isinstance(module, OutConvBlock) and module.fused is None:
            fuse_out_conv(module)
    return model
