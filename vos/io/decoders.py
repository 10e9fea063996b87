"""Frame sources that read video files (decord, PyAV); folders of frame images are ``vos.io.frame_folders``.

Backends: decord is preferred for video files (fast accurate random access with
``get_batch``); PyAV is the fallback where decord is not installed or cannot open a
file. Both are imported lazily so that the other one (and folders, arrays) keep working
when one is missing.

Damaged inputs: a video that ends early or cannot be decoded at some frame (a truncated or unreadable
image, a frame of another size in a folder, likewise): every frame before it is yielded, then one
``VideoError`` names the frame (the CLIs: one line, exit code 2). The decoders' own C-level logging
never reaches the terminal: every FFmpeg the process has loaded (decord and PyAV each bundle their
own) is set to its quiet log level once it is imported (:func:`silence_ffmpeg`), and decord's calls run
with file descriptor 2 captured, its own lines dropped (the first one goes into our message). The
level matters because decord decodes in its own threads, which write whenever they meet damage,
not only while we call it. fd 2 belongs to the process, so what other threads write during a capture is
held and passed on when it ends; the interpreter's exit waits for a capture in progress first.

Rotation: frames come out as a player shows them. A video whose display matrix rotates it (phones)
is decoded with PyAV and each frame turned by the stream's rotation; decord ignores or mangles that
matrix, so ``backend="auto"`` never picks it for such a file and ``backend="decord"`` refuses one.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import sys
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from seggpt.errors import InputError, VideoError, check_input_file


from vos.io.sources import DEFAULT_FPS, IMAGE_EXTENSIONS, ChunkedSource, Frame, to_rgb
from vos.io.frame_folders import FolderSource  # noqa: F401  (vos.decoders.FolderSource in release 0.2)

# --------------------------------------------------------------------------- decoder logging

_FD2_LOCK = threading.Lock()
#: lines of decord's and its FFmpeg's C-level logging ("[12:00:00] /src/...cc:83: ...", "[mov,mp4 @ 0x...] ...")
_DECODER_LINE = re.compile(r"^\s*\[(\d\d:\d\d:\d\d|[\w,-]+ @ 0x[0-9a-f]+)\]")


#: the capture in progress: (fd 2 as it was, the file fd 2 points at meanwhile); None when none is.
#: Taken (set to None) under _CAPTURE_LOCK by whoever ends it: the capturing thread or the exit.
_CAPTURE: tuple[int, Any] | None = None
_CAPTURE_LOCK = threading.Lock()
#: how long the interpreter's exit waits for a decoder thread's capture to end before taking fd 2 back
EXIT_WAIT_S = 10.0
#: set at the interpreter's exit: no capture starts any more (a decoder thread still running decodes uncaptured)
_EXITING = False


@contextlib.contextmanager
def quiet_fd2(captured: list[str] | None = None) -> Iterator[None]:
    """Run C code with file descriptor 2 captured: decoder log lines are dropped (kept in ``captured``),
    anything else written meanwhile (another thread's progress bar, a CLI's last line) is passed on
    when the capture ends, however it ends. fd 2 belongs to the whole process, so a capture in a
    decoder thread also holds what the main thread writes; `_end_captures_at_exit` makes sure the
    interpreter does not exit with that text still held."""
    global _CAPTURE
    with _FD2_LOCK:
        if _EXITING:
            yield
            return
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2 (embedded interpreters)
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            with _CAPTURE_LOCK:
                _CAPTURE = (saved, sink)
            try:
                yield
            finally:
                if _take_capture() is not None:  # else the exit took fd 2 back (a decoder stuck past EXIT_WAIT_S)
                    _release(saved, sink, captured)


def _take_capture() -> tuple[int, Any] | None:
    global _CAPTURE
    with _CAPTURE_LOCK:
        capture, _CAPTURE = _CAPTURE, None
    return capture


def _release(saved: int, sink: Any, captured: list[str] | None) -> None:
    """Point fd 2 back where it was, then write there what the capture held, less the decoder lines."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    sink.seek(0)
    lines = sink.read().decode("utf-8", "replace").splitlines(keepends=True)
    if captured is not None:
        captured.extend(line.strip() for line in lines if _DECODER_LINE.match(line))
    kept = [line for line in lines if not _DECODER_LINE.match(line)]
    if kept:
        with contextlib.suppress(OSError):
            os.write(2, "".join(kept).encode())


