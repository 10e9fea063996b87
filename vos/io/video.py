"""Frame sources: stream RGB frames from video files, frame folders, arrays and iterators.

``open_source`` opens any input as a :class:`FrameSource`; the sources live in ``vos.io.sources`` (the
interface, bounded prefetching, arrays, iterators), ``vos.io.decoders`` (video files) and
``vos.io.frame_folders`` (folders of frames), and are re-exported here, the one place callers import them from.

Every source yields ``(frame_index, frame)``, frame an ``H x W x 3`` uint8 RGB array, one at a time:
long videos are never held in memory. Backends for video files: decord first (fast random access),
PyAV where decord is not installed, cannot open the file, or the file is rotated (a phone's display
matrix, which decord ignores).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from seggpt.errors import VideoError
from vos.io.decoders import DecordSource, PyAVSource, check_video_file, display_rotation, import_decord, quiet_fd2
from vos.io.frame_folders import FolderSource
from vos.io.sources import (DEFAULT_FPS, IMAGE_EXTENSIONS, ArraySource, Frame, FrameSource, IteratorSource, chunk_plan,
                            natural_key, to_rgb)

__all__ = ["BACKENDS", "DEFAULT_FPS", "IMAGE_EXTENSIONS", "ArraySource", "DecordSource", "FolderSource", "Frame",
           "FrameSource", "IteratorSource", "PyAVSource", "VideoError", "chunk_plan", "display_rotation",
           "natural_key", "open_source", "quiet_fd2", "to_rgb"]

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- entry point

BACKENDS = ("auto", "decord", "pyav")


def open_source(
    spec: Any,
    backend: str = "auto",
    *,
    chunk_size: int = 16,
    prefetch_chunks: int = 2,
    num_threads: int = 0,
    fps: float | None = None,
) -> FrameSource:
    """Open any supported input as a ``FrameSource``.

    ``spec``: a FrameSource (returned as is), a path to a video file or a frame folder,
    a numpy array (T,H,W[,C]), a list/tuple of frames, or any iterable of frames.
    ``backend`` picks the video decoder: "auto" tries decord and falls back to PyAV when
    decord is not installed or cannot open the file. ``fps`` sets the rate of inputs
    that carry none (folders, arrays, iterators); a video file's own rate is never
    overridden (that would silently desynchronise outputs from the source).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(spec, FrameSource):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        if not str(os.fspath(spec)).strip():
            raise VideoError("the video: an empty path; name a video file or a folder of frames")
        path = Path(spec)
        if not path.exists():
            raise VideoError(f"{path}: no such file or folder")
        if path.is_dir():
            return FolderSource(path, chunk_size=chunk_size, prefetch_chunks=prefetch_chunks, fps=fps)
        check_video_file(path)  # a regular file, not an image: before any decoder or probe opens it
        if fps is not None:
            raise ValueError(f"{path}: fps cannot be overridden for a video file (it has its own rate)")
        return _open_video(path, backend, chunk_size=chunk_size, prefetch_chunks=prefetch_chunks,
                           num_threads=num_threads)
    if type(spec).__module__.split(".")[0] == "torch" and hasattr(spec, "numpy"):  # a tensor: on the host
        spec = spec.detach().cpu().numpy()
    if isinstance(spec, (np.ndarray, list, tuple)):
        return ArraySource(spec, fps=fps)
    if isinstance(spec, (bytes, bytearray, dict, set)) or not hasattr(spec, "__iter__"):
        raise VideoError(f"<input>: unsupported input type {type(spec).__name__} "
                         "(expected a video path, folder, array, list or iterator of frames)")
    return IteratorSource(spec, fps=fps)


def _decord_reads_right(source: FrameSource) -> bool:
    """Whether decord gives the first frame at the size it reports (one frame decoded at open)."""
    h, w = source.size
    try:
        return all(frame.shape == (h, w, 3) for _, frame in source.iter_frames(0, 1))
    except VideoError:
        return False


def _open_video(path: Path, backend: str, **kw: int) -> FrameSource:
    if backend != "auto":
        return (PyAVSource if backend == "pyav" else DecordSource)(path, **kw)
    try:
        import_decord()
    except ImportError:
        logger.debug("%s: decord not installed, decoding with PyAV", path)
        return PyAVSource(path, **kw)
    if display_rotation(path):
        logger.debug("%s: rotated video, decoding with PyAV (decord ignores the display matrix)", path)
        return PyAVSource(path, **kw)
    try:
        source: FrameSource = DecordSource(path, **kw)
    except VideoError as exc:
        logger.debug("%s: decord failed (%s), decoding with PyAV", path, exc)
        return PyAVSource(path, **kw)
    if not _decord_reads_right(source):
        # decord mangles some frame sizes (8x8 comes back as (8, 8, 12) arrays, 24x10 and 48x48 fail); PyAV
        # reads them right
        source.close()
        logger.debug("%s: decord cannot decode frames of this size, decoding with PyAV", path)
        return PyAVSource(path, **kw)
    logger.debug("%s: decoding with decord", path)
    return source
