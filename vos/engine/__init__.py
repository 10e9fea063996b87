"""vos.engine: the video engine (torch), from one annotation to every frame's masks.

The settings (EngineConfig), object ids and the one mask converter, the session state with its rule
table, the prompt memory, the tracker (one pass, one model call per batch), the zoom, finishing
threads (frame-size labels one batch behind the model), the live stream, and VideoSegmenter with its
verbs. `from vos import VideoSegmenter` is the way in.
"""
import warnings

#: what `vos.engine` (one module in release 0.2) gave; now in vos.engine.segmenter
_OLD_NAMES = ("VideoSegmenter", "EngineError", "FrameResult", "InferenceState", "LiveStream", "EngineConfig")


def __getattr__(name: str):
    if name not in _OLD_NAMES:
        raise AttributeError(f"module 'vos.engine' has no attribute {name!r}")
    warnings.warn(f"vos.engine.{name} moved: use `from vos import {name}`; the old name goes in the next release",
                  DeprecationWarning, stacklevel=2)
    from vos.engine import segmenter

    return getattr(segmenter, name)
