"""Engine settings: one dataclass, defaults in configs/engine.yaml, overridable from the CLI."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

import yaml

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "engine.yaml"


class ConfigError(ValueError):
    """A configuration file or value that cannot be used (one-line message)."""


@dataclass
class EngineConfig:
    """How the video engine runs.

    memory: how many recent predicted frames are kept as prompts besides the user's masks (paper: 8).
    memory_stride: memorise every n-th predicted frame (a longer time span for the same cost).
    max_annotated: at most this many annotated frames condition a frame: the first one and the
        closest others (SAM 2 keeps the closest too); None: all of them.
    confidence_gate: a predicted frame is memorised only if its mean confidence (0..1) reaches this
        value; None memorises every frame. An unsure prediction used as a prompt spreads its errors.
    batch_frames: frames per forward against the same memory (1 = exact frame-by-frame semantics).
    objects: "joint" segments all objects in one pass, each in its own colour; "separate" runs each
        object on its own as a binary task (like the official demo), N times the cost.
    embedding_type: SegGPT's type token, "instance" (the official video setting) or "semantic".
    colors: how objects are painted in joint mode: "distinct" (white, red, green, blue, yellow,
        magenta, cyan, then the palette: as far apart as possible) or "palette" (transformers'
        SegGPT palette: white and pale tints 128 apart). One object is white either way.
    resize: how predictions go back to frame size, "smooth" or "nearest" (official).
    exact_resize: PIL-identical input resizing (slower; for benchmarks that must match the official code).
    compile: torch.compile the model for its fixed canvas shape: None (off), "default",
        "reduce-overhead" (CUDA graphs on a GPU) or "max-autotune". Pays off on long videos.
    """

    memory: int = 8
    memory_stride: int = 1
    max_annotated: Optional[int] = 4
    confidence_gate: Optional[float] = None
    batch_frames: int = 1
    objects: str = "joint"
    embedding_type: str = "instance"
    colors: str = "distinct"
    resize: str = "smooth"
    exact_resize: bool = False
    compile: Optional[str] = None

    def __post_init__(self) -> None:
        if self.memory < 0:
            raise ConfigError(f"memory must be >= 0, got {self.memory}")
        if self.memory_stride < 1:
            raise ConfigError(f"memory_stride must be >= 1, got {self.memory_stride}")
        if self.max_annotated is not None and self.max_annotated < 1:
            raise ConfigError(f"max_annotated must be >= 1 or null, got {self.max_annotated}")
        if self.batch_frames < 1:
            raise ConfigError(f"batch_frames must be >= 1, got {self.batch_frames}")
        if self.objects not in ("joint", "separate"):
            raise ConfigError(f"objects must be 'joint' or 'separate', got {self.objects!r}")
        if self.embedding_type not in ("instance", "semantic"):
            raise ConfigError(f"embedding_type must be 'instance' or 'semantic', got {self.embedding_type!r}")
        if self.colors not in ("distinct", "palette"):
            raise ConfigError(f"colors must be 'distinct' or 'palette', got {self.colors!r}")
        if self.resize not in ("smooth", "nearest"):
            raise ConfigError(f"resize must be 'smooth' or 'nearest', got {self.resize!r}")
        if self.compile not in (None, "default", "reduce-overhead", "max-autotune"):
            raise ConfigError(f"compile must be null, default, reduce-overhead or max-autotune, got {self.compile!r}")
        if self.confidence_gate is not None and not 0.0 <= self.confidence_gate <= 1.0:
            raise ConfigError(f"confidence_gate must be in [0, 1], got {self.confidence_gate}")

    @classmethod
    def from_dict(cls, d: Dict[str, Any], source: str = "config") -> "EngineConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown engine setting(s): {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def load(cls, spec: Union[None, str, Path, Dict[str, Any], "EngineConfig"] = None, **overrides: Any) -> "EngineConfig":
        """From a YAML file (its `engine:` section or the whole file), a dict, or the packaged defaults."""
        if isinstance(spec, EngineConfig):
            base = dataclasses.asdict(spec)
        elif isinstance(spec, dict):
            base = dict(spec)
        else:
            path = Path(spec) if spec is not None else DEFAULT_CONFIG
            base = read_yaml(path).get("engine", {}) if path.exists() or spec is not None else {}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(base, str(spec) if spec is not None else "engine config")


def read_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


__all__ = ["EngineConfig", "ConfigError", "read_yaml", "DEFAULT_CONFIG"]
