"""The settings of one training run (:class:`TrainConfig`) and the one way they are read.

A run is described by a flat YAML file of :class:`TrainConfig` keys (``configs/train_*.yaml``),
overridable on the command line (``steps=2000 lr=1e-4``, values parsed as YAML). The shipped files
hold no paths: data roots (``davis_roots``, ``ytvos_roots``, ``folder_roots``) and ``out_dir`` come
from the command line, so the same file works in every checkout.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

__all__ = ["TrainError", "TrainConfig", "load_config", "data_config", "CURRICULUM_KEYS"]


class TrainError(ValueError):
    """A training configuration or checkpoint that cannot be used (one-line message)."""


@dataclass
class TrainConfig:
    """Every setting of a run; YAML keys and command-line overrides use these names."""

    # model
    model: Any = "small"  # a preset name or a dict of SegGPTConfig fields
    init_from: Optional[str] = None  # fine-tune: anything SegGPT.from_pretrained reads
    embedding_type: str = "instance"
    # run
    out_dir: str = "runs/train"
    seed: int = 0
    steps: int = 1000  # optimizer steps
    max_minutes: Optional[float] = None  # stop (and save) after this much wall time
    #: anneal by wall time too: the cosine reaches its end at max_minutes even if `steps` is not reached
    #: (for shared machines whose speed is unknown in advance; not bit-exact on resume)
    time_schedule: bool = False
    threads: Optional[int] = None  # torch intra-op threads (None: torch's default)
    num_workers: int = 1
    device: str = "auto"
    amp: str = "auto"  # auto (bf16 on CUDA if supported, else fp16; fp32 on CPU), bf16 (CPU too), fp16, off
    # optimisation
    batch_size: int = 16  # per micro-batch and rank
    accum_steps: int = 1
    lr: float = 3e-4
    min_lr_ratio: float = 0.01
    warmup_steps: int = 200
    weight_decay: float = 0.05
    betas: Tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    # data
    synthetic_weight: float = 1.0
    synthetic_size: Tuple[int, int] = (80, 144)
    synthetic_objects: Tuple[int, int] = (1, 3)
    synthetic_max_gap: int = 16
    davis_roots: List[str] = field(default_factory=list)
    davis_year: int = 2016
    davis_split: str = "train"
    davis_resolution: str = "480p"
    ytvos_roots: List[str] = field(default_factory=list)
    ytvos_split: str = "train"
    video_weight: float = 1.0
    video_max_gap: int = 10
    folder_roots: List[str] = field(default_factory=list)
    folder_weight: float = 1.0
    # augmentation and colours
    crop_scale: Tuple[float, float] = (0.5, 1.0)
    crop_ratio: Tuple[float, float] = (0.75, 1.333)
    same_crop_prob: float = 0.5
    hflip_prob: float = 0.5
    vflip_prob: float = 0.0
    jitter: float = 0.3
    min_color_distance: float = 80.0
    palette_prob: float = 0.0
    mix_context_prob: float = 0.0
    mix_context_n: int = 2
    #: share of samples whose hidden patches are a random `random_mask_ratio` of the whole mask
    #: canvas instead of the query half (official training mixes both; helps a model from scratch)
    random_mask_prob: float = 0.0
    random_mask_ratio: float = 0.75
    #: small objects' pixels weigh up to this many background pixels in the loss (1: the official plain mean)
    object_weight_max: float = 1.0
    #: data settings that change during the run, e.g. [{at_step: 4000, synthetic_max_gap: 8,
    #: same_crop_prob: 0.5}]: harder pairs once the model has learnt to copy masks at all
    curriculum: List[Dict[str, Any]] = field(default_factory=list)
    # evaluation, logging, checkpoints
    eval_every: int = 500
    eval_pairs: int = 64
    eval_clips: int = 2
    eval_clip_frames: int = 12
    eval_clip_size: Tuple[int, int] = (120, 216)
    eval_seed: int = 987654321
    log_every: int = 10
    ckpt_every: int = 250
    progress: bool = True

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


_TUPLE_KEYS = {f.name for f in dataclasses.fields(TrainConfig) if "Tuple" in str(f.type)}


def _parse_override(text: str, source: str) -> Tuple[str, Any]:
    if "=" not in text:
        raise TrainError(f"{source}: override {text!r} is not key=value")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise TrainError(f"{source}: override {text!r}: value is not YAML ({str(err).splitlines()[0]})") from None


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML file of TrainConfig keys and apply ``key=value`` overrides (values parsed as YAML)."""
    values: Dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise TrainError(f"{p}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise TrainError(f"{p}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise TrainError(f"{p}: the top level must be a mapping of settings")
        values.update(loaded)
    for text in overrides:
        key, value = _parse_override(text, "command line")
        values[key] = value
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    source = path or "command line"
    for key in values:
        if key not in known:
            raise TrainError(f"{source}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    for key in _TUPLE_KEYS & set(values):
        v = values[key]
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise TrainError(f"{source}: {key} must be a list of two numbers, got {v!r}")
        values[key] = tuple(v)
    for key in ("davis_roots", "ytvos_roots", "folder_roots"):
        if key in values:
            v = values[key] or []
            values[key] = [str(x) for x in (v if isinstance(v, list) else [v])]
    for f in dataclasses.fields(TrainConfig):
        v = values.get(f.name)
        if isinstance(v, str) and ("float" in str(f.type) or f.type in ("int", "Optional[int]")):
            try:  # YAML reads "1e-3" as a string (its floats need a dot): accept what Python accepts
                values[f.name] = float(v) if "float" in str(f.type) else int(v)
            except ValueError:
                raise TrainError(f"{source}: {f.name} must be a number, got {v!r}") from None
    if values.get("amp") is False:  # YAML 1.1 reads a bare `off` as false
        values["amp"] = "off"
    if "curriculum" in values:
        values["curriculum"] = _check_curriculum(values["curriculum"], source)
    cfg = TrainConfig(**values)
    if cfg.amp not in ("auto", "bf16", "fp16", "off"):
        raise TrainError(f"{source}: amp must be auto, bf16, fp16 or off, got {cfg.amp!r}")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.accum_steps < 1:
        raise TrainError(f"{source}: steps, batch_size and accum_steps must be >= 1")
    if cfg.embedding_type not in ("instance", "semantic"):
        raise TrainError(f"{source}: embedding_type must be instance or semantic, got {cfg.embedding_type!r}")
    return cfg


#: the settings a curriculum stage may change: what the pairs are, never the model or the optimiser
CURRICULUM_KEYS = frozenset({
    "synthetic_weight", "synthetic_objects", "synthetic_max_gap", "video_weight", "video_max_gap",
    "folder_weight", "crop_scale", "crop_ratio", "same_crop_prob", "hflip_prob", "vflip_prob", "jitter",
    "min_color_distance", "palette_prob", "mix_context_prob", "random_mask_prob", "object_weight_max",
})


def _check_curriculum(stages: Any, source: str) -> List[Dict[str, Any]]:
    """Validate curriculum stages: a list of mappings, each with an increasing `at_step` and data keys."""
    if not stages:
        return []
    if not isinstance(stages, list) or not all(isinstance(st, dict) for st in stages):
        raise TrainError(f"{source}: curriculum must be a list of mappings, each with at_step")
    checked, last = [], 0
    for stage in stages:
        at = stage.get("at_step")
        if not isinstance(at, int) or at <= last:
            raise TrainError(f"{source}: curriculum at_step must be increasing integers > 0, got {at!r}")
        unknown = set(stage) - CURRICULUM_KEYS - {"at_step"}
        if unknown:
            raise TrainError(f"{source}: curriculum cannot change {', '.join(sorted(unknown))} "
                             f"(only {', '.join(sorted(CURRICULUM_KEYS))})")
        stage = dict(stage)
        for key in _TUPLE_KEYS & set(stage):
            stage[key] = tuple(stage[key])
        checked.append(stage)
        last = at
    return checked


def data_config(cfg: TrainConfig, step: int) -> TrainConfig:
    """The run's settings with every curriculum stage reached by optimizer step `step` applied."""
    changes: Dict[str, Any] = {}
    for stage in cfg.curriculum:
        if step >= stage["at_step"]:
            changes.update({k: v for k, v in stage.items() if k != "at_step"})
    return dataclasses.replace(cfg, **changes) if changes else cfg
