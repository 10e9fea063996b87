"""Engine and run settings: dataclasses whose defaults are the only defaults (`seggpt.settings` loads them).

Precedence, one for every CLI and the library: dataclass defaults < the settings the weights file
recommends < a config file (`--config`) < the command line (flags and `--set key=value`).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Type, TypeVar, Union

from seggpt.settings import ConfigError, Layer, build, read_yaml, setting, validate

S = TypeVar("S", bound="RunConfig")


@dataclass
class AdaptConfig:
    """Test-time adaptation: before propagating, a copy of the model is fine-tuned on pairs made from
    the session's annotated frames (seggpt.adapt; the shared model is never modified).

    steps: optimizer steps (0: off). lr: AdamW's learning rate. params: which parameters learn:
        "all", "decoder", "last:N" (the last N blocks + the decoder), "lora:R" (rank-R LoRA on the
        attention, merged back: for ViT-L on a GPU), joined with "+". batch_size: pairs per step.
    object_weight_max: small objects' pixels weigh up to this many background pixels in the loss.
    """

    steps: int = setting(0, min=0)
    lr: float = setting(1e-4, gt=0.0)
    params: str = "all"
    batch_size: int = setting(8, min=1)
    object_weight_max: float = setting(1.0, min=1.0)
    seed: int = setting(0, min=0)

    def __post_init__(self) -> None:
        validate(self)
        if not re.fullmatch(r"(all|decoder|last:\d+|lora:\d+)(\+(all|decoder|last:\d+|lora:\d+))*", self.params):
            raise ConfigError(f"adapt.params must be all, decoder, last:N or lora:R (joined with +), "
                              f"got {self.params!r}")


@dataclass
class RefineConfig:
    """Edge-aware upsampling: the model's score maps are refined against the full-resolution frame by a
    guided filter (seggpt.refine), so boundaries follow image edges instead of a smooth resize.

    model_pixels: the filter's radius in model pixels (the width of the blur a resize leaves is about
        one), converted to frame pixels for each frame size. eps: its regularisation (smaller follows
        edges more closely). guide: the frame in grey or colour.
    """

    enabled: bool = False
    model_pixels: float = setting(1.0, gt=0.0, max=64.0)
    eps: float = setting(1e-2, gt=0.0)
    guide: str = setting("grey", choices=("grey", "colour"))


@dataclass
class ZoomConfig:
    """Object-centred zoom, in separate mode only (joint mode's one pass sees every object on the whole
    frame; the engine says so when both are set): each object is segmented in a crop around where it is
    expected, its prompts cropped around it in their own frames at the same size, so a small object is
    seen at a size the model can segment (`vos.engine.zoom`).

    margin: the crop is the object's box grown by this many times its larger side on each side (the
        largest box among the query's expected one and the prompts'). min_size: the crop's side is at
        least this fraction of the frame's shorter side. motion: the crop moves by the object's last
        displacement (frame to frame) times this, and grows by twice it. max_cover: a crop covering at
        least this fraction of the frame is the whole frame (nothing to gain). A lost object (empty on
        the last frame) is looked for on the whole frame. adapt_crops: test-time adaptation learns, besides
        the annotated frames, each object in the crop the zoom takes around it there (no motion), so the
        model is tuned at the scale it then segments the object at (`vos.engine.zoom.object_crops`; the
        selection set 0.512 -> 0.536). min_part: an object's mask loses its 8-connected parts smaller
        than this fraction of its largest part, on every frame the zoom segments (stray specks would grow
        the box the next crop follows, and spread through the memory); 0 keeps every part.
    """

    enabled: bool = False
    margin: float = setting(1.0, min=0.0, max=10.0)
    min_size: float = setting(0.15, gt=0.0, max=1.0)
    motion: float = setting(1.0, min=0.0, max=10.0)
    max_cover: float = setting(0.5, gt=0.0, max=1.0)
    adapt_crops: bool = True
    min_part: float = setting(0.3, min=0.0, max=1.0)


@dataclass
class EngineConfig:
    """How the video engine runs.

    memory: how many recent predicted frames are kept as prompts besides the user's masks (paper: 8).
    memory_stride: memorise every n-th predicted frame (a longer time span for the same cost).
    max_annotated: at most this many annotated frames condition a frame: the first one and the
        closest others (SAM 2 keeps the closest too); null: all of them.
    confidence_gate: a predicted frame is memorised only if its mean confidence (0..1) reaches this
        value; null memorises every frame. An unsure prediction used as a prompt spreads its errors.
    batch_frames: frames per forward against the same memory (1 = exact frame-by-frame semantics).
    objects: "joint" segments all objects in one pass, each in its own colour; "separate" runs each
        object on its own as a binary task (like the official demo), N times the cost.
    absent_prompts: in separate mode, "keep" shows every prompt to every object; "drop" shows an object
        only the prompts in which it appears (all where none does): recent frames on which it was lost
        then no longer outvote the user's mask when it comes back into view.
    embedding_type: SegGPT's type token, "instance" (the official video setting) or "semantic".
    colors: how objects are painted in joint mode: "distinct" (white, red, green, blue, yellow,
        magenta, cyan, then the palette: as far apart as possible) or "palette" (transformers'
        SegGPT palette: white and pale tints 128 apart). One object is white either way.
    resize: how predictions go back to frame size, "smooth" or "nearest" (official).
    exact_resize: PIL-identical input resizing (slower; for benchmarks that must match the official code).
    compile: torch.compile the model for its fixed canvas shape: null (off), "default",
        "reduce-overhead" (CUDA graphs on a GPU) or "max-autotune". Pays off on long videos.
    image_size: the side in pixels of the square each image is resized to for the model; null: the
        size the weights were trained at. Larger shows small objects in more detail, at about
        (size / trained size)^2 the cost (position tables are interpolated, as SegGPT's own code does);
        a multiple of the model's patch size.
    adapt: test-time adaptation (AdaptConfig). refine: edge-aware upsampling (RefineConfig). zoom:
        object-centred crops in separate mode (ZoomConfig).
    """

    memory: int = setting(8, min=0)
    memory_stride: int = setting(1, min=1)
    max_annotated: Optional[int] = setting(4, min=1)
    confidence_gate: Optional[float] = setting(None, min=0.0, max=1.0)
    batch_frames: int = setting(1, min=1)
    objects: str = setting("joint", choices=("joint", "separate"))
    absent_prompts: str = setting("keep", choices=("keep", "drop"))
    embedding_type: str = setting("instance", choices=("instance", "semantic"))
    colors: str = setting("distinct", choices=("distinct", "palette"))
    resize: str = setting("smooth", choices=("smooth", "nearest"))
    exact_resize: bool = False
    compile: Optional[str] = setting(None, choices=("default", "reduce-overhead", "max-autotune"))
    image_size: Optional[int] = setting(None, min=8, max=2048)
    adapt: AdaptConfig = dataclasses.field(default_factory=AdaptConfig)
    refine: RefineConfig = dataclasses.field(default_factory=RefineConfig)
    zoom: ZoomConfig = dataclasses.field(default_factory=ZoomConfig)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def zooms(self) -> bool:
        """Whether the zoom applies: it is on and objects are segmented one at a time (separate mode)."""
        return self.zoom.enabled and self.objects == "separate"

    @classmethod
    def load(cls, spec: Union[None, str, Path, Mapping[str, Any], "EngineConfig"] = None,
             recommended: Optional[Mapping[str, Any]] = None) -> "EngineConfig":
        """From a dict, a YAML file (its `engine:` section) or an EngineConfig, over the weights' recommendations."""
        if isinstance(spec, EngineConfig):
            return spec
        layers: List[Layer] = [((recommended or {}).get("engine", {}), "the weights' recommended settings")]
        if isinstance(spec, (str, Path)):
            layers.append((read_yaml(spec).get("engine", {}), str(spec)))
        elif spec is not None:
            layers.append((spec, "engine config"))
        return build(cls, layers)


@dataclass
class RunConfig:
    """What `python -m vos.run` reads: the weights, where they run, and the engine settings."""

    weights: str = "BAAI/seggpt-vit-large"
    device: str = "auto"
    dtype: str = setting("auto", choices=("auto", "fp32", "bf16", "fp16"))
    #: CPU threads for torch (null: the machine's cores, torch's own default)
    threads: Optional[int] = setting(None, min=1, max=4096)  # seggpt.device.MAX_THREADS (this module is torch-free)
    engine: EngineConfig = dataclasses.field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        validate(self)


def load_run_config(cls: Type[S], config_file: Optional[str], command_line: Sequence[Layer]) -> S:
    """Settings of a run by the one precedence: defaults < weights' recommendations < file < command line.

    The weights are known only once the file and the command line are read; their recommended
    settings are then put under both.
    """
    layers: List[Layer] = [(read_yaml(config_file), str(config_file))] if config_file else []
    layers += command_line
    first = build(cls, layers)
    recommended = recommended_for(first.weights)
    if not recommended:
        return first
    return build(cls, [(recommended, f"weights {first.weights} (recommended settings)"), *layers])


def recommended_for(weights: str) -> Dict[str, Any]:
    """The settings a weights file recommends; {} for files that carry none (and for Hub ids, unfetched)."""
    from seggpt.weights_file import packaged_weights, recommended_settings

    path = packaged_weights(weights) or Path(weights).expanduser()  # a packaged name wins over a local file
    return recommended_settings(path) if path.is_file() else {}


__all__ = ["EngineConfig", "AdaptConfig", "RefineConfig", "ZoomConfig", "RunConfig", "ConfigError", "load_run_config", "recommended_for"]
