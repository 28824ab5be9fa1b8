"""An EfficientLoFTR ``config.json`` as Hugging Face writes it, checked, with the sizes derived the way HF's
``EfficientLoFTRConfig`` derives them when a file leaves them out."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

# Keys every Hugging Face config may carry that say nothing about the architecture.
_GENERIC = {
    "architectures", "dtype", "torch_dtype", "model_type", "transformers_version", "initializer_range", "_name_or_path",
    "id2label", "label2id", "return_dict", "output_hidden_states", "output_attentions", "use_cache", "is_encoder_decoder",
    "problem_type", "tie_word_embeddings", "chunk_size_feed_forward", "pruned_heads", "torchscript", "attention_dropout",
    "rope_scaling", "embedding_size",
}
_ACTIVATIONS = {"relu", "leaky_relu", "gelu", "silu"}


class ConfigError(ValueError):
    """The configuration cannot describe an EfficientLoFTR this exporter builds; the message names the key."""


@dataclass(frozen=True)
class EfficientLoFTRConfig:
    """The architecture. Field names are Hugging Face's; sizes in channels, cells or pixels as named."""

    stage_num_blocks: List[int]
    out_features: List[int]
    stage_stride: List[int]
    hidden_size: int
    activation_function: str
    q_aggregation_kernel_size: int
    kv_aggregation_kernel_size: int
    q_aggregation_stride: int
    kv_aggregation_stride: int
    num_attention_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    attention_bias: bool
    intermediate_size: int
    mlp_activation_function: str
    coarse_matching_skip_softmax: bool
    coarse_matching_threshold: float
    coarse_matching_temperature: float
    coarse_matching_border_removal: int
    fine_kernel_size: int
    batch_norm_eps: float
    rope_theta: float
    partial_rotary_factor: float
    fine_fusion_dims: List[int]
    fine_matching_slice_dim: int
    fine_matching_regress_temperature: float
    stage_in_channels: List[int] = field(default_factory=list)
    stage_block_stride: List[List[int]] = field(default_factory=list)
    stage_block_in_channels: List[List[int]] = field(default_factory=list)
    stage_block_out_channels: List[List[int]] = field(default_factory=list)
    sha256: str = ""

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def rope_dim(self) -> int:
        """Channels of each head the rotary frequencies are computed for (HF: head_dim × partial_rotary_factor)."""
        return int(self.head_dim * self.partial_rotary_factor)

    @property
    def coarse_stride_px(self) -> int:
        """Input pixels per coarse cell: the product of the stage strides (8 for every published config)."""
        stride = 1
        for s in self.stage_stride:
            stride *= s
        return stride

    @property
    def fine_width(self) -> int:
        """Channels of the full-resolution fine feature map (the last fine-fusion width)."""
        return self.fine_fusion_dims[-1]

    def coarse_grid(self, height_px: int, width_px: int) -> Tuple[int, int]:
        return height_px // self.coarse_stride_px, width_px // self.coarse_stride_px

    def check_input_size(self, height_px: int, width_px: int) -> None:
        """Input sizes the model takes: multiples of 32 (the attention grid is 1/32 of the input)."""
        unit = self.coarse_stride_px * self.q_aggregation_stride
        if height_px <= 0 or width_px <= 0 or height_px % unit or width_px % unit:
            raise ConfigError(f"--height and --width must be positive multiples of {unit} (coarse stride {self.coarse_stride_px} "
                              f"× attention aggregation {self.q_aggregation_stride}); got {height_px}×{width_px}")
        rows, cols = self.coarse_grid(height_px, width_px)
        if rows <= 2 * self.coarse_matching_border_removal or cols <= 2 * self.coarse_matching_border_removal:
            raise ConfigError(f"{height_px}×{width_px} leaves no coarse cell inside the {self.coarse_matching_border_removal}-cell border")


def _number(raw: Dict[str, Any], key: str, default: Any, kind: type) -> Any:
    value = raw.get(key, default)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"config key {key!r} must be a whole number, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
    return kind(value)


