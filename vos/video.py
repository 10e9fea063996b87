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

import abc
import contextlib
import logging
import os
import queue
import re
import sys
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

logger = logging.getLogger(__name__)

#: Frame rate reported by sources that carry none (folders, arrays, iterators). 24 fps is
#: the film default and what most tools assume; pass ``fps=`` to override it.
DEFAULT_FPS = 24.0

#: Image extensions a frame folder may contain (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

Frame = tuple[int, np.ndarray]


try:  # torch-free and tiny: the CLIs turn a UserError into one line and exit code 2
    from seggpt.cli import UserError as _UserError
except ImportError:  # pragma: no cover - vos without seggpt
    _UserError = Exception  # type: ignore[misc,assignment]


class VideoError(ValueError, _UserError):
    """A frame source cannot be opened or read; the message names the file (or input) and the frame."""


# --------------------------------------------------------------------------- decoder logging

_FD2_LOCK = threading.Lock()
#: lines of decord's and its FFmpeg's C-level logging ("[12:00:00] /src/...cc:83: ...", "[mov,mp4 @ 0x...] ...")
_DECODER_LINE = re.compile(r"^\s*\[(\d\d:\d\d:\d\d|[\w,-]+ @ 0x[0-9a-f]+)\]")


@contextlib.contextmanager
def quiet_fd2(captured: list[str] | None = None) -> Iterator[None]:
    """Run C code with file descriptor 2 captured: decoder log lines are dropped (kept in ``captured``),
    anything else written meanwhile (another thread's progress bar) is passed on afterwards."""
    with _FD2_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2 (embedded interpreters)
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                text = sink.read().decode("utf-8", "replace")
        kept = []
        for line in text.splitlines(keepends=True):
            if _DECODER_LINE.match(line):
                if captured is not None:
                    captured.append(line.strip())
            else:
                kept.append(line)
        if kept:
            try:
                os.write(2, "".join(kept).encode())
            except OSError:
                pass


def display_rotation(path: str | os.PathLike) -> int:
    """Degrees counter-clockwise the player turns a video's frames (its display matrix): 0, 90, 180 or 270.

    Read by PyAV from the first decoded frame; 0 where PyAV is missing or cannot tell.
    """
    try:
        import av
    except ImportError:
        return 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return 0
            for frame in container.decode(video=0):
                return int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) * 90 % 360
    except Exception:  # noqa: BLE001 - unreadable: the decoder that opens it reports why
        return 0
    return 0


