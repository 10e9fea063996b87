"""Outputs: index PNGs, overlay videos, a background writer thread, all written atomically.

Why atomic: a segmentation run can be killed at any frame (pre-emption, Ctrl-C, a full
disk). A half-written PNG or mp4 under its final name is worse than none: benchmarks
would score it and resumed runs would skip it. Every file here is written under a
temporary name in the destination folder (same file system, so ``os.replace`` is an
atomic rename) and only renamed once complete.

Why a background writer: PNG and H.264 encoding cost real CPU time per frame; running
them in a thread with a bounded queue overlaps them with inference (both release the
GIL in C code) while keeping at most ``maxsize`` pending frames in memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import tempfile
import threading
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from seggpt.colors import davis_palette  # the project's one DAVIS palette

logger = logging.getLogger(__name__)


class OutputError(OSError):
    """A destination cannot be written; the message names the path."""


# --------------------------------------------------------------------------- atomic files


class _AtomicTarget:
    """A temporary sibling of ``final`` that is either renamed onto it or removed.

    The temporary name keeps the final suffix (PIL and PyAV pick the format from it) and
    starts with a dot so that folder listings and frame globbing ignore it.
    """

    def __init__(self, final: str | os.PathLike) -> None:
        self.final = Path(final)
        parent = self.final.parent
        if not parent.is_dir():
            raise OutputError(f"{self.final}: the folder {parent} does not exist")
        self.tmp = parent / f".{self.final.stem}.{uuid.uuid4().hex[:8]}.tmp{self.final.suffix}"

    def commit(self) -> None:
        if not self.tmp.exists():
            raise OutputError(f"{self.final}: nothing was written to the temporary file {self.tmp.name}")
        try:
            os.replace(self.tmp, self.final)
        except OSError as exc:
            self.discard()
            raise OutputError(f"{self.final}: cannot move the finished file into place ({exc.strerror})") from exc

    def discard(self) -> None:
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:
            logger.warning("could not remove temporary file %s", self.tmp, exc_info=True)


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``final_path``; rename it onto ``final_path`` on success.

    On an exception the temporary file is removed and the exception propagates, so the
    final name either holds a complete file or keeps what it held before.
    """
    target = _AtomicTarget(final_path)
    try:
        yield target.tmp
    except BaseException:
        target.discard()
        raise
    target.commit()


def ensure_output_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (with parents) and check that files can be created in it.

    Checking up front turns a permission problem into one clear error before any
    inference is spent, instead of a failure at the first written frame.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p}: exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{p}: cannot create the folder ({exc.strerror or exc})") from exc
    try:
        fd, probe = tempfile.mkstemp(prefix=".vos-write-test-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{p}: the folder is not writable ({exc.strerror or exc})") from exc
    return p


# --------------------------------------------------------------------------- palettes and PNGs


def _check_palette(palette: np.ndarray | None) -> np.ndarray:
    if palette is None:
        return davis_palette()
    pal = np.asarray(palette)
    if pal.ndim != 2 or pal.shape[1] != 3 or not 1 <= pal.shape[0] <= 256:
        raise ValueError(f"palette must have shape (N, 3) with N <= 256, got {pal.shape}")
    if pal.min() < 0 or pal.max() > 255:
        raise ValueError("palette values must be in 0..255")
    return pal.astype(np.uint8)


def _check_labels(labels: np.ndarray, num_colours: int, where: str) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"{where}: labels must be an (H, W) array, got shape {lab.shape}")
    if lab.dtype == bool:
        lab = lab.astype(np.uint8)
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"{where}: labels must be integers, got {lab.dtype}")
    if lab.size and (lab.min() < 0 or lab.max() >= num_colours):
        raise ValueError(f"{where}: label values must be in 0..{num_colours - 1}, "
                         f"got {lab.min()}..{lab.max()}")
    return lab.astype(np.uint8)


