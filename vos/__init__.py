"""vos: frame-streaming video object segmentation with SegGPT.

Layers, each importing only from those before it (tests/test_layers.py checks every import):

    vos.io       frame sources and decoders, masks read from files, output folders and writers,
                 editors' exports (torch-free)
    vos.data     DAVIS / YouTube-VOS readers, synthetic clips, J&F (torch-free)
    vos.engine   the session state and its rules, the tracker, prompt memory, zoom, finishing,
                 the live stream, VideoSegmenter
    vos.editing  the web app's parts: the editing session, gestures made masks, the handlers, views and canvas
    vos.run, vos.app, vos.demo, vos.sam2, vos.scripts: the entry points (CLIs, the web app, the
                 example clip, the SAM 2 surface, the console scripts)

The engine (and torch) load on first use, so `vos.data.metrics`, `vos.data.datasets` and the
evaluation CLI start fast and stay light in worker processes.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import TYPE_CHECKING

__all__ = ["VideoSegmenter", "EngineConfig", "FrameResult", "InferenceState", "EngineError", "LiveStream"]

if TYPE_CHECKING:  # pragma: no cover
    from vos.engine.config import EngineConfig
    from vos.engine.segmenter import EngineError, FrameResult, InferenceState, LiveStream, VideoSegmenter

#: modules of the flat vos/ of release 0.2, where they live now; the old names import (the same
#: module object) with a DeprecationWarning for one release; vos.synthetic, documented as the
#: synthetic clip generator, stays a name without a warning
MOVED = {f"vos.{name}": f"vos.{package}.{name}" for package, names in {
    "io": ("decoders", "exports", "outputs", "prompts", "sources", "video", "writers"),
    "data": ("datasets", "metrics", "synthetic"),
    "engine": ("config", "finishing", "memory", "objects", "state", "stream", "tracker", "zoom"),
    "editing": ("canvas", "drawing", "editor"),
}.items() for name in names}
KEPT_NAMES = ("vos.synthetic",)


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module name as the module it moved to (one object under both names)."""

    def __init__(self) -> None:
        self._own_specs: dict = {}

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        if spec.name not in KEPT_NAMES:
            warnings.warn(f"{spec.name} moved to {MOVED[spec.name]}; the old name goes in the next release",
                          DeprecationWarning, stacklevel=2)
        module = importlib.import_module(MOVED[spec.name])
        self._own_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module) -> None:
        """The module ran when it was imported under its new name; the import system has just set the
        old name's spec on it: its own goes back (importlib.reload and find_spec rely on it)."""
        module.__spec__ = self._own_specs.pop(module.__spec__.name)


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())


def __getattr__(name: str):
    if name == "EngineConfig":
        from vos.engine.config import EngineConfig

        return EngineConfig
    if name in __all__:
        from vos.engine import segmenter

        return getattr(segmenter, name)
    raise AttributeError(f"module 'vos' has no attribute {name!r}")