def _rotate(frame: np.ndarray, degrees: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(frame, degrees // 90)) if degrees else frame


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
        ranges = []
        hi = stop
        while hi > start:
            lo = max(start, hi - chunk_size)
            ranges.append(range(lo, hi))
            hi = lo
        return ranges
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
            try:
                self.queue.put(message, timeout=self._POLL_S)
                return True
            except queue.Full:
                continue
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
        while True:  # free the memory of decoded chunks and unblock a pending put
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
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


class _ChunkedSource(FrameSource):
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


# --------------------------------------------------------------------------- video files


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{p}: no such file")
    if not p.is_file():
        raise VideoError(f"{p}: not a file")
    return p


class DecordSource(_ChunkedSource):
    """A video file decoded by decord: one ``get_batch`` per chunk, in the prefetch thread.

    One ``VideoReader`` per source, guarded by a lock: decord readers are not thread-safe,
    and two concurrent iterations of the same source would otherwise share one decoder.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        chunk_size: int = 16,
        prefetch_chunks: int = 2,
        num_threads: int = 0,
    ) -> None:
        p = _check_file(path)
        super().__init__(str(p), chunk_size, prefetch_chunks)
        try:
            import decord
        except ImportError as exc:
            raise VideoError(f"{p}: decord is not installed (use backend='pyav')") from exc
        rotation = display_rotation(p)
        if rotation:
            raise VideoError(f"{p}: the video carries a display rotation ({rotation} degrees counter-clockwise), "
                             "which decord does not honour; decode it with PyAV (backend='pyav' or 'auto')")
        try:
            with quiet_fd2():
                reader = decord.VideoReader(str(p), ctx=decord.cpu(0), num_threads=int(num_threads))
                n = len(reader)
                h, w = reader[0].shape[:2] if n else (0, 0)
                fps = float(reader.get_avg_fps())
        except Exception as exc:  # decord raises RuntimeError or DECORDError, with C++ log text
            raise VideoError(f"{p}: cannot open as a video with decord ({_first_line(exc)})") from exc
        if n == 0:
            raise VideoError(f"{p}: the video has no frames")
        self._reader = reader
        self._lock = threading.Lock()
        self._num_frames = n
        self._size = (int(h), int(w))
        self._fps = fps if fps > 0 else DEFAULT_FPS

    @property
    def num_frames(self) -> int:
        return self._num_frames

    def _decode(self, plan: Sequence[range], reverse: bool = False) -> Iterator[list[Frame]]:
        for rng in plan:
            with self._lock:
                if self._reader is None:
                    raise VideoError(f"{self.name}: the source is closed")
                try:
                    with quiet_fd2():
                        batch = self._reader.get_batch(list(rng))
                    # decord returns torch tensors where someone set decord.bridge to torch
                    batch = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
                except Exception as exc:
                    batch = None
                    error = exc
            if batch is None:  # frame by frame: every frame before the bad one is yielded, then it is named
                good: list[Frame] = []
                for i in rng:
                    try:
                        with self._lock, quiet_fd2():
                            if self._reader is None:
                                raise VideoError(f"{self.name}: the source is closed")
                            frame = self._reader[i]
                        frame = frame.asnumpy() if hasattr(frame, "asnumpy") else np.asarray(frame)
                    except VideoError:
                        raise
                    except Exception as exc:
                        if good and not reverse:
                            yield good
                        raise VideoError(f"{self.name}: frame {i} cannot be decoded ({_first_line(exc)}); "
                                         f"the video is damaged or ends early ({self._num_frames} frames expected)"
                                         ) from exc
                    good.append((i, to_rgb(frame, self.name)))
                raise VideoError(f"{self.name}: decoding frames {rng.start}-{rng.stop - 1} failed "
                                 f"({_first_line(error)})") from error
            yield [(i, to_rgb(batch[k], self.name)) for k, i in enumerate(rng)]

    def _release(self) -> None:
        with self._lock:
            self._reader = None


class PyAVSource(_ChunkedSource):
    """A video file decoded by PyAV (FFmpeg), with the same chunked prefetch as decord.

    Each iteration opens its own container inside its prefetch thread: PyAV containers
    are not thread-safe, and a private container lets two iterations run side by side.
    Seeking goes to the keyframe at or before the first wanted frame, then decodes
    forwards and drops frames before it. Frame indices come from the first decoded
    frame's pts after a seek and are counted from there on (exact for constant frame
    rate, the norm for the videos this engine reads).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        chunk_size: int = 16,
        prefetch_chunks: int = 2,
        num_threads: int = 0,
    ) -> None:
        p = _check_file(path)
        super().__init__(str(p), chunk_size, prefetch_chunks)
        self._num_threads = int(num_threads)
        av = _import_av(p)
        try:
            container = av.open(str(p))
        except av.error.FFmpegError as exc:
            raise VideoError(f"{p}: not a readable video ({_first_line(exc)})") from exc
        try:
            if not container.streams.video:
                raise VideoError(f"{p}: the file has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self._rate = Fraction(rate) if rate else Fraction(DEFAULT_FPS)
            self._fps = float(self._rate)
            self._time_base = stream.time_base
            self._start_pts = stream.start_time or 0
            self._size = (int(stream.codec_context.height), int(stream.codec_context.width))
            self._rotation = display_rotation(p)
            if self._rotation in (90, 270):  # frames as a player shows them
                self._size = self._size[::-1]
            n = int(stream.frames or 0)
            if n <= 0:  # the container does not say (mkv, webm, raw streams): count packets
                n = sum(1 for packet in container.demux(stream) if packet.size > 0)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{p}: not a readable video ({_first_line(exc)})") from exc
        finally:
            container.close()
        if n == 0:
            raise VideoError(f"{p}: the video has no frames")
        self._num_frames = n

    @property
    def num_frames(self) -> int:
        return self._num_frames

    def _pts_to_index(self, pts: int) -> int:
        return round((pts - self._start_pts) * self._time_base * self._rate)

    def _decode(self, plan: Sequence[range], reverse: bool = False) -> Iterator[list[Frame]]:
        av = _import_av(self.name)
        try:
            container = av.open(self.name)
        except av.error.FFmpegError as exc:  # e.g. the file was replaced or removed since opening
            raise VideoError(f"{self.name}: cannot reopen the video ({_first_line(exc)})") from exc
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.thread_count = self._num_threads
            frames: Iterator | None = None
            next_index = 0  # index of the next frame ``frames`` yields
            for rng in plan:
                if frames is None or next_index != rng.start:
                    frames, next_index = self._seek(container, stream, rng.start, fresh=frames is None)
                chunk: list[Frame] = []
                try:
                    while next_index < rng.stop:
                        frame = next(frames, None)
                        if frame is None:
                            break
                        if next_index >= rng.start:
                            chunk.append((next_index, to_rgb(_rotate(frame.to_ndarray(format="rgb24"),
                                                                     self._rotation), self.name)))
                        next_index += 1
                    reason = "the video ends there"
                except av.error.FFmpegError as exc:
                    reason = _first_line(exc)
                if len(chunk) != len(rng):
                    if chunk and not reverse:  # every frame before the bad one, then one error naming it
                        yield chunk
                    raise VideoError(f"{self.name}: frame {max(next_index, rng.start)} cannot be decoded ({reason}); "
                                     f"the video is damaged or ends early ({self._num_frames} frames expected)")
                yield chunk
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.name}: decoding failed ({_first_line(exc)})") from exc
        finally:
            container.close()

    def _seek(self, container: Any, stream: Any, start: int, fresh: bool) -> tuple[Iterator, int]:
        """Position the decoder at or before frame ``start``; return (frames, index of the first).

        ``fresh``: nothing was decoded from this container yet, so frame 0 needs no seek.
        """
        if start == 0:
            if not fresh:
                self._rewind(container, stream)
            return iter(container.decode(stream)), 0
        target = self._start_pts + round(start / self._rate / self._time_base)
        container.seek(target, stream=stream, backward=True, any_frame=False)
        frames = iter(container.decode(stream))
        first = next(frames, None)
        if first is None or first.pts is None or self._pts_to_index(first.pts) > start:
            # No timestamps, or the demuxer overshot: decode from the beginning instead.
            self._rewind(container, stream)
            return iter(container.decode(stream)), 0
        return _chain_first(first, frames), self._pts_to_index(first.pts)

    def _rewind(self, container: Any, stream: Any) -> None:
        container.seek(self._start_pts, stream=stream, backward=True, any_frame=False)