def _end_captures_at_exit() -> None:
    """At interpreter exit (atexit runs while daemon threads still run): wait for a decoder thread's
    capture to end and pass on what it held (a CLI's 'interrupted: ...' line, written while the
    prefetch thread decoded, was lost when the process ended first); no capture starts after it
    (`_EXITING`; the lock is released again: a decoder thread waiting for it, joined by a finaliser,
    must not hang the exit). A decoder stuck past EXIT_WAIT_S: fd 2 is taken back from it here."""
    global _EXITING
    if _FD2_LOCK.acquire(timeout=EXIT_WAIT_S):
        _EXITING = True
        _FD2_LOCK.release()
        return
    _EXITING = True
    capture = _take_capture()
    if capture is not None:
        _release(*capture, None)


atexit.register(_end_captures_at_exit)


_SILENCED: set[str] = set()
_AV_LOG_QUIET = -8  # libavutil/log.h: AV_LOG_QUIET


def silence_ffmpeg() -> None:
    """Set FFmpeg's log level to quiet in every copy of libavutil this process has loaded (Linux: read from
    /proc/self/maps; elsewhere nothing is done and `quiet_fd2` alone applies). Safe to call often."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "libavutil" in line and "/" in line}
    except OSError:
        return
    import ctypes

    for path in paths - _SILENCED:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(path).av_log_set_level(_AV_LOG_QUIET)
        _SILENCED.add(path)


def display_rotation(path: str | os.PathLike) -> int:
    """Degrees counter-clockwise the player turns a video's frames (its display matrix): 0, 90, 180 or 270.

    Read by PyAV from the first decoded frame; 0 where PyAV is missing or cannot tell.
    """
    try:
        import av
    except ImportError:
        return 0
    silence_ffmpeg()
    try:
        with av.open(str(path)) as container:  # quiet by silence_ffmpeg, not quiet_fd2: a stuck decoder could hold its lock
            if not container.streams.video:
                return 0
            for frame in container.decode(video=0):
                return int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) * 90 % 360
    except Exception:  # noqa: BLE001 - unreadable: the decoder that opens it reports why
        return 0
    return 0


def _rotate(frame: np.ndarray, degrees: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(frame, degrees // 90)) if degrees else frame



# --------------------------------------------------------------------------- video files

#: still-image formats: given as "the video", they are refused with a pointer to seggpt.run
STILL_IMAGE_SUFFIXES = (*IMAGE_EXTENSIONS, ".bmp", ".webp", ".tif", ".tiff", ".gif")


def check_video_file(path: str | os.PathLike) -> Path:
    """A regular file (a FIFO or a device is refused before any decoder opens it: it would block)."""
    try:
        p = check_input_file(path, "video file")
    except InputError as e:
        raise VideoError(str(e)) from None
    if p.suffix.lower() in STILL_IMAGE_SUFFIXES:
        raise VideoError(f"{p}: an image, not a video; segment images with python -m seggpt.run, or give a "
                         f"folder of frames (a one-frame video is a folder holding one image)")
    return p


class VideoFileSource(ChunkedSource):
    """A video file, checked to exist, then opened by its decoder (`_open`: decord or PyAV)."""

    def __init__(self, path: str | os.PathLike, chunk_size: int = 16, prefetch_chunks: int = 2,
                 num_threads: int = 0) -> None:
        p = check_video_file(path)
        super().__init__(str(p), chunk_size, prefetch_chunks)
        self._num_frames = self._open(p, int(num_threads))
        if self._num_frames == 0:
            raise VideoError(f"{p}: the video has no frames")

    @property
    def num_frames(self) -> int:
        return self._num_frames

    def _open(self, p: Path, num_threads: int) -> int:
        """Open the file: its size and rate; returns its frame count (VideoError, naming the file, when it cannot)."""
        raise NotImplementedError

    def _damaged(self, index: int, reason: str) -> VideoError:
        """The error that ends a stream at a frame that cannot be decoded."""
        return VideoError(f"{self.name}: frame {index} cannot be decoded ({reason}); "
                          f"the video is damaged or ends early ({self._num_frames} frames expected)")


class DecordSource(VideoFileSource):
    """A video file decoded by decord: one ``get_batch`` per chunk, in the prefetch thread.

    One ``VideoReader`` per source, guarded by a lock: decord readers are not thread-safe,
    and two concurrent iterations of the same source would otherwise share one decoder.
    """

    def _open(self, p: Path, num_threads: int) -> int:
        try:
            decord = import_decord()
        except ImportError as exc:
            raise VideoError(f"{p}: decord is not installed (use backend='pyav')") from exc
        silence_ffmpeg()
        rotation = display_rotation(p)
        if rotation:
            raise VideoError(f"{p}: the video carries a display rotation ({rotation} degrees counter-clockwise), "
                             "which decord does not honour; decode it with PyAV (backend='pyav' or 'auto')")
        try:
            with quiet_fd2():
                reader = decord.VideoReader(str(p), ctx=decord.cpu(0), num_threads=num_threads)
                n = len(reader)
                h, w = reader[0].shape[:2] if n else (0, 0)
                fps = float(reader.get_avg_fps())
        except Exception as exc:  # decord raises RuntimeError or DECORDError, with C++ log text
            raise VideoError(f"{p}: cannot open as a video with decord ({_first_line(exc)})") from exc
        self._reader = reader
        self._lock = threading.Lock()
        self._size = (int(h), int(w))
        self._fps = fps if fps > 0 else DEFAULT_FPS
        return n

    def _open_reader(self) -> Any:
        """The decord reader (call under ``self._lock``); VideoError once the source is closed."""
        if self._reader is None:
            raise VideoError(f"{self.name}: the source is closed")
        return self._reader

    def _decode(self, plan: Sequence[range], reverse: bool = False) -> Iterator[list[Frame]]:
        for rng in plan:
            try:
                with self._lock, quiet_fd2():
                    batch = _as_array(self._open_reader().get_batch(list(rng)))
            except VideoError:  # the source is closed
                raise
            except Exception as error:  # frame by frame: every frame before the bad one is yielded, then it is named
                good: list[Frame] = []
                for i in rng:
                    try:
                        with self._lock, quiet_fd2():
                            frame = _as_array(self._open_reader()[i])
                    except VideoError:
                        raise
                    except Exception as exc:
                        if good and not reverse:
                            yield good
                        raise self._damaged(i, _first_line(exc)) from exc
                    good.append((i, to_rgb(frame, self.name)))
                raise VideoError(f"{self.name}: decoding frames {rng.start}-{rng.stop - 1} failed "
                                 f"({_first_line(error)})") from error
            yield [(i, to_rgb(batch[k], self.name)) for k, i in enumerate(rng)]

    def _release(self) -> None:
        with self._lock:
            self._reader = None


class PyAVSource(VideoFileSource):
    """A video file decoded by PyAV (FFmpeg), with the same chunked prefetch as decord.

    Each iteration opens its own container inside its prefetch thread: PyAV containers
    are not thread-safe, and a private container lets two iterations run side by side.
    Seeking goes to the keyframe at or before the first wanted frame, then decodes
    forwards and drops frames before it. Frame indices come from the first decoded
    frame's pts after a seek and are counted from there on (exact for constant frame
    rate, the norm for the videos this engine reads).
    """

    def _open(self, p: Path, num_threads: int) -> int:
        self._num_threads = num_threads
        av = _import_av(p)
        try:
            with av.open(str(p)) as container:
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
        return n

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
                    for frame in itertools.islice(frames, rng.stop - next_index):  # fewer where the video ends
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
                    raise self._damaged(max(next_index, rng.start), reason)
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
                container.seek(self._start_pts, stream=stream, backward=True, any_frame=False)
            return iter(container.decode(stream)), 0
        target = self._start_pts + round(start / self._rate / self._time_base)
        container.seek(target, stream=stream, backward=True, any_frame=False)
        frames = iter(container.decode(stream))
        first = next(frames, None)
        if first is None or first.pts is None or self._pts_to_index(first.pts) > start:
            # No timestamps, or the demuxer overshot: decode from the beginning instead.
            container.seek(self._start_pts, stream=stream, backward=True, any_frame=False)
            return iter(container.decode(stream)), 0
        return itertools.chain([first], frames), self._pts_to_index(first.pts)


def _as_array(frames: Any) -> np.ndarray:
    """decord's frames as numpy (it returns torch tensors where someone set decord.bridge to torch)."""
    return frames.asnumpy() if hasattr(frames, "asnumpy") else np.asarray(frames)


def import_decord() -> Any:
    """decord, with PyAV's FFmpeg loaded before it where PyAV is installed (ImportError without decord).

    decord bundles its own FFmpeg libraries; loaded first, they broke PyAV's VP8 and VP9 encoders in the
    same process ("encoding failed (Invalid argument)": the app's WebM playback), while PyAV loaded first
    and decord after both work."""
    with contextlib.suppress(ImportError):
        import av  # noqa: F401 - the load order is the point
    import decord

    return decord


def _import_av(where: str | os.PathLike) -> Any:
    try:
        import av
    except ImportError as exc:
        raise VideoError(f"{where}: PyAV (av) is not installed") from exc
    silence_ffmpeg()
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
        line = re.sub(r"^(\[[\d:]+\] \S+:\d+: )+", "", line.strip())  # decord nests its headers
        line = re.sub(r"^Check failed: .*?\(-?\d+ vs\. -?\d+\)\s*", "", line) or line  # the C++ assertion, then decord's own words
        if line:
            return line
    return type(exc).__name__
