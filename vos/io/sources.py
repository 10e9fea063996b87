"""Frame sources, the common part: the source interface, bounded prefetching, arrays and iterators.

Why this module exists: long videos must not be held in memory (the most frequent
complaint about peer tools is that they load every frame up front). Every source
yields frames one at a time, and seekable sources decode fixed-size chunks in a
background thread that fills a *bounded* queue, so decoding overlaps with inference
while memory stays at ``(prefetch_chunks + 2) * chunk_size`` frames at most.

All sources yield ``(frame_index, frame)`` where ``frame_index`` is the absolute index of
the frame in the video (also when iterating a sub-range or backwards) and ``frame`` is a
C-contiguous ``H x W x 3`` ``uint8`` RGB array. Grayscale frames are replicated to three
channels; the alpha channel of RGBA frames is dropped (not blended: a frame source has no
background to blend with).

Files are read by ``vos.io.decoders`` (video files) and ``vos.io.frame_folders`` (folders of frames);
``vos.io.video.open_source`` opens any input.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import math
import queue
import re
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from seggpt.errors import VideoError


logger = logging.getLogger(__name__)

#: Frame rate reported by sources that carry none (folders, arrays, iterators). 24 fps is
#: the film default and what most tools assume; pass ``fps=`` to override it.
DEFAULT_FPS = 24.0

#: The highest frame rate a source may be given (players and encoders take no more).
MAX_FPS = 1000.0


def given_fps(fps: float | None) -> float:
    """The rate of a source that carries none: ``DEFAULT_FPS`` for None, else a finite number in
    (0, MAX_FPS] (VideoError otherwise: 0 or NaN used to become 24 fps silently)."""
    if fps is None:
        return DEFAULT_FPS
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise VideoError(f"fps must be a number, got {fps!r}") from None
    if not math.isfinite(value) or not 0.0 < value <= MAX_FPS:
        raise VideoError(f"fps must be a number > 0 and <= {MAX_FPS:g} frames per second, got {fps}")
    return value


#: Image extensions a frame folder may contain (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

Frame = tuple[int, np.ndarray]


# --------------------------------------------------------------------------- helpers


def to_rgb(frame: np.ndarray, where: str) -> np.ndarray:
    """Return ``frame`` as a contiguous H x W x 3 uint8 RGB array.

    Accepts H x W (grayscale), H x W x 1, H x W x 3 and H x W x 4 (alpha dropped).
    Only uint8 is accepted: silently rescaling float or 16-bit data would guess a range.
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise VideoError(f"{where}: frames must be uint8, got {frame.dtype}")
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    elif frame.ndim == 3 and frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = frame[:, :, :3]
    elif not (frame.ndim == 3 and frame.shape[2] == 3):
        raise VideoError(f"{where}: expected an HxW, HxWx1, HxWx3 or HxWx4 frame, got shape {frame.shape}")
    return np.ascontiguousarray(frame)


