"""SegGPT model configuration and presets.

Every size the architecture depends on is a field here, so that a small model for tests or for
CPU training is the same code as the official ViT-L with other numbers. A config checks its own
fields when it is made (`FIELDS`, then how the sizes fit together), so every place that reads one
(a weights file, a transformers config.json, a training setting) refuses the same values with the
same words, before a model is built from it.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from .errors import is_integer

#: each field's kind and bounds: generous (no real model comes near them), so that a damaged or hostile
#: config (``depth: 999`` built a 999-block model for a minute before failing) is refused before any model
FIELDS: Dict[str, Tuple[str, float, float]] = {
    "image_size": ("pair", 1, 8192),
    "patch_size": ("int", 1, 256),
    "embed_dim": ("int", 1, 16384),
    "depth": ("int", 1, 512),
    "num_heads": ("int", 1, 1024),
    "mlp_ratio": ("float", 0.01, 64),
    "qkv_bias": ("bool", 0, 1),
    "layer_norm_eps": ("float", 0.0, 1.0),
    "merge_index": ("int", 0, 511),
    "feature_layers": ("list", 0, 511),
    "decoder_dim": ("int", 1, 8192),
    "pretrain_image_size": ("int", 1, 8192),
    "loss_beta": ("float", 0.0, 1e6),
    "drop_path_rate": ("float", 0.0, 1.0),
}


def field_problem(name: str, value: object) -> Optional[str]:
    """What `value` should have been for the field `name` ("an integer from 1 to 512"), or None if it is fine.

    Shared by the config itself and by readers of other formats (a transformers config.json), which
    name the value by their own key.
    """
    kind, lo, hi = FIELDS[name]
    if kind == "bool":
        return None if isinstance(value, bool) else "true or false"
    if kind == "float":
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return None if number and math.isfinite(value) and lo <= value <= hi else f"a number from {lo:g} to {hi:g}"
    if kind == "int":
        return None if is_integer(value) and lo <= value <= hi else f"an integer from {lo:g} to {hi:g}"
    if not isinstance(value, (list, tuple)) or (kind == "pair" and len(value) != 2) or not value:
        return "a list of 2 integers" if kind == "pair" else "a non-empty list of integers"
    return None if all(is_integer(v) and lo <= v <= hi for v in value) else f"integers from {lo:g} to {hi:g}"


@dataclass(frozen=True)
class SegGPTConfig:
    """Sizes of a SegGPT model.

    `image_size` is the size of ONE half of the canvas (prompt or query), (H, W); the model sees a
    canvas of (2H, W) with the prompt on top and the query below.
    """

    image_size: Tuple[int, int] = (448, 448)
    patch_size: int = 16
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    #: after this block the image stream and the mask stream are averaged into one
    merge_index: int = 2
    #: blocks whose (normed) outputs feed the decoder, concatenated along channels
    feature_layers: Tuple[int, ...] = (5, 11, 17, 23)
    decoder_dim: int = 64
    #: the absolute position table is a (pretrain_size / patch)^2 grid plus a cls slot
    pretrain_image_size: int = 224
    loss_beta: float = 0.01
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        """ValueError, one line starting "model config", unless every field and how they fit is right."""
        for name in FIELDS:
            value = getattr(self, name)
            problem = field_problem(name, value)
            if problem:
                raise ValueError(f"model config {name} = {value!r}: expected {problem}")
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        object.__setattr__(self, "feature_layers", tuple(int(i) for i in self.feature_layers))
        h, w = self.image_size
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"model config image_size {self.image_size} is not a multiple of patch_size "
                             f"{self.patch_size}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"model config embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if max(self.feature_layers) >= self.depth:
            raise ValueError(f"model config feature_layers {self.feature_layers} must be block indices < depth "
                             f"{self.depth}")
        if not self.merge_index < min(self.feature_layers):
            raise ValueError(
                f"model config merge_index {self.merge_index} must be below the first feature layer "
                f"{min(self.feature_layers)} (decoder features are read after the streams are merged)"
            )

    @property
    def canvas_size(self) -> Tuple[int, int]:
        """(2H, W): prompt on top, query below."""
        return (2 * self.image_size[0], self.image_size[1])

    @property
    def grid_size(self) -> Tuple[int, int]:
        """Token grid of one half: (H / patch, W / patch)."""
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    def to_dict(self) -> Dict[str, Any]:
        return {**dataclasses.asdict(self), "image_size": list(self.image_size),
                "feature_layers": list(self.feature_layers)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SegGPTConfig":
        """A config from its fields (a file's JSON, a YAML mapping); ValueError naming an unknown key."""
        unknown = sorted(set(d) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown model config key(s) {', '.join(map(repr, unknown))} (known: {', '.join(FIELDS)})")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes: Any) -> "SegGPTConfig":
        return dataclasses.replace(self, **changes)

    def flops_per_query(self, num_prompts: int = 1, shared_query: bool = True) -> float:
        """FLOPs (2 per multiply-add) to segment one query with K prompts.

        shared_query=False counts the official computation (K full canvases, full decoder);
        True counts ours (query half once, decoder on the query half plus the seam row).
        """
        k = num_prompts
        grid_h, grid_w = self.grid_size
        n_half = grid_h * grid_w
        n = 2 * n_half
        c, p = self.embed_dim, self.patch_size
        per_token = 2 * (4 * c * c + 2 * c * self.mlp_dim)
        attention = k * 4 * n * n * c  # QK^T and AV over every canvas
        tokens = (k * n_half + n_half) if shared_query else k * n
        streams = [2 if i <= self.merge_index else 1 for i in range(self.depth)]
        encoder = sum(s * (tokens * per_token + attention) for s in streams)
        patch_tokens = (2 * k * n_half + n_half) if shared_query else 2 * k * n
        patch = patch_tokens * 2 * c * 3 * p * p
        dec_rows = (grid_h + 1) if shared_query else 2 * grid_h
        dec_items = 1 if shared_query else k
        dec_tokens = dec_items * dec_rows * grid_w
        dec_embed = dec_tokens * 2 * c * len(self.feature_layers) * p * p * self.decoder_dim
        dec_conv = dec_tokens * p * p * 2 * self.decoder_dim * (9 * self.decoder_dim + 3)
        return float(encoder + patch + dec_embed + dec_conv)


PRESETS: Dict[str, SegGPTConfig] = {
    # the released model (BAAI/SegGPT seggpt_vit_large.pth, BAAI/seggpt-vit-large)
    "vit-large": SegGPTConfig(),
    # a small model of our own: trains on 2 CPU cores in about an hour (configs/train_small.yaml;
    # 64x64 per image = 128 tokens per canvas), runs in real time on a laptop
    "small": SegGPTConfig(
        image_size=(64, 64), patch_size=8, embed_dim=128, depth=7, num_heads=4,
        merge_index=1, feature_layers=(2, 4, 6), decoder_dim=32, pretrain_image_size=64,
    ),
    # a larger model of our own, for a GPU training run (training/gpu.py, configs/train_gpu.yaml): the
    # small model's canvas, twice its width, one more block; 8.0M parameters (16 MB in fp16). On 2 CPU
    # cores 2.4x the small model's time per frame (3.4x its FLOPs): estimated 18-24 frames/s end to end
    # with one prompt (memory 0), 10-14 with two, 4-6.5 at the engine's default memory 8
    "medium": SegGPTConfig(
        image_size=(64, 64), patch_size=8, embed_dim=256, depth=8, num_heads=8,
        merge_index=1, feature_layers=(3, 5, 7), decoder_dim=32, pretrain_image_size=64,
    ),
    # tiny configurations for tests: fast, but every code path of the big model
    "test-tiny": SegGPTConfig(
        image_size=(64, 64), patch_size=8, embed_dim=32, depth=4, num_heads=2,
        merge_index=1, feature_layers=(2, 3), decoder_dim=8, pretrain_image_size=64,
    ),
    # official canvas (896x448, patch 16) with a narrow, shallow encoder: checks against transformers
    "test-canvas": SegGPTConfig(
        embed_dim=64, depth=5, num_heads=2, merge_index=2, feature_layers=(3, 4), decoder_dim=16,
    ),
}


def get_config(name_or_config: "str | SegGPTConfig | Dict[str, Any]") -> SegGPTConfig:
    """A preset by name, a config as it is, or a dict of fields."""
    if isinstance(name_or_config, SegGPTConfig):
        return name_or_config
    if isinstance(name_or_config, dict):
        return SegGPTConfig.from_dict(name_or_config)
    try:
        return PRESETS[name_or_config]
    except KeyError:
        raise ValueError(
            f"unknown SegGPT preset {name_or_config!r}; known: {', '.join(sorted(PRESETS))}"
        ) from None


__all__ = ["SegGPTConfig", "PRESETS", "get_config", "FIELDS", "field_problem"]