def _chain_first(first: Any, rest: Iterator) -> Iterator:
    yield first
    yield from rest


def _import_av(where: str | os.PathLike) -> Any:
    try:
        import av
    except ImportError as exc:
        raise VideoError(f"{where}: PyAV (av) is not installed") from exc
    return av


def _first_line(exc: BaseException) -> str:
    """A one-line reason from a decoder exception.

    FFmpeg errors carry ``strerror``; decord prefixes a C++ log header
    ("[12:00:00] /src/video_reader.cc:151: ") and appends stack traces.
    """
    strerror = getattr(exc, "strerror", None)
    if strerror:
        return str(strerror)
    for line in str(exc).splitlines():
        line = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", line.strip())
        if line:
            return line
    return type(exc).__name__


# --------------------------------------------------------------------------- folders


def _read_image_file(f: Path, cv2: Any) -> np.ndarray:
    """A frame file as BGR, or VideoError naming it: unreadable, or cut short (a truncated JPEG decodes
    with grey at the bottom and a libjpeg warning on the terminal, so its end marker is checked first)."""
    try:
        data = f.read_bytes()
    except OSError as exc:
        raise VideoError(f"{f}: cannot read the frame ({exc.strerror or exc})") from None
    suffix = f.suffix.lower()
    if suffix in (".jpg", ".jpeg") and not data.startswith(b"\xff\xd8"):
        raise VideoError(f"{f}: cannot read the image (not a JPEG)")
    if suffix in (".jpg", ".jpeg") and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise VideoError(f"{f}: the JPEG is cut short or damaged (no end-of-image marker)")
    if suffix == ".png" and not data.startswith(b"\x89PNG"):
        raise VideoError(f"{f}: cannot read the image (not a PNG)")
    if suffix == ".png" and b"IEND" not in data[-16:]:
        raise VideoError(f"{f}: the PNG is cut short or damaged (no IEND chunk)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise VideoError(f"{f}: cannot read the image")
    return image



class FolderSource(_ChunkedSource):
    """A folder of JPEG/PNG frames, in natural order of the numbers in their names.

    DAVIS and YouTube-VOS store frames as ``00000.jpg``; exported frames are often
    ``1.png, 2.png, ..., 10.png``, which a plain sort would misorder. Images are decoded
    with OpenCV in the prefetch thread. ``fps`` is ``DEFAULT_FPS`` unless given.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        chunk_size: int = 16,
        prefetch_chunks: int = 2,
        fps: float | None = None,
    ) -> None:
        p = Path(path)
        if not p.exists():
            raise VideoError(f"{p}: no such folder")
        if not p.is_dir():
            raise VideoError(f"{p}: not a folder")
        super().__init__(str(p), chunk_size, prefetch_chunks)
        files = [f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()]
        if not files:
            raise VideoError(f"{p}: the folder has no .jpg/.jpeg/.png frames")
        self._files = sorted(files, key=lambda f: natural_key(f.name))
        self._fps = float(fps) if fps else DEFAULT_FPS
        self._size: tuple[int, int] = self._read(0, None).shape[:2]  # type: ignore[assignment]

    @property
    def num_frames(self) -> int:
        return len(self._files)

    @property
    def files(self) -> list[Path]:
        """Frame files in frame order."""
        return list(self._files)

    @property
    def frame_names(self) -> list[str]:
        """File stems in frame order ("00000", ...): the names outputs should reuse."""
        return [f.stem for f in self._files]

    def _read(self, index: int, expected_size: tuple[int, int] | None) -> np.ndarray:
        import cv2

        f = self._files[index]
        image = _read_image_file(f, cv2)
        if expected_size is not None and image.shape[:2] != expected_size:
            raise VideoError(f"{f}: frame size {image.shape[1]}x{image.shape[0]} differs from the first "
                             f"frame's {expected_size[1]}x{expected_size[0]} (WxH)")
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))

    def _decode(self, plan: Sequence[range], reverse: bool = False) -> Iterator[list[Frame]]:
        for rng in plan:
            chunk: list[Frame] = []
            for i in rng:
                try:
                    chunk.append((i, self._read(i, self._size)))
                except VideoError:
                    if chunk and not reverse:  # every frame before the bad one, then the error naming it
                        yield chunk
                    raise
            yield chunk


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
        self._fps = float(fps) if fps else DEFAULT_FPS

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
        self._fps = float(fps) if fps else DEFAULT_FPS
        self._position = 0  # index of the next frame the iterator yields
        self._peeked: np.ndarray | None = None
        self._size: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int | None:
        return self._len

    @property
    def fps(self) -> float:
        return self._fps

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