def natural_key(name: str) -> tuple:
    """Sort key that orders the numbers inside names by value ("2.jpg" before "10.jpg")."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p)


def chunk_plan(start: int, stop: int, chunk_size: int, reverse: bool) -> list[range]:
    """Split ``[start, stop)`` into ascending ranges of ``chunk_size``, in the order they are read.

    Forward: chunks from ``start`` upwards. Reverse: chunks aligned at ``stop`` going down,
    each still read forwards (decoders are fast forwards, slow backwards) and yielded
    reversed, so memory stays bounded by the chunk size.
    """
    if reverse:
        return [range(max(start, hi - chunk_size), hi) for hi in range(stop, start, -chunk_size)]
    return [range(lo, min(lo + chunk_size, stop)) for lo in range(start, stop, chunk_size)]


class _Prefetcher:
    """Run a producer iterator in a daemon thread, handing items over through a bounded queue.

    The one prefetch mechanism shared by every decoding source. Guarantees:
    - at most ``maxsize`` items wait in the queue (plus one held by a blocked ``put``);
    - an exception raised by the producer is re-raised in the consumer, in order;
    - ``close()`` stops the thread promptly (it never blocks forever on a full queue)
      and closes the producer iterator inside the thread, so decoders release files.
    """

    _ITEM, _DONE, _ERROR = 0, 1, 2
    _POLL_S = 0.05

    def __init__(self, produce: Callable[[], Iterable[Any]], maxsize: int, name: str) -> None:
        self._produce = produce
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._stop = threading.Event()
        self.produced = 0  # items handed to the queue (diagnostics and tests)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _put(self, message: tuple[int, Any]) -> bool:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):  # full: try again, unless stopped meanwhile
                self.queue.put(message, timeout=self._POLL_S)
                return True
        return False

    def _run(self) -> None:
        iterator = None
        try:
            iterator = iter(self._produce())
            for item in iterator:
                if not self._put((self._ITEM, item)):
                    return
                self.produced += 1
            self._put((self._DONE, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, not swallowed
            self._put((self._ERROR, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - best effort release after an error
                    logger.debug("closing producer of %s failed", self.thread.name, exc_info=True)

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                kind, payload = self.queue.get(timeout=self._POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    raise VideoError(f"{self.thread.name}: the source was closed while frames were being read")
                continue
            if kind == self._ITEM:
                yield payload
            elif kind == self._DONE:
                return
            else:
                raise payload

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):  # free the memory of decoded chunks and unblock a pending put
            while True:
                self.queue.get_nowait()
        if threading.current_thread() is not self.thread:
            self.thread.join()


# --------------------------------------------------------------------------- base classes


class FrameSource(abc.ABC):
    """A video as a stream of ``(frame_index, H x W x 3 uint8 RGB)`` frames.

    Use as a context manager or call ``close()``; closing stops background decoding.
    """

    name: str = "<frames>"

    @property
    @abc.abstractmethod
    def num_frames(self) -> int | None:
        """Number of frames, or None where it cannot be known without consuming (iterators)."""

    _fps: float = DEFAULT_FPS
    _size: tuple[int, int] = (0, 0)

    @property
    def fps(self) -> float:
        """Frames per second; ``DEFAULT_FPS`` (24.0) where the input carries none (subclasses set ``_fps``)."""
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        """Frame size as (H, W) (subclasses set ``_size``)."""
        return self._size

    @abc.abstractmethod
    def iter_frames(self, start: int = 0, stop: int | None = None, reverse: bool = False) -> Iterator[Frame]:
        """Yield ``(index, frame)`` for ``start <= index < stop``; ``reverse`` yields stop-1 down to start."""

    def close(self) -> None:
        """Release files and stop background threads. Safe to call twice."""

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, num_frames={self.num_frames})"

    def _check_range(self, start: int, stop: int | None) -> tuple[int, int]:
        """Validate a [start, stop) request against ``num_frames`` (must be known)."""
        n = self.num_frames
        assert n is not None
        if stop is None:
            stop = n
        if not (0 <= start <= n):
            raise VideoError(f"{self.name}: start frame {start} is out of range (video has {n} frames)")
        if not (start <= stop <= n):
            raise VideoError(f"{self.name}: stop frame {stop} is out of range (start {start}, video has {n} frames)")
        return int(start), int(stop)


class ChunkedSource(FrameSource):
    """A seekable source: frames decoded in chunks by a background prefetch thread.

    Subclasses implement ``_decode(plan)``, a generator of lists of ``(index, frame)``,
    one list per range of ``plan`` in plan order, each in ascending index order. It runs
    in the prefetch thread, so it must not touch state the consumer thread uses.
    """

    def __init__(self, name: str, chunk_size: int, prefetch_chunks: int) -> None:
        if chunk_size < 1 or prefetch_chunks < 1:
            raise ValueError(f"chunk_size and prefetch_chunks must be >= 1, got {chunk_size}, {prefetch_chunks}")
        self.name = name
        self.chunk_size = int(chunk_size)
        self.prefetch_chunks = int(prefetch_chunks)
        self._prefetchers: set[_Prefetcher] = set()
        self._closed = False

    @abc.abstractmethod
    def _decode(self, plan: Sequence[range], reverse: bool = False) -> Iterator[list[Frame]]:
        """Decode each range of ``plan`` (see class docstring). Forwards (not ``reverse``), a frame that
        cannot be decoded ends the stream after a last, shorter chunk of the frames before it."""

    def iter_frames(self, start: int = 0, stop: int | None = None, reverse: bool = False) -> Iterator[Frame]:
        if self._closed:
            raise VideoError(f"{self.name}: the source is closed")
        start, stop = self._check_range(start, stop)
        plan = chunk_plan(start, stop, self.chunk_size, reverse)
        return self._stream(plan, reverse)

    def _stream(self, plan: list[range], reverse: bool) -> Iterator[Frame]:
        if not plan:
            return

        def produce() -> Iterator[list[Frame]]:
            for chunk in self._decode(plan, reverse=reverse):
                yield chunk[::-1] if reverse else chunk

        prefetcher = _Prefetcher(produce, self.prefetch_chunks, f"vos-prefetch:{Path(self.name).name}")
        self._prefetchers.add(prefetcher)
        try:
            for chunk in prefetcher:
                yield from chunk
        finally:
            prefetcher.close()
            self._prefetchers.discard(prefetcher)

    def close(self) -> None:
        self._closed = True
        for prefetcher in list(self._prefetchers):
            prefetcher.close()
        self._prefetchers.clear()
        self._release()

    def _release(self) -> None:
        """Release decoder resources (after all prefetch threads have stopped)."""


# --------------------------------------------------------------------------- in-memory and iterators


class ArraySource(FrameSource):
    """Frames already in memory: a (T, H, W[, C]) uint8 array or a list of frames.

    No prefetch thread: the frames are already decoded. Frames are converted to RGB
    one at a time as they are yielded, so a grayscale array is not copied whole.
    """

    def __init__(self, frames: np.ndarray | Sequence[np.ndarray], fps: float | None = None,
                 name: str = "<array>") -> None:
        self.name = name
        if isinstance(frames, np.ndarray):
            if frames.ndim not in (3, 4):
                raise VideoError(f"{name}: expected a (T,H,W) or (T,H,W,C) array, got shape {frames.shape}")
            if frames.ndim == 4 and frames.shape[1] in (1, 3, 4) and frames.shape[3] not in (1, 3, 4):
                raise VideoError(f"{name}: shape {frames.shape} is channels-first (T,C,H,W); frames are "
                                 f"(T,H,W,C): pass frames.transpose(0, 2, 3, 1) (a tensor: .permute(0, 2, 3, 1))")
            if frames.ndim == 3 and frames.shape[2] in (3, 4) and min(frames.shape[:2]) > 4:
                raise VideoError(f"{name}: shape {frames.shape} is one colour image (H,W,C), not a video of "
                                 f"grey frames (T,H,W); a one-frame video is frames[None]")
        else:
            frames = list(frames)
        if len(frames) == 0:
            raise VideoError(f"{name}: no frames")
        shapes = {np.shape(f)[:2] for f in frames}
        if len(shapes) != 1:
            raise VideoError(f"{name}: frames differ in size: {sorted(shapes)}")
        self._frames = frames
        self._size = tuple(int(v) for v in shapes.pop())
        to_rgb(frames[0], f"{name} frame 0")  # validate dtype and channels up front
        self._fps = given_fps(fps)

    @property
    def num_frames(self) -> int:
        return len(self._frames)

    def iter_frames(self, start: int = 0, stop: int | None = None, reverse: bool = False) -> Iterator[Frame]:
        start, stop = self._check_range(start, stop)
        indices = range(stop - 1, start - 1, -1) if reverse else range(start, stop)
        return ((i, to_rgb(self._frames[i], f"{self.name} frame {i}")) for i in indices)


class IteratorSource(FrameSource):
    """Frames from any iterable (a camera, a generator): read once, forwards only.

    ``num_frames`` is ``len(iterable)`` where that works, else None. Iteration resumes
    where the previous one stopped; ``start`` may skip ahead but never go back, and
    ``reverse`` is impossible. The first frame is read ahead when ``size`` is asked.
    """

    def __init__(self, iterable: Iterable[np.ndarray], fps: float | None = None,
                 name: str = "<iterator>") -> None:
        self.name = name
        try:
            self._len: int | None = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            self._len = None
        self._it = iter(iterable)
        self._fps = given_fps(fps)
        self._position = 0  # index of the next frame the iterator yields
        self._peeked: np.ndarray | None = None
        self._size: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int | None:
        return self._len

    @property
    def size(self) -> tuple[int, int]:
        if self._size is None:
            if self._peeked is None:
                self._peeked = self._next_raw()
                if self._peeked is None:
                    raise VideoError(f"{self.name}: the iterator yielded no frames")
            self._size = tuple(np.shape(self._peeked)[:2])  # type: ignore[assignment]
        return self._size

    def _next_raw(self) -> np.ndarray | None:
        if self._peeked is not None:
            frame, self._peeked = self._peeked, None
            return frame
        return next(self._it, None)

    def iter_frames(self, start: int = 0, stop: int | None = None, reverse: bool = False) -> Iterator[Frame]:
        if reverse:
            raise VideoError(f"{self.name}: cannot read an iterator backwards; "
                             "use a video file, folder or array to propagate in reverse")
        if start < self._position:
            raise VideoError(f"{self.name}: cannot go back to frame {start}, the iterator is already "
                             f"at frame {self._position} (iterators are read once)")
        if stop is not None and stop < start:
            raise VideoError(f"{self.name}: stop frame {stop} is before start frame {start}")
        return self._generate(start, stop)

    def _generate(self, start: int, stop: int | None) -> Iterator[Frame]:
        while stop is None or self._position < stop:
            raw = self._next_raw()
            if raw is None:
                if start > self._position:
                    raise VideoError(f"{self.name}: start frame {start} is out of range "
                                     f"(the iterator ended after {self._position} frames)")
                return
            index = self._position
            self._position += 1
            if index < start:
                continue
            frame = to_rgb(raw, f"{self.name} frame {index}")
            if self._size is None:
                self._size = frame.shape[:2]  # type: ignore[assignment]
            elif frame.shape[:2] != self._size:
                raise VideoError(f"{self.name}: frame {index} has size {frame.shape[:2]}, "
                                 f"earlier frames {self._size} (HxW)")
            yield index, frame

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            close()
