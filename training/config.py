"""The settings of one training run (:class:`TrainConfig`), read by the project's one loader.

A run is described by a flat YAML file of :class:`TrainConfig` keys (``configs/train_*.yaml``),
overridable on the command line (``steps=2000 lr=1e-4``, values read as YAML 1.2). The defaults are
the dataclass's and nowhere else; every value is checked where it is read (``seggpt.settings``:
types, ranges, choices), and an error is one line naming the file or the ``key=value`` it came from.
The shipped files hold no paths: data roots (``davis_roots``, ``ytvos_roots``, ``folder_roots``) and
``out_dir`` come from the command line, so the same file works in every checkout.

The pair makers take their settings as small dataclasses (:class:`training.data.PairSettings`,
:class:`seggpt.pairs.Augment`), built here from the flat keys in one place
(:meth:`TrainConfig.pair_settings`, :meth:`TrainConfig.augment`).
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from seggpt.config import PRESETS, SegGPTConfig, get_config
from seggpt.pairs import Augment
from seggpt.settings import ConfigError, Layer, as_dict, build, parse_assignments, read_yaml, setting, validate

from .data import PairSettings

__all__ = ["ConfigError", "TrainConfig", "CurriculumStage", "load_config", "data_config",
           "CURRICULUM_KEYS", "OVERRIDE_SOURCE"]

#: how a command-line override is named in an error ("command line steps=2.5: steps must be ...")
OVERRIDE_SOURCE = "command line"


# ----------------------------------------------------------------------------- field checks


def _low_high(value: Tuple[float, float]) -> Optional[str]:
    return "two values with low <= high" if value[0] > value[1] else None


def _model(value: Any) -> Optional[str]:
    expected = f"a preset name ({', '.join(sorted(PRESETS))}) or a mapping of SegGPTConfig fields"
    if not isinstance(value, (str, dict, SegGPTConfig)):
        return expected
    try:
        get_config(value)  # a config as it is, a preset or a mapping of fields
    except (ValueError, TypeError) as err:
        return f"{expected} ({err})"
    return None


def _device(value: str) -> Optional[str]:
    return None if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value) else "auto, cpu, cuda, cuda:N or mps"


def _not_blank(value: str) -> Optional[str]:
    return "a folder path" if not value.strip() else None


def _betas(value: Tuple[float, float]) -> Optional[str]:
    return "two numbers in [0, 1)" if any(not 0.0 <= b < 1.0 for b in value) else None


def _stages(stages: List[Any]) -> Optional[str]:
    steps = [stage.at_step for stage in stages]
    return "stages whose at_step increase" if steps != sorted(set(steps)) else None


# ----------------------------------------------------------------------------- the settings


@dataclass
class TrainConfig:
    """Every setting of a run; YAML keys and command-line overrides use these names."""

    # model
    model: Any = setting("small", check=_model)  # a preset name or a mapping of SegGPTConfig fields
    init_from: Optional[str] = None  # fine-tune: anything SegGPT.from_pretrained reads
    embedding_type: str = setting("instance", choices=("instance", "semantic"))
    # run
    out_dir: str = setting("runs/train", check=_not_blank)
    seed: int = setting(0, min=0)
    steps: int = setting(1000, min=1)  # optimizer steps
    max_minutes: Optional[float] = setting(None, gt=0)  # stop (and save) after this much wall time
    #: anneal by wall time too: the cosine reaches its end at max_minutes even if `steps` is not reached
    #: (for shared machines whose speed is unknown in advance; not bit-exact on resume)
    time_schedule: bool = False
    threads: Optional[int] = setting(None, min=1)  # torch intra-op threads (None: torch's default)
    num_workers: int = setting(1, min=0)
    device: str = setting("auto", check=_device)  # resolved by seggpt.device when the run starts
    #: auto (bf16 on CUDA if supported, else fp16; fp32 on CPU), bf16 (CPU too), fp16, off
    amp: str = setting("auto", choices=("auto", "bf16", "fp16", "off"))
    # optimisation
    batch_size: int = setting(16, min=1)  # per micro-batch and rank
    accum_steps: int = setting(1, min=1)
    lr: float = setting(3e-4, gt=0)
    min_lr_ratio: float = setting(0.01, min=0, max=1)
    warmup_steps: int = setting(200, min=0)
    weight_decay: float = setting(0.05, min=0)
    betas: Tuple[float, float] = setting((0.9, 0.999), check=_betas)
    grad_clip: float = setting(1.0, min=0)  # 0: no clipping
    # data
    synthetic_weight: float = setting(1.0, min=0)
    synthetic_size: Tuple[int, int] = setting((80, 144), min=16)  # the generator's smallest scene is 16x16
    synthetic_objects: Tuple[int, int] = setting((1, 3), min=1, max=8, check=_low_high)
    synthetic_max_gap: int = setting(16, min=1)
    davis_roots: List[str] = setting(default_factory=list)
    davis_year: int = setting(2016, choices=(2016, 2017))
    davis_split: str = "train"
    davis_resolution: str = "480p"
    ytvos_roots: List[str] = setting(default_factory=list)
    ytvos_split: str = "train"
    video_weight: float = setting(1.0, min=0)
    video_max_gap: int = setting(10, min=1)
    #: pseudo-objects (colour regions) of the davis/ytvos videos' frames carried by optical flow
    #: (``training.data.FlowPairs``; their annotations are not used): real motion without labels
    flow_weight: float = setting(0.0, min=0)
    flow_max_gap: int = setting(3, min=1)
    flow_objects: Tuple[int, int] = setting((1, 3), min=1, max=8, check=_low_high)
    folder_roots: List[str] = setting(default_factory=list)
    folder_weight: float = setting(1.0, min=0)
    # augmentation and colours
    crop_scale: Tuple[float, float] = setting((0.5, 1.0), gt=0, max=1, check=_low_high)
    crop_ratio: Tuple[float, float] = setting((0.75, 1.333), gt=0, check=_low_high)
    same_crop_prob: float = setting(0.5, min=0, max=1)
    hflip_prob: float = setting(0.5, min=0, max=1)
    vflip_prob: float = setting(0.0, min=0, max=1)
    jitter: float = setting(0.3, min=0, max=1)
    #: share of pairs cropped around the prompt's objects (grown 1.3-3x) instead of at random
    object_crop_prob: float = setting(0.0, min=0, max=1)
    min_color_distance: float = setting(80.0, min=0, max=441)  # 441: black to white
    palette_prob: float = setting(0.0, min=0, max=1)
    mix_context_prob: float = setting(0.0, min=0, max=1)
    mix_context_n: int = setting(2, min=1)
    #: share of samples whose hidden patches are a random `random_mask_ratio` of the whole mask
    #: canvas instead of the query half (official training mixes both; helps a model from scratch)
    random_mask_prob: float = setting(0.0, min=0, max=1)
    random_mask_ratio: float = setting(0.75, gt=0, lt=1)
    #: small objects' pixels weigh up to this many background pixels in the loss (1: the official plain mean)
    object_weight_max: float = setting(1.0, min=1)
    #: data settings that change during the run, e.g. [{at_step: 4000, synthetic_max_gap: 8,
    #: same_crop_prob: 0.5}]: harder pairs once the model has learnt to copy masks at all. Each
    #: stage's values are checked like the keys they set, when the settings are read.
    curriculum: List["CurriculumStage"] = setting(default_factory=list, check=_stages)
    # evaluation, logging, checkpoints
    eval_every: int = setting(500, min=0)  # 0: no periodic evaluation
    eval_pairs: int = setting(64, min=0)
    eval_clips: int = setting(2, min=0)
    #: J&F leaves out a clip's first and last frames: at least 3
    eval_clip_frames: int = setting(12, min=3)
    eval_clip_size: Tuple[int, int] = setting((120, 216), min=16)
    eval_seed: int = setting(987654321, min=0)
    log_every: int = setting(10, min=1)
    ckpt_every: int = setting(250, min=0)  # 0: checkpoints only at the end (and when interrupted)
    progress: bool = True

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> Dict[str, Any]:
        """Plain data (lists, dicts), e.g. for the log and the checkpoint."""
        return as_dict(self)

    # the pair makers' settings, built from the flat keys in this one place: each of their fields is the
    # key of the same name
    def _keys_of(self, cls: type) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(cls) if f.name != "size"}

    def pair_settings(self) -> PairSettings:
        return PairSettings(**self._keys_of(PairSettings))

    def augment(self, size: Tuple[int, int]) -> Augment:
        return Augment(size=tuple(size), **self._keys_of(Augment))


#: the settings a curriculum stage may change: what the pairs are, never the model or the optimiser
CURRICULUM_KEYS = frozenset({
    "synthetic_weight", "synthetic_objects", "synthetic_max_gap", "video_weight", "video_max_gap",
    "flow_weight", "flow_max_gap", "folder_weight", "crop_scale", "object_crop_prob", "crop_ratio", "same_crop_prob", "hflip_prob", "vflip_prob", "jitter",
    "min_color_distance", "palette_prob", "mix_context_prob", "random_mask_prob", "object_weight_max",
})


def _stage_class() -> type:
    """CurriculumStage: `at_step` and every CURRICULUM_KEYS field of TrainConfig, optional, with its
    type and checks (made from TrainConfig's fields, so the two cannot drift apart)."""
    hints = typing.get_type_hints(TrainConfig, localns={"CurriculumStage": Any})
    fields = [("at_step", int, setting(dataclasses.MISSING, min=1))]
    fields += [(f.name, Optional[hints[f.name]], setting(None, **f.metadata))
               for f in dataclasses.fields(TrainConfig) if f.name in CURRICULUM_KEYS]

    def changes(self) -> Dict[str, Any]:
        """The settings this stage sets: {key: value} without at_step and the keys it leaves alone."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "at_step" and getattr(self, f.name) is not None}

    return dataclasses.make_dataclass(
        "CurriculumStage", fields, namespace={"__post_init__": lambda self: validate(self), "changes": changes,
                                              "__module__": __name__,
                                              "__doc__": "A curriculum stage: from optimizer step `at_step` "
                                                         "on, these data settings (None: unchanged)."})


CurriculumStage = _stage_class()


# ----------------------------------------------------------------------------- reading


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """A YAML file of TrainConfig keys (a path or a packaged config's name) under ``key=value`` overrides.

    Raises ConfigError (one line naming the file or the override) for anything that cannot be used.
    """
    layers: List[Layer] = [(read_yaml(path), str(path))] if path is not None else []
    return build(TrainConfig, layers + parse_assignments(overrides, option=OVERRIDE_SOURCE))


def data_config(cfg: TrainConfig, step: int) -> TrainConfig:
    """The run's settings with every curriculum stage reached by optimizer step `step` applied."""
    changes: Dict[str, Any] = {}
    for stage in cfg.curriculum:
        if step >= stage.at_step:
            changes.update(stage.changes())
    return dataclasses.replace(cfg, **changes) if changes else cfg
