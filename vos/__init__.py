"""vos: frame-streaming video object segmentation with SegGPT.

The engine (and torch) load on first use, so `vos.metrics`, `vos.datasets` and the evaluation CLI
start fast and stay light in worker processes.
"""
from typing import TYPE_CHECKING

__all__ = ["VideoSegmenter", "EngineConfig", "FrameResult", "InferenceState", "EngineError", "LiveStream"]

if TYPE_CHECKING:  # pragma: no cover
    from .config import EngineConfig
    from .engine import EngineError, FrameResult, InferenceState, LiveStream, VideoSegmenter


def __getattr__(name: str):
    if name == "EngineConfig":
        from .config import EngineConfig

        return EngineConfig
    if name in __all__:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'vos' has no attribute {name!r}")