def _int_list(raw: Dict[str, Any], key: str, default: List[int]) -> List[int]:
    value = raw.get(key, default)
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ConfigError(f"config key {key!r} must be a list of positive whole numbers, got {value!r}")
    return list(value)


def from_dict(raw: Dict[str, Any], source: str = "config.json") -> EfficientLoFTRConfig:
    """Checks ``raw`` (a parsed config.json) and fills what HF derives. Unknown architecture keys stop the export."""
    if raw.get("model_type", "efficientloftr") != "efficientloftr":
        raise ConfigError(f"{source}: model_type is {raw.get('model_type')!r}; this exporter reads EfficientLoFTR checkpoints (model_type 'efficientloftr')")
    rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", "default")
    if rope_type != "default":
        raise ConfigError(f"{source}: rope_parameters.rope_type {rope_type!r} is not supported (only 'default')")
    cfg = dict(
        stage_num_blocks=_int_list(raw, "stage_num_blocks", [1, 2, 4, 14]),
        out_features=_int_list(raw, "out_features", [64, 64, 128, 256]),
        stage_stride=_int_list(raw, "stage_stride", [2, 1, 2, 2]),
        hidden_size=_number(raw, "hidden_size", 256, int),
        activation_function=raw.get("activation_function", "relu"),
        q_aggregation_kernel_size=_number(raw, "q_aggregation_kernel_size", 4, int),
        kv_aggregation_kernel_size=_number(raw, "kv_aggregation_kernel_size", 4, int),
        q_aggregation_stride=_number(raw, "q_aggregation_stride", 4, int),
        kv_aggregation_stride=_number(raw, "kv_aggregation_stride", 4, int),
        num_attention_layers=_number(raw, "num_attention_layers", 4, int),
        num_attention_heads=_number(raw, "num_attention_heads", 8, int),
        num_key_value_heads=_number(raw, "num_key_value_heads", raw.get("num_attention_heads", 8), int),
        attention_bias=_number(raw, "attention_bias", False, bool),
        intermediate_size=_number(raw, "intermediate_size", 512, int),
        mlp_activation_function=raw.get("mlp_activation_function", "leaky_relu"),
        coarse_matching_skip_softmax=_number(raw, "coarse_matching_skip_softmax", False, bool),
        coarse_matching_threshold=_number(raw, "coarse_matching_threshold", 0.2, float),
        coarse_matching_temperature=_number(raw, "coarse_matching_temperature", 0.1, float),
        coarse_matching_border_removal=_number(raw, "coarse_matching_border_removal", 2, int),
        fine_kernel_size=_number(raw, "fine_kernel_size", 8, int),
        batch_norm_eps=_number(raw, "batch_norm_eps", 1e-5, float),
        rope_theta=float(rope.get("rope_theta", raw.get("rope_theta", 10000.0))),
        partial_rotary_factor=_number(raw, "partial_rotary_factor", 4.0, float),
        fine_fusion_dims=_int_list(raw, "fine_fusion_dims", list(reversed(raw.get("out_features", [64, 64, 128, 256])))[:-1]),
        fine_matching_slice_dim=_number(raw, "fine_matching_slice_dim", 8, int),
        fine_matching_regress_temperature=_number(raw, "fine_matching_regress_temperature", 10.0, float),
    )
    known = set(cfg) | {"rope_parameters", "rope_theta", "stage_in_channels", "stage_block_stride", "stage_block_in_channels",
                        "stage_block_out_channels"} | _GENERIC
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown architecture keys {unknown}; this exporter would ignore them and build a different "
                          "model. Export with the config the checkpoint was trained with.")
    blocks, outs, strides = cfg["stage_num_blocks"], cfg["out_features"], cfg["stage_stride"]
    if not len(blocks) == len(outs) == len(strides) == 4:
        raise ConfigError(f"{source}: stage_num_blocks, out_features and stage_stride must each list 4 stages "
                          f"(got {len(blocks)}, {len(outs)}, {len(strides)})")
    derived = dict(
        stage_in_channels=[1] + outs[:-1],
        stage_block_stride=[[s] + [1] * (n - 1) for s, n in zip(strides, blocks)],
        stage_block_in_channels=[[c] + [o] * (n - 1) for c, o, n in zip([1] + outs[:-1], outs, blocks)],
        stage_block_out_channels=[[o] * n for o, n in zip(outs, blocks)],
    )
    for key, value in derived.items():
        if key in raw and raw[key] != value:
            raise ConfigError(f"{source}: {key} is {raw[key]} but stage_num_blocks/out_features/stage_stride give {value}")
    cfg.update(derived)
    for key in ("activation_function", "mlp_activation_function"):
        if cfg[key] not in _ACTIVATIONS:
            raise ConfigError(f"{source}: {key} {cfg[key]!r} is not one of {sorted(_ACTIVATIONS)}")
    if cfg["hidden_size"] != outs[-1]:
        raise ConfigError(f"{source}: hidden_size {cfg['hidden_size']} must equal the last out_features {outs[-1]}")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise ConfigError(f"{source}: hidden_size {cfg['hidden_size']} is not divisible by num_attention_heads {cfg['num_attention_heads']}")
    if cfg["num_key_value_heads"] != cfg["num_attention_heads"]:
        raise ConfigError(f"{source}: num_key_value_heads {cfg['num_key_value_heads']} differs from num_attention_heads; HF's "
                          "rotary layout only works with equal counts, and so does this exporter")
    rope_dim = int(cfg["hidden_size"] // cfg["num_attention_heads"] * cfg["partial_rotary_factor"])
    if rope_dim * 2 != cfg["hidden_size"] or rope_dim % 2:
        raise ConfigError(f"{source}: HF's 2-D rotary embedding needs head_dim × partial_rotary_factor = hidden_size / 2 "
                          f"(got {rope_dim} for hidden_size {cfg['hidden_size']}); with 8 heads and factor 4 it fits")
    if cfg["fine_fusion_dims"][0] != cfg["hidden_size"] or len(cfg["fine_fusion_dims"]) != 3:
        raise ConfigError(f"{source}: fine_fusion_dims must be 3 widths starting with hidden_size, got {cfg['fine_fusion_dims']}")
    if cfg["fine_fusion_dims"][1:] != [outs[2], outs[1]]:
        raise ConfigError(f"{source}: fine_fusion_dims {cfg['fine_fusion_dims']} must end with the stage-2 and stage-1 widths {[outs[2], outs[1]]}")
    if not 0 < cfg["fine_matching_slice_dim"] < cfg["fine_fusion_dims"][-1]:
        raise ConfigError(f"{source}: fine_matching_slice_dim {cfg['fine_matching_slice_dim']} must be below the fine width {cfg['fine_fusion_dims'][-1]}")
    if cfg["q_aggregation_kernel_size"] != cfg["q_aggregation_stride"] or cfg["kv_aggregation_kernel_size"] != cfg["kv_aggregation_stride"] \
            or cfg["q_aggregation_stride"] != cfg["kv_aggregation_stride"]:
        raise ConfigError(f"{source}: aggregation kernels must equal their strides and each other (HF upsamples by the kernel size)")
    coarse = 1
    for s in strides:
        coarse *= s
    if cfg["fine_kernel_size"] != coarse:
        raise ConfigError(f"{source}: fine_kernel_size {cfg['fine_kernel_size']} must equal the coarse stride {coarse}")
    canonical = json.dumps({k: raw[k] for k in sorted(raw) if k not in _GENERIC}, sort_keys=True, separators=(",", ":"))
    return EfficientLoFTRConfig(sha256=hashlib.sha256(canonical.encode("utf-8")).hexdigest(), **cfg)


def load(path: str) -> EfficientLoFTRConfig:
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError as error:
        raise ConfigError(f"{path} does not exist") from error
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not JSON: {error}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} holds {type(raw).__name__}, not a JSON object")
    return from_dict(raw, path)