def save_index_png(path: str | os.PathLike, labels: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Write ``labels`` (H, W, ids 0..255) as a palette (mode P) PNG, atomically.

    Mode P is what DAVIS / YouTube-VOS tools read: the pixel value is the object id and
    the palette only colours it for viewers. Compression level 1: label maps compress
    well at any level, and writing speed matters more here.
    """
    from PIL import Image

    pal = _check_palette(palette)
    lab = _check_labels(labels, 256, str(path))
    image = Image.fromarray(lab)  # mode L ...
    image.putpalette(pal.reshape(-1).tolist())  # ... becomes mode P with the palette attached
    try:
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG", compress_level=1)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the PNG ({exc.strerror or exc})") from exc


def read_index_png(path: str | os.PathLike) -> np.ndarray:
    """Read an index PNG (palette P, grayscale L/1, 16-bit I) as an (H, W) uint8 array of ids (palette ignored).

    ValueError (one line, naming the file) for colour images, whose colours need the mask parser's
    decisions (seggpt.masks), and for ids that do not fit in 0..255.
    """
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in ("P", "L", "1", "I", "I;16"):
            raise ValueError(f"{path}: not an index PNG (mode {image.mode}, expected P, L or I)")
        labels = np.array(image)
    if labels.max(initial=0) > 255:
        raise ValueError(f"{path}: label {int(labels.max())} does not fit in 0..255")
    return labels.astype(np.uint8)


# --------------------------------------------------------------------------- overlays


def overlay(
    frame: np.ndarray,
    labels: np.ndarray,
    palette: np.ndarray | None = None,
    alpha: float = 0.5,
    contour: bool = True,
) -> np.ndarray:
    """Blend object colours into an RGB frame, with a one-pixel contour in the full colour.

    Background (0) pixels are untouched. The contour is the inner boundary of each
    object (a pixel whose 3x3 neighbourhood holds another id), found for all objects at
    once by a morphological gradient on the label map, so the cost does not grow with
    the number of objects.
    """
    import cv2

    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"overlay: frame must be an HxWx3 uint8 array, got {frame.shape} {frame.dtype}")
    pal = _check_palette(palette)
    lab = _check_labels(labels, len(pal), "overlay")
    if lab.shape != frame.shape[:2]:
        raise ValueError(f"overlay: labels {lab.shape} and frame {frame.shape[:2]} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay: alpha must be in [0, 1], got {alpha}")
    out = frame.copy()
    fg = lab > 0
    if not fg.any():
        return out
    colours = pal[lab[fg]].astype(np.float32)
    out[fg] = np.clip((1.0 - alpha) * frame[fg] + alpha * colours + 0.5, 0, 255).astype(np.uint8)
    if contour:
        kernel = np.ones((3, 3), np.uint8)
        edge = (cv2.dilate(lab, kernel) != cv2.erode(lab, kernel)) & fg
        out[edge] = pal[lab[edge]]
    return out


# --------------------------------------------------------------------------- overlay video


def _mpeg4_quantizer(crf: int) -> int:
    """Map an x264 CRF to a fixed MPEG-4 Part 2 quantizer of similar look (CRF 23 -> q 5)."""
    return int(min(31, max(2, round(crf / 5))))


class OverlayVideoWriter:
    """Write RGB frames to an H.264 mp4 (MPEG-4 Part 2 where libx264 is missing), atomically.

    Frames go to a hidden temporary file in the destination folder, renamed onto
    ``path`` by ``close()``; ``abort()`` (or an exception inside ``with``) removes it.

    yuv420p (the pixel format every player decodes) needs even width and height: odd
    sizes are padded by one row/column replicating the edge, so no pixel of the source
    is lost; ``output_size`` gives the (H, W) actually written.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        size: tuple[int, int],
        codec: str = "libx264",
        crf: int = 23,
    ) -> None:
        import av

        self.path = Path(path)
        h, w = (int(v) for v in size)
        if h < 1 or w < 1:
            raise ValueError(f"{self.path}: frame size must be positive, got {size}")
        if not fps or fps <= 0:
            raise ValueError(f"{self.path}: fps must be positive, got {fps}")
        self.size = (h, w)
        self.output_size = (h + h % 2, w + w % 2)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.frames_written = 0
        self._target = _AtomicTarget(self.path)
        try:
            self._container = av.open(str(self._target.tmp), mode="w")
        except (av.error.FFmpegError, ValueError) as exc:
            self._target.discard()
            raise OutputError(f"{self.path}: cannot create the video ({getattr(exc, 'strerror', None) or exc})") from exc
        try:
            self._stream, self.codec = self._add_stream(av, codec, crf)
        except BaseException:
            self._container.close()
            self._target.discard()
            raise
        self._closed = False

    def _add_stream(self, av: Any, codec: str, crf: int) -> tuple[Any, str]:
        try:
            options = {"crf": str(int(crf))} if codec == "libx264" else {}
            stream = self._container.add_stream(codec, rate=self.rate, options=options)
        except (av.codec.codec.UnknownCodecError, ValueError, av.error.FFmpegError) as exc:
            if codec == "mpeg4":
                raise OutputError(f"{self.path}: no usable video encoder ({exc})") from exc
            logger.warning("%s: encoder %s unavailable (%s), writing MPEG-4 Part 2 instead", self.path, codec, exc)
            codec = "mpeg4"
            stream = self._container.add_stream(codec, rate=self.rate)
        if codec == "mpeg4":  # fixed quantizer: mpeg4 has no CRF, and its default bit rate is tiny
            q = _mpeg4_quantizer(crf)
            stream.codec_context.qmin = q
            stream.codec_context.qmax = q
        stream.height, stream.width = self.output_size
        stream.pix_fmt = "yuv420p"
        return stream, codec

    def write(self, frame: np.ndarray) -> None:
        """Append one H x W x 3 uint8 RGB frame (H, W as given at construction)."""
        import av

        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")
        frame = np.asarray(frame)
        if frame.shape != (*self.size, 3) or frame.dtype != np.uint8:
            raise ValueError(f"{self.path}: expected a {self.size[0]}x{self.size[1]}x3 uint8 frame, "
                             f"got {frame.shape} {frame.dtype}")
        pad_h, pad_w = self.output_size[0] - self.size[0], self.output_size[1] - self.size[1]
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        try:
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        except av.error.FFmpegError as exc:
            self.abort()
            raise OutputError(f"{self.path}: encoding failed ({exc.strerror or exc})") from exc
        self.frames_written += 1

    def close(self) -> Path:
        """Flush the encoder, finish the file and move it to ``path``. Returns ``path``."""
        import av

        if self._closed:
            return self.path
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise OutputError(f"{self.path}: finishing the video failed ({getattr(exc, 'strerror', None) or exc})") from exc
        self._closed = True
        self._target.commit()
        return self.path

    def abort(self) -> None:
        """Stop writing and remove the temporary file; ``path`` is left untouched."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            logger.debug("closing aborted container %s failed", self._target.tmp, exc_info=True)
        self._target.discard()

    def __enter__(self) -> "OverlayVideoWriter":
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --------------------------------------------------------------------------- background writer

_STOP = object()


class BackgroundWriter:
    """Run submitted callables (file writes) in order on one thread, behind a bounded queue.

    ``submit`` blocks while ``maxsize`` tasks are pending (back-pressure keeps memory
    bounded when the disk is slower than inference). After the first error, later tasks
    are skipped and ``submit`` raises it at once; ``close()`` waits for the queue to
    drain and re-raises it.
    """

    def __init__(self, maxsize: int = 16, name: str = "vos-writer") -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def error(self) -> BaseException | None:
        """The first exception a task raised, if any."""
        return self._error

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            if task is _STOP:
                return
            if self._error is not None:
                continue
            fn, args, kwargs = task
            try:
                fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the submitting thread
                self._error = exc

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``fn(*args, **kwargs)``; blocks while the queue is full."""
        if self._closed:
            raise RuntimeError("BackgroundWriter.submit after close()")
        if self._error is not None:
            raise self._error
        self._queue.put((fn, args, kwargs))

    def close(self) -> None:
        """Wait for every queued task, stop the thread, re-raise the first task error."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # the body's exception wins; a writer error is only logged
            self.close()
        except BaseException:  # noqa: BLE001
            logger.error("background writer also failed", exc_info=True)
