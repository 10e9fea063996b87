"""SegGPT: in-context segmentation (Wang et al., ICCV 2023), faithful and fast.

The names below load on first use (PEP 562), so the torch-free modules of this package
(``seggpt.colors``, ``seggpt.config``, ``seggpt.masks``, ``seggpt.io``) import without torch:
``from seggpt import SegGPT`` loads the model, ``import seggpt.io`` does not.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["SegGPT", "SegGPTPredictor", "SegGPTConfig", "PRESETS", "get_config"]

#: exported name -> the module that defines it
_EXPORTS = {
    "SegGPT": "seggpt.model",
    "SegGPTPredictor": "seggpt.predictor",
    "SegGPTConfig": "seggpt.config",
    "PRESETS": "seggpt.config",
    "get_config": "seggpt.config",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .config import PRESETS, SegGPTConfig, get_config
    from .model import SegGPT
    from .predictor import SegGPTPredictor


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'seggpt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
