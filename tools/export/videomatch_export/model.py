"""EfficientLoFTR as an export-friendly PyTorch module.

Submodule names mirror Hugging Face's ``EfficientLoFTRForKeypointMatching``, so the checkpoint's ``state_dict`` keys
load strictly. Through the coarse matching and the fine-feature fusion the maths are HF's (modeling file at commit
31131fe4, which the fixtures ran), written for a static input size and a dynamic batch: rotary tables are constants,
no ``nonzero``, no ``einsum``, no ArgMax over the N×N confidences (TopK with k=1 instead).

Where this module deliberately differs from HF (each pinned by a test in ``tests/test_model.py``):

* Pair slots. Slot n is image-0 cell n: its mutual nearest image-1 cell (or −1), the score, and the refined point in
  each image. HF returns two rows paired by position, which pairs the wrong cells whenever match order is not kept,
  and mixes pairs for batch > 1 (``cat(...).reshape``).
* The fine stage is the original EfficientLoFTR's (zju3dv ``fine_matching.py``), the code the weights were trained
  with: stage-1 offsets from the argmax position (HF gathers on the slot axis: a constant −3.5 px), the stage-1 dual
  softmax over each match's own 64 × 100 window pair (HF: over the slot axis), features scaled by √(fine width)
  (HF: √(fine width − slice)), and each pair's own stage-2 offsets (HF applies pair 0's to every pair).
* Fine refinement for the K best slots only (``top_k``); K = N refines every slot.

``hf_compat=True`` reproduces HF's fine stage exactly (its rows, windows and the four defects) for parity checks;
such an export is not served.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .config import EfficientLoFTRConfig

Tensor = torch.Tensor


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU()  # HF's ACT2CLS: negative slope 0.01
    if name == "gelu":
        return nn.GELU()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"activation {name!r} is not supported")


class ConvNorm(nn.Module):
    """HF's EfficientLoFTRConvNormLayer without activation: convolution (no bias), batch norm."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, eps: float):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=padding, bias=False)
        self.norm = nn.BatchNorm2d(cout, eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(x))


