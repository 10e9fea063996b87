"""vos: frame-streaming video object segmentation with SegGPT."""
from .config import EngineConfig
from .engine import EngineError, FrameResult, InferenceState, VideoSegmenter

__all__ = ["VideoSegmenter", "EngineConfig", "FrameResult", "InferenceState", "EngineError"]
