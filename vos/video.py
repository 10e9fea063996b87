"""Frame sources: stream RGB frames from video files, frame folders, arrays and iterators.

Why this module exists: long videos must not be held in memory (the most frequent
complaint about peer tools is that they load every frame up front). Every source here
yields frames one at a time, and seekable sources decode fixed-size chunks in a
background thread that fills a *bounded* queue, so decoding overlaps with inference
while memory stays at ``(prefetch_chunks + 2) * chunk_size`` frames at most.

All sources yield ``(frame_index, frame)`` where ``frame_index`` is the absolute index of
the frame in the video (also when iterating a sub-range or backwards) and ``frame`` is a
C-contiguous ``H x W x 3`` ``uint8`` RGB array. Grayscale frames are replicated to three
channels; the alpha channel of RGBA frames is dropped (not blended: a frame source has no
background to blend with).

Backends: decord is preferred for video files (fast accurate random access with
``get_batch``); PyAV is the fallback where decord is not installed or cannot open a
file. Both are imported lazily so that the other one (and folders, arrays) keep working
when one is missing.

Damaged inputs (issue 13): a video that ends early or cannot be decoded at some frame, a truncated or
unreadable image, a frame of another size in a folder: every frame before it is yielded, then one
``VideoError`` names the frame (the CLIs: one line, exit code 2). The decoders' own C-level logging
never reaches the terminal: PyAV's FFmpeg logging is off by default, and decord (which has no switch)
runs with file descriptor 2 captured, its lines dropped (the first one goes into our message).

Rotation: frames come out as a player shows them. A video whose display matrix rotates it (phones)
is decoded with PyAV and each frame turned by the stream's rotation; decord ignores or mangles that
matrix, so ``backend="auto"`` never picks it for such a file and ``backend="decord"`` refuses one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from vos.decoders import DecordSource, FolderSource, PyAVSource, display_rotation, quiet_fd2
from vos.sources import (DEFAULT_FPS, IMAGE_EXTENSIONS, ArraySource, Frame, FrameSource, IteratorSource,
                         VideoError, chunk_plan, natural_key, to_rgb)

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
        path = Path(spec)
        if not path.exists():
            raise VideoError(f"{path}: no such file or folder")
        if path.is_dir():
            return FolderSource(path, chunk_size=chunk_size, prefetch_chunks=prefetch_chunks, fps=fps)
        if fps is not None:
            raise ValueError(f"{path}: fps cannot be overridden for a video file (it has its own rate)")
        return _open_video(path, backend, chunk_size=chunk_size, prefetch_chunks=prefetch_chunks,
                           num_threads=num_threads)
    if isinstance(spec, (np.ndarray, list, tuple)):
        return ArraySource(spec, fps=fps)
    if isinstance(spec, (bytes, bytearray, dict, set)) or not hasattr(spec, "__iter__"):
        raise VideoError(f"<input>: unsupported input type {type(spec).__name__} "
                         "(expected a video path, folder, array, list or iterator of frames)")
    return IteratorSource(spec, fps=fps)


def _open_video(path: Path, backend: str, **kw: int) -> FrameSource:
    if backend == "pyav":
        return PyAVSource(path, **kw)
    if backend == "decord":
        return DecordSource(path, **kw)
    try:
        import decord  # noqa: F401
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
    logger.debug("%s: decoding with decord", path)
    return source