class RepVGGBlock(nn.Module):
    """3×3 conv + BN, 1×1 conv + BN and (where shapes allow) an identity BN, summed; or, once fused, one 3×3 conv."""

    def __init__(self, cin: int, cout: int, stride: int, eps: float, activation: str):
        super().__init__()
        self.conv1 = ConvNorm(cin, cout, 3, stride, 1, eps)
        self.conv2 = ConvNorm(cin, cout, 1, stride, 0, eps)
        # HF builds this BatchNorm2d with the default eps, not config.batch_norm_eps.
        self.identity = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None
        self.activation = _activation(activation)
        self.fused: Optional[nn.Conv2d] = None

    def forward(self, x: Tensor) -> Tensor:
        if self.fused is not None:
            return self.activation(self.fused(x))
        y = self.conv1(x) + self.conv2(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self.activation(y)


class Stage(nn.Module):
    def __init__(self, cfg: EfficientLoFTRConfig, stage: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            RepVGGBlock(cin, cout, stride, cfg.batch_norm_eps, cfg.activation_function)
            for cin, cout, stride in zip(cfg.stage_block_in_channels[stage], cfg.stage_block_out_channels[stage],
                                          cfg.stage_block_stride[stage]))

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class Backbone(nn.Module):
    def __init__(self, cfg: EfficientLoFTRConfig):
        super().__init__()
        self.stages = nn.ModuleList(Stage(cfg, s) for s in range(len(cfg.stage_stride)))

    def forward(self, x: Tensor) -> List[Tensor]:
        """Stages 1..3 (stage 0's output is not used downstream): 1/2, 1/4 and 1/8 resolution."""
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs[1:]


class Aggregation(nn.Module):
    def __init__(self, cfg: EfficientLoFTRConfig):
        super().__init__()
        c = cfg.hidden_size
        self.q_aggregation = nn.Conv2d(c, c, cfg.q_aggregation_kernel_size, stride=cfg.q_aggregation_stride, padding=0, bias=False, groups=c)
        self.kv_aggregation = nn.MaxPool2d(cfg.kv_aggregation_kernel_size, cfg.kv_aggregation_stride)
        self.norm = nn.LayerNorm(c)


class Attention(nn.Module):
    def __init__(self, cfg: EfficientLoFTRConfig):
        super().__init__()
        c = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.head_dim = cfg.head_dim
        self.q_proj = nn.Linear(c, c, bias=cfg.attention_bias)
        self.k_proj = nn.Linear(c, c, bias=cfg.attention_bias)
        self.v_proj = nn.Linear(c, c, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(c, c, bias=cfg.attention_bias)


class MLP(nn.Module):
    def __init__(self, cfg: EfficientLoFTRConfig):
        super().__init__()
        self.fc1 = nn.Linear(2 * cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.activation = _activation(cfg.mlp_activation_function)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        """(n, 2C, h, w) → (n, C, h, w). The linear layers run as 1×1 convolutions on the channel axis (the same maths
        as HF's Linear on channels-last tokens, and several times faster on CPU builds with a generic BLAS)."""
        y = F.conv2d(x, self.fc1.weight[:, :, None, None], self.fc1.bias)
        y = F.conv2d(self.activation(y), self.fc2.weight[:, :, None, None], self.fc2.bias)
        return self.layer_norm(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def rotate_half(x: Tensor) -> Tensor:
    """HF's interleaved rotation: each pair (x0, x1) becomes (−x1, x0)."""
    return torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)


class AggregatedAttention(nn.Module):
    """Self- or cross-attention on 4×4-aggregated tokens, upsampled back and merged by an MLP, plus the residual."""

    def __init__(self, cfg: EfficientLoFTRConfig):
        super().__init__()
        self.scale = cfg.q_aggregation_kernel_size
        self.channels = cfg.hidden_size
        # Static sizes of the coarse grid, set by the owning model, so the traced graph keeps its shapes static.
        self.grid = (0, 0)
        self.aggregation = Aggregation(cfg)
        self.attention = Attention(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor, source: Optional[Tensor] = None, rope: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
        c = self.channels
        ah, aw = self.grid[0] // self.scale, self.grid[1] // self.scale
        q = self.aggregation.q_aggregation(x)
        kv = self.aggregation.kv_aggregation(x if source is None else source)
        q = self.aggregation.norm(q.permute(0, 2, 3, 1)).reshape(-1, ah * aw, c)
        kv = self.aggregation.norm(kv.permute(0, 2, 3, 1)).reshape(-1, ah * aw, c)
        attention = self.attention
        query, key, value = attention.q_proj(q), attention.k_proj(kv), attention.v_proj(kv)
        if rope is not None:
            cos, sin = rope
            query = query * cos + rotate_half(query) * sin
            key = key * cos + rotate_half(key) * sin
        h, d = attention.heads, attention.head_dim
        query = query.reshape(-1, ah * aw, h, d).transpose(1, 2)
        key = key.reshape(-1, ah * aw, h, d).transpose(1, 2)
        value = value.reshape(-1, ah * aw, h, d).transpose(1, 2)
        weights = torch.softmax(torch.matmul(query, key.transpose(2, 3)) * (d ** -0.5), dim=-1)
        out = torch.matmul(weights, value).transpose(1, 2).reshape(-1, ah * aw, c)
        out = attention.o_proj(out)
        out = out.permute(0, 2, 1).reshape(-1, c, ah, aw)
        out = F.interpolate(out, scale_factor=float(self.scale), mode="bilinear", align_corners=False)
        return x + self.mlp(torch.cat([x, out], dim=1))


class TransformerLayer(nn.Module):
    def __init__(self, cfg: EfficientLoFTRConfig):
        super().__init__()
        self.self_attention = AggregatedAttention(cfg)
        self.cross_attention = AggregatedAttention(cfg)

    def self_part(self, images: Tensor, rope: Tuple[Tensor, Tensor]) -> Tensor:
        """Self-attention of every image on its own: (2B, C, h, w) image-major."""
        return self.self_attention(images, rope=rope)

    def cross_part(self, images: Tensor) -> Tensor:
        """Cross-attention, sequential as in MatchAnything: f0 attends to f1, then f1 to the updated f0."""
        c, (hh, ww) = self.cross_attention.channels, self.cross_attention.grid
        pairs = images.reshape(-1, 2, c, hh, ww)
        f0, f1 = pairs[:, 0], pairs[:, 1]
        f0 = self.cross_attention(f0, f1)
        f1 = self.cross_attention(f1, f0)
        return torch.stack((f0, f1), dim=1).reshape(-1, c, hh, ww)


class LocalFeatureTransformer(nn.Module):
    def __init__(self, cfg: EfficientLoFTRConfig):
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(cfg) for _ in range(cfg.num_attention_layers))


class EfficientLoFTRCore(nn.Module):
    """HF's ``EfficientLoFTRModel``: backbone and transformer (named ``efficientloftr`` in the checkpoint)."""

    def __init__(self, cfg: EfficientLoFTRConfig):
        super().__init__()
        self.backbone = Backbone(cfg)
        self.local_feature_transformer = LocalFeatureTransformer(cfg)


class OutConvBlock(nn.Module):
    def __init__(self, cfg: EfficientLoFTRConfig, width: int, inner: int):
        super().__init__()
        self.out_conv1 = nn.Conv2d(width, inner, 1, bias=False)
        self.out_conv2 = nn.Conv2d(inner, inner, 3, padding=1, bias=False)
        self.batch_norm = nn.BatchNorm2d(inner)
        self.activation = _activation(cfg.mlp_activation_function)
        self.out_conv3 = nn.Conv2d(inner, width, 3, padding=1, bias=False)
        self.fused: Optional[nn.Conv2d] = None

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        y = self.out_conv1(residual) + x
        y = self.fused(y) if self.fused is not None else self.batch_norm(self.out_conv2(y))
        y = self.out_conv3(self.activation(y))
        return F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)


class FineFusion(nn.Module):
    """HF's ``refinement_layer``: the FPN that turns cross-attended coarse features and backbone stages 2 and 1 into
    the full-resolution fine feature map."""

    def __init__(self, cfg: EfficientLoFTRConfig):
        super().__init__()
        dims = cfg.fine_fusion_dims
        self.out_conv = nn.Conv2d(dims[0], dims[0], 1, bias=False)
        self.out_conv_layers = nn.ModuleList(OutConvBlock(cfg, dims[i], dims[i - 1]) for i in range(1, len(dims)))

    def forward(self, coarse: Tensor, residuals: List[Tensor]) -> Tensor:
        y = F.interpolate(self.out_conv(coarse), scale_factor=2.0, mode="bilinear", align_corners=False)
        for layer, residual in zip(self.out_conv_layers, residuals):
            y = layer(y, residual)
        return y


class EfficientLoFTR(nn.Module):
    """The whole matcher for one input size.

    ``forward(pixels)`` takes uint8 gray pairs (B, 2, 1, H, W) and returns pair-slot outputs: ``matches`` int64
    (B, 2, N) (row 0: slot n's image-1 cell or −1; row 1: n where matched, else −1), ``matching_scores`` float
    (B, 2, N) (both rows the slot's score, 0 where unmatched) and ``keypoints`` float (B, 2, N, 2): the refined
    image-0 and image-1 points, normalised as (x / W, y / H) with x, y in pixel-index coordinates.
    With ``hf_compat`` the outputs are HF's rows instead (see the module docstring).
    """

    def __init__(self, cfg: EfficientLoFTRConfig, height_px: int, width_px: int, top_k: int = 0, hf_compat: bool = False):
        super().__init__()
        cfg.check_input_size(height_px, width_px)
        self.cfg = cfg
        self.height_px, self.width_px = height_px, width_px
        self.rows, self.cols = cfg.coarse_grid(height_px, width_px)
        self.cells = self.rows * self.cols
        self.top_k = self.cells if top_k <= 0 or top_k >= self.cells else top_k
        if hf_compat and self.top_k != self.cells:
            raise ValueError("--hf-compat refines every slot (HF's stage-1 softmax runs over all of them); drop --top-k")
        self.hf_compat = hf_compat
        self.export_boundaries = False
        self.efficientloftr = EfficientLoFTRCore(cfg)
        self.refinement_layer = FineFusion(cfg)
        for module in self.modules():
            if isinstance(module, AggregatedAttention):
                module.grid = (self.rows, self.cols)
        self._register_constants()

    # ----------------------------------------------------------------------------------------------------------------
    # Constants: rotary tables for this size, the border mask, window offsets.

    def _register_constants(self) -> None:
        cfg = self.cfg
        # HF: frequencies over head_dim × partial_rotary_factor channels; grid rows and columns counted from 1.
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.rope_dim, 2, dtype=torch.int64).float() / cfg.rope_dim))
        eh = (self.rows - cfg.q_aggregation_kernel_size) // cfg.q_aggregation_stride + 1
        ew = (self.cols - cfg.q_aggregation_kernel_size) // cfg.q_aggregation_stride + 1
        i = torch.ones(eh, ew).cumsum(0).unsqueeze(-1)
        j = torch.ones(eh, ew).cumsum(1).unsqueeze(-1)
        emb = torch.zeros(eh, ew, cfg.hidden_size // 2)
        emb[:, :, 0::2] = i * inv_freq
        emb[:, :, 1::2] = j * inv_freq
        emb = emb.reshape(eh * ew, cfg.hidden_size // 2)
        self.register_buffer("rope_cos", emb.cos().repeat_interleave(2, dim=-1), persistent=False)
        self.register_buffer("rope_sin", emb.sin().repeat_interleave(2, dim=-1), persistent=False)

        b = cfg.coarse_matching_border_removal
        r = torch.arange(self.rows).reshape(-1, 1).expand(self.rows, self.cols)
        c = torch.arange(self.cols).reshape(1, -1).expand(self.rows, self.cols)
        inside = (r >= b) & (r < self.rows - b) & (c >= b) & (c < self.cols - b)
        self.register_buffer("inside_border", inside.reshape(-1), persistent=False)

        k = cfg.fine_kernel_size
        p = torch.arange(k * k)
        # Window position p = row·k + col sits (col − (k/2 − 0.5), row − (k/2 − 0.5)) px from the cell's point.
        self.register_buffer("window_offsets", torch.stack([(p % k).float(), (p // k).float()], -1) - (k // 2) + 0.5, persistent=False)
        # Window pixel rows and columns relative to the cell's top-left pixel: image 0 reads k×k, image 1 (k+2)² starting
        # one pixel up-left (HF's unfold with padding 1; outside the map reads 0).
        self.register_buffer("window_positions", p.long(), persistent=False)
        self.register_buffer("window0_dy", (p // k).long(), persistent=False)
        self.register_buffer("window0_dx", (p % k).long(), persistent=False)
        q = torch.arange((k + 2) ** 2)
        self.register_buffer("window1_dy", (q // (k + 2) - 1).long(), persistent=False)
        self.register_buffer("window1_dx", (q % (k + 2) - 1).long(), persistent=False)
        d = torch.tensor([-1, 0, 1])
        self.register_buffer("neighbour_dy", d.reshape(3, 1).expand(3, 3).reshape(-1), persistent=False)
        self.register_buffer("neighbour_dx", d.reshape(1, 3).expand(3, 3).reshape(-1), persistent=False)
        self.register_buffer("neighbour_grid", torch.stack([self.neighbour_dx.float(), self.neighbour_dy.float()], -1), persistent=False)

    # ----------------------------------------------------------------------------------------------------------------
    # The stages, each usable on its own (tests compare them with HF's intermediates).

    def backbone(self, images: Tensor) -> List[Tensor]:
        """(2B, 1, H, W) in [0, 1] → [stage1 (1/2), stage2 (1/4), stage3 (1/8)]."""
        return self.efficientloftr.backbone(images)

    def transformer(self, coarse: Tensor) -> Tensor:
        """(2B, C, h, w) image-major → the same after every self- and cross-attention layer."""
        return self.after_first_self_attention(self.first_self_attention(coarse))

    def first_self_attention(self, coarse: Tensor) -> Tensor:
        """Layer 0's self-attention: the last step that depends on one frame only (the stream encoder's end)."""
        return self.efficientloftr.local_feature_transformer.layers[0].self_part(coarse, (self.rope_cos, self.rope_sin))

    def after_first_self_attention(self, coarse: Tensor) -> Tensor:
        """Layer 0's cross-attention and every later layer: pair-dependent."""
        rope = (self.rope_cos, self.rope_sin)
        layers = self.efficientloftr.local_feature_transformer.layers
        coarse = layers[0].cross_part(coarse)
        for layer in layers[1:]:
            coarse = layer.cross_part(layer.self_part(coarse, rope))
        return coarse

    def encode(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """What a stream can compute once per frame: (F, 1, H, W) in [0, 1] → backbone stages 1 and 2 (the fine
        fusion's residuals) and the coarse features after layer 0's self-attention."""
        stage1, stage2, stage3 = self.backbone(images)
        return stage1, stage2, self.first_self_attention(stage3)

    def coarse_confidence(self, coarse: Tensor) -> Tensor:
        """(2B, C, h, w) transformer output → dual-softmax confidence (B, N, N): [b, image-0 cell, image-1 cell]."""
        c = self.cfg.hidden_size
        f = coarse.reshape(-1, 2, c, self.cells).transpose(2, 3) / math.sqrt(c)
        similarity = torch.matmul(f[:, 0], f[:, 1].transpose(1, 2)) / self.cfg.coarse_matching_temperature
        if self.cfg.coarse_matching_skip_softmax:
            return similarity
        return torch.softmax(similarity, 1) * torch.softmax(similarity, 2)

    def mutual_matches(self, confidence: Tensor) -> Tuple[Tensor, Tensor]:
        """Per image-0 cell: its image-1 cell (−1 for none) and score, where the pair is above the threshold, off the
        border in both images, and each other's best (HF's mask, read row-wise). (B, N) int64 and float."""
        # Indexing [..., 0] rather than squeeze: a traced squeeze of a dynamic dimension exports as an If node.
        best, partner = torch.topk(confidence, 1, dim=2)
        best, partner = best[..., 0], partner[..., 0]
        column_best = torch.amax(confidence, dim=1)
        partner_column_best = torch.gather(column_best, 1, partner)
        valid = (best > self.cfg.coarse_matching_threshold) & (best == partner_column_best)
        valid = valid & self.inside_border.reshape(1, -1) & self.inside_border[partner]
        score = torch.where(valid, best, torch.zeros_like(best))
        partner = torch.where(valid, partner, torch.full_like(partner, -1))
        return partner, score

    def fine_feature_map(self, coarse: Tensor, stage1: Tensor, stage2: Tensor) -> Tensor:
        """(2B, Cf, H, W): the FPN over the cross-attended coarse features (scaled by 1/√C first, as HF) and stages 2, 1."""
        return self.refinement_layer(coarse / math.sqrt(self.cfg.hidden_size), [stage2, stage1])

    def cell_points(self, cells: Tensor) -> Tensor:
        """Cell indices (any shape, ≥ 0) → their points in pixels: (col, row) × coarse stride, as HF's coarse keypoints."""
        s = float(self.cfg.coarse_stride_px)
        return torch.stack([(cells % self.cols).float() * s, (cells // self.cols).float() * s], dim=-1)

    def windows(self, fine: Tensor, slots: Tensor, partners: Tensor, count: int) -> Tuple[Tensor, Tensor]:
        """Fine windows for chosen slots: image 0's k×k window of cell ``slots`` and image 1's (k+2)² window (zero
        padding at the map's edge) of cell ``partners`` (both (B, count), ≥ 0). → (B, count, k², Cf), (B, count, (k+2)², Cf).
        Sizes other than the batch come from Python ints, so the traced graph keeps them static."""
        cf = self.cfg.fine_width
        k = self.cfg.fine_kernel_size
        height, width = self.height_px, self.width_px
        # One channels-last copy of the map, then row gathers; no padded copy: outside pixels are masked to 0.
        flat = fine.permute(0, 2, 3, 1).reshape(-1, cf)
        batch = torch.arange(slots.shape[0], device=slots.device).reshape(-1, 1, 1)  # dynamic: the batch
        top0, left0 = ((slots // self.cols) * k).unsqueeze(-1), ((slots % self.cols) * k).unsqueeze(-1)
        top1, left1 = ((partners // self.cols) * k).unsqueeze(-1), ((partners % self.cols) * k).unsqueeze(-1)
        index0 = (2 * batch) * (height * width) + (top0 + self.window0_dy) * width + left0 + self.window0_dx
        rows1, cols1 = top1 + self.window1_dy, left1 + self.window1_dx
        inside = (rows1 >= 0) & (rows1 < height) & (cols1 >= 0) & (cols1 < width)
        index1 = (2 * batch + 1) * (height * width) + torch.clamp(rows1, 0, height - 1) * width + torch.clamp(cols1, 0, width - 1)
        w0 = torch.index_select(flat, 0, index0.reshape(-1)).reshape(-1, count, k * k, cf)
        w1 = torch.index_select(flat, 0, index1.reshape(-1)).reshape(-1, count, (k + 2) ** 2, cf)
        return w0, w1 * inside.reshape(-1, count, (k + 2) ** 2, 1).to(w1.dtype)

    def refine(self, w0: Tensor, w1: Tensor, cells0: Tensor, cells1: Tensor, count: int) -> Dict[str, Tensor]:
        """The original two-stage refinement of matches (cells0[b, m], cells1[b, m]) from their windows.
        → ``points0``, ``points1`` (B, M, 2) in pixels, and the stage-1 window indices ``index0``, ``index1``."""
        cfg = self.cfg
        k = cfg.fine_kernel_size
        cf = cfg.fine_width
        split = cf - cfg.fine_matching_slice_dim
        a = w0[..., :split] / math.sqrt(cf)
        b = w1[..., :split] / math.sqrt(cf)
        confidence = torch.matmul(a, b.transpose(-1, -2))
        confidence = torch.softmax(confidence, -2) * torch.softmax(confidence, -1)
        inner = confidence.reshape(-1, count, k * k, k + 2, k + 2)[..., 1:-1, 1:-1].reshape(-1, count, k ** 4)
        _, best = torch.topk(inner, 1, dim=-1)
        index0, index1 = best // (k * k), best % (k * k)
        # The fine map has the input's resolution, so a window step is one pixel (HF's fine_scale).
        scale = 1.0
        points0 = self.cell_points(cells0) + self.window_offsets[index0[..., 0]] * scale
        points1 = self.cell_points(cells1) + self.window_offsets[index1[..., 0]] * scale

        # Stage 2, image 1 only: the 3×3 neighbourhood of (row, col) of index1 read in the (k+2)² window's own frame
        # (one pixel up-left of the match, index −1 wrapping to k+1, as the trained code reads it).
        a2 = self._row(w0[..., split:], index0)
        b2 = w1[..., split:] / math.sqrt(cfg.fine_matching_slice_dim)
        logits_row = torch.matmul(a2, b2.transpose(-1, -2))[:, :, 0]
        rows = (index1 // k + self.neighbour_dy) % (k + 2)
        cols = (index1 % k + self.neighbour_dx) % (k + 2)
        logits = torch.gather(logits_row, 2, rows * (k + 2) + cols)
        heat = torch.softmax(logits / cfg.fine_matching_regress_temperature, dim=-1)
        expectation = torch.matmul(heat, self.neighbour_grid)
        points1 = points1 + expectation * (3 // 2) * scale
        return {"points0": points0, "points1": points1, "index0": index0, "index1": index1}

    def _row(self, windows: Tensor, index: Tensor) -> Tensor:
        """Row ``index`` (B, M, 1) of ``windows`` (B, M, k², C) → (B, M, 1, C), as a product with a one-hot row: exact,
        and with static shapes (a gather with an expanded index exports a shape ONNX inference cannot follow)."""
        one_hot = (self.window_positions == index).to(windows.dtype).unsqueeze(2)
        return torch.matmul(one_hot, windows)

    # ----------------------------------------------------------------------------------------------------------------

    def features(self, images: Tensor) -> Dict[str, Tensor]:
        """Everything up to the coarse confidence for (2B, 1, H, W) images in [0, 1]."""
        stage1, stage2, stage3 = self.backbone(images)
        coarse0 = self.first_self_attention(stage3)
        return {"stage1": stage1, "stage2": stage2, "stage3": stage3, "coarse0": coarse0, "coarse": self.after_first_self_attention(coarse0)}

    def match(self, images: Tensor, capture: Optional[Dict[str, Tensor]] = None) -> Tuple[Tensor, Tensor, Tensor]:
        f = self.features(images)
        if capture is not None:
            capture.update(f)
        return self.pair_stage(f["stage1"], f["stage2"], f["coarse0"], capture, coarse=f["coarse"])

    def pair_stage(self, stage1: Tensor, stage2: Tensor, coarse0: Tensor, capture: Optional[Dict[str, Tensor]] = None,
                   coarse: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """From per-frame features of both images of each pair (image-major 2B) to the outputs."""
        if coarse is None:
            coarse = self.after_first_self_attention(coarse0)
        confidence = self.coarse_confidence(coarse)
        partner, score = self.mutual_matches(confidence)
        fine = self.fine_feature_map(coarse, stage1, stage2)
        if capture is not None:
            capture.update(coarse=coarse, confidence=confidence, partner=partner, score=score, fine=fine)
        if self.hf_compat:
            return self._hf_fine_stage(fine, partner, score, confidence, capture)
        return self._pair_slot_fine_stage(fine, partner, score, capture)

    def _pair_slot_fine_stage(self, fine: Tensor, partner: Tensor, score: Tensor, capture: Optional[Dict[str, Tensor]]) -> Tuple[Tensor, Tensor, Tensor]:
        batch = partner.shape[0]
        if self.top_k == self.cells:
            # zeros_like + arange rather than expand: the traced shape stays (batch, N) for ONNX shape inference.
            slots = torch.zeros_like(partner) + torch.arange(self.cells, device=partner.device)
            chosen_partner, chosen_score = partner, score
        else:
            # Valid slots score above the threshold, unmatched ones 0: the K best are the K highest scores.
            chosen_score, slots = torch.topk(score, self.top_k, dim=1)
            chosen_partner = torch.gather(partner, 1, slots)
        cells1 = torch.clamp(chosen_partner, min=0)
        w0, w1 = self.windows(fine, slots, cells1, self.top_k)
        refined = self.refine(w0, w1, slots, cells1, self.top_k)
        if capture is not None:
            capture.update(slots=slots, windows0=w0, windows1=w1, **refined)
        valid = chosen_partner >= 0
        keypoints = torch.stack([refined["points0"], refined["points1"]], dim=1)
        keypoints = keypoints / torch.tensor([float(self.width_px), float(self.height_px)], device=keypoints.device)
        row0 = torch.where(valid, chosen_partner, torch.full_like(chosen_partner, -1))
        row1 = torch.where(valid, slots, torch.full_like(slots, -1))
        matches = torch.stack([row0, row1], dim=1)
        scores = torch.stack([chosen_score, chosen_score], dim=1)
        if self.top_k != self.cells:
            # Back into slot order: slot n = image-0 cell n; slots not refined are unmatched.
            index = slots.unsqueeze(1).expand(-1, 2, -1)
            matches = torch.full((batch, 2, self.cells), -1, dtype=matches.dtype, device=matches.device).scatter(2, index, matches)
            scores = torch.zeros((batch, 2, self.cells), dtype=scores.dtype, device=scores.device).scatter(2, index, scores)
            keypoints = torch.zeros((batch, 2, self.cells, 2), dtype=keypoints.dtype, device=keypoints.device).scatter(
                2, index.unsqueeze(-1).expand(-1, -1, -1, 2), keypoints)
        return matches, scores, keypoints

    def _hf_fine_stage(self, fine: Tensor, partner: Tensor, score: Tensor, confidence: Tensor,
                       capture: Optional[Dict[str, Tensor]]) -> Tuple[Tensor, Tensor, Tensor]:
        """HF's fine stage, defects included, on HF's rows (with each pair's own coarse rows: HF's batch mixing is a
        coarse-matching defect and is not reproduced)."""
        cfg = self.cfg
        k = cfg.fine_kernel_size
        batch, n = partner.shape
        # HF row 0, slot j: the image-0 cell matched to image-1 cell j; row 1, slot i: the image-1 cell of image-0 cell i.
        valid = partner >= 0
        target = torch.where(valid, partner, torch.full_like(partner, n))
        cells = torch.zeros_like(partner) + torch.arange(n, device=partner.device)
        row0 = torch.full((batch, n + 1), -1, dtype=partner.dtype, device=partner.device).scatter(1, target, cells)[:, :n]
        score0 = torch.zeros((batch, n + 1), dtype=score.dtype, device=score.device).scatter(1, target, score)[:, :n]
        hf_matches = torch.stack([row0, partner], dim=1)
        hf_scores = torch.stack([score0, score], dim=1)
        # Index −1 reads the last cell's window (Python indexing) and the point ((w − 1)·s, −s).
        w0, w1 = self.windows(fine, row0 % n, partner % n, n)
        s = float(cfg.coarse_stride_px)
        coarse_points = torch.stack([
            torch.where(hf_matches < 0, torch.full_like(hf_matches, self.cols - 1), hf_matches % self.cols).float() * s,
            torch.where(hf_matches < 0, torch.full_like(hf_matches, -1), torch.clamp(hf_matches, min=0) // self.cols).float() * s,
        ], dim=-1)
        cf = cfg.fine_width
        split = cf - cfg.fine_matching_slice_dim
        a = w0[..., :split] / math.sqrt(split)
        b = w1[..., :split] / math.sqrt(split)
        confidence1 = torch.matmul(a, b.transpose(-1, -2))
        confidence1 = torch.softmax(confidence1, 1) * torch.softmax(confidence1, 2)
        inner = confidence1.reshape(-1, n, k * k, k + 2, k + 2)[..., 1:-1, 1:-1].reshape(-1, n, k ** 4)
        _, best = torch.topk(inner, 1, dim=-1)
        index0, index1 = best // (k * k), best % (k * k)
        constant = self.window_offsets[0]
        points0 = coarse_points[:, 0] + constant
        points1 = coarse_points[:, 1] + constant
        b2 = w1[..., split:] / math.sqrt(cfg.fine_matching_slice_dim)
        a2 = self._row(w0[..., split:], index0)
        logits_row = torch.matmul(a2, b2.transpose(-1, -2))[:, :, 0]
        rows = (index1 // k + self.neighbour_dy) % (k + 2)
        cols = (index1 % k + self.neighbour_dx) % (k + 2)
        logits = torch.gather(logits_row, 2, rows * (k + 2) + cols)
        heat = torch.softmax(logits / cfg.fine_matching_regress_temperature, dim=-1)
        expectation = torch.matmul(heat, self.neighbour_grid)
        points1 = points1 + expectation[0:1]
        keypoints = torch.stack([points0, points1], dim=1)
        if capture is not None:
            capture.update(hf_windows0=w0, hf_windows1=w1, hf_index0=index0, hf_index1=index1, hf_coarse_points=coarse_points,
                           hf_stage1_points=torch.stack([points0, coarse_points[:, 1] + constant], dim=1), hf_stage2_points=keypoints)
        keypoints = keypoints / torch.tensor([float(self.width_px), float(self.height_px)], device=keypoints.device)
        return hf_matches, hf_scores, keypoints

    def forward(self, pixels: Tensor):
        """(B, 2, 1, H, W) uint8 → matches, matching_scores, keypoints (see the class docstring). With
        ``export_boundaries`` set (the fp16 export only) also the scaled images, the cross-attended coarse features and
        the fine feature map: the ends of the part that runs in fp16."""
        images = pixels.reshape(-1, 1, self.height_px, self.width_px).float() / 255.0
        if not self.export_boundaries:
            return self.match(images)
        capture: Dict[str, Tensor] = {}
        outputs = self.match(images, capture)
        return outputs + (images, capture["coarse"], capture["fine"])

    def forward_float(self, pixel_values: Tensor, capture: Optional[Dict[str, Tensor]] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """HF's input: float (B, 2, C, H, W) in [0, 1]; channel 0 is used, as HF does."""
        images = pixel_values[:, :, 0:1].reshape(-1, 1, self.height_px, self.width_px)
        return self.match(images, capture)


class FrameEncoder(nn.Module):
    """The stream split's first half: uint8 frames (F, 1, H, W) → ``stage1``, ``stage2``, ``coarse0``."""

    def __init__(self, model: EfficientLoFTR):
        super().__init__()
        self.model = model

    def forward(self, frames: Tensor):
        """With the model's ``export_boundaries`` set (the fp16 export only) also the scaled frames: where the part
        that runs in fp16 starts."""
        images = frames.float() / 255.0
        features = self.model.encode(images)
        return features + (images,) if self.model.export_boundaries else features


class PairMatcher(nn.Module):
    """The stream split's second half: a bank of per-frame features (S slots) and the (B, 2) slot numbers of each
    pair's two frames → the pair-slot outputs. The rows are gathered inside the graph, so the bank stays where it is."""

    def __init__(self, model: EfficientLoFTR):
        super().__init__()
        self.model = model

    def forward(self, bank_stage1: Tensor, bank_stage2: Tensor, bank_coarse0: Tensor, pairs: Tensor):
        """With the model's ``export_boundaries`` set (the fp16 export only) also the gathered features, the
        cross-attended coarse features and the fine map: the ends of the part that runs in fp16."""
        rows = pairs.reshape(-1)
        gathered = (torch.index_select(bank_stage1, 0, rows), torch.index_select(bank_stage2, 0, rows), torch.index_select(bank_coarse0, 0, rows))
        if not self.model.export_boundaries:
            return self.model.pair_stage(*gathered)
        capture: Dict[str, Tensor] = {}
        outputs = self.model.pair_stage(*gathered, capture=capture)
        return outputs + gathered + (capture["coarse"], capture["fine"])
