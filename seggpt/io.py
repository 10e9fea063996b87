"""The files every part of the project reads and writes: label PNGs, overlays, mp4s (no torch).

* :func:`atomic_path` (and :func:`atomic_write_text`) is the one way a file is written: under a
  temporary name in the destination folder, renamed onto its final name once complete.
* :func:`read_label_png` reads index PNGs (datasets, results); :func:`save_index_png` writes them,
  :func:`save_object_pngs` writes one binary PNG per object.
* :func:`overlay` blends labels into a frame; :class:`Mp4Writer` (and :func:`write_mp4` for a whole
  clip) encodes frames to an mp4.

Why atomic: a run can be killed at any frame (pre-emption, Ctrl-C, a full disk). A half-written
PNG or mp4 under its final name is worse than none: benchmarks would score it and resumed runs
would skip it. The temporary file sits in the destination folder (same file system, so
``os.replace`` is an atomic rename) and is removed on any exception, ``KeyboardInterrupt``
included, so the final name holds either a complete file or what it held before.

User masks in any format are parsed by ``seggpt.masks``; this module reads only index PNGs, whose
pixel values are the ids.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .colors import davis_palette
from .errors import InputError, OutputError, check_input_file

__all__ = ["OutputError", "atomic_path", "atomic_write_text", "ensure_output_dir", "read_image", "read_label_png",
           "save_index_png", "save_object_pngs", "overlay", "Mp4Writer", "write_mp4"]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- atomic files


def _temporary_sibling(final: Path) -> Path:
    """A fresh hidden name next to ``final`` that keeps its suffix (PIL and PyAV pick the format from it).

    The leading dot keeps it out of folder listings and frame globbing.
    """
    if not final.parent.is_dir():
        raise OutputError(f"{final}: the folder {final.parent} does not exist")
    return final.parent / f".{final.stem}.{uuid.uuid4().hex[:8]}.tmp{final.suffix}"


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        logger.warning("could not remove temporary file %s", tmp, exc_info=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp: Path, final: Path, fsync: bool) -> None:
    """Rename the finished ``tmp`` onto ``final``; with ``fsync`` its data and the rename reach the disk."""
    if not tmp.exists():
        raise OutputError(f"{final}: nothing was written to the temporary file {tmp.name}")
    if fsync:
        _fsync(tmp)
    try:
        os.replace(tmp, final)
    except OSError as exc:
        raise OutputError(f"{final}: cannot move the finished file into place ({exc.strerror})") from exc
    if fsync:
        with contextlib.suppress(OSError):  # not every platform or file system syncs a folder
            _fsync(final.parent)


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final_path``; rename it onto ``final_path`` on success.

    The folder must exist (:class:`OutputError` otherwise). On any exception, ``KeyboardInterrupt``
    included, the temporary file is removed and the exception propagates. ``fsync=True`` flushes
    the file and the rename to the disk (for files that must survive a power cut, e.g. checkpoints).
    """
    final = Path(final_path)
    tmp = _temporary_sibling(final)
    try:
        yield tmp
        _commit(tmp, final, fsync)
    except BaseException:
        _discard(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` through :func:`atomic_path`."""
    path = Path(path)
    with atomic_path(path, fsync=fsync) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    return path


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


# --------------------------------------------------------------------------- label PNGs


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, or InputError naming it. A FIFO or a device would block the
    reader: refused before it is opened (`check_input_file`)."""
    check_input_file(path, "image")  # a missing file or a folder too
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"{path}: not a readable image ({e.__class__.__name__})") from None


def read_label_png(path: str | os.PathLike, binary: bool = False) -> np.ndarray:
    """Read an index PNG (palette P, grayscale L/1, 16-bit I) as an ``(H, W)`` uint8 map of ids.

    The palette is ignored: the pixel value is the id. ``binary=True`` gives the DAVIS 2016
    convention: every non-zero pixel is object 1. :class:`~seggpt.errors.InputError` (one line,
    naming the file) for a missing or unreadable file, for colour images (their colours need the
    decisions of the mask parser, :func:`seggpt.masks.load_mask`) and for ids above 255.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: annotation file not found")
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L", "1", "I", "I;16"):
                raise InputError(f"{path}: not an index PNG (mode {image.mode}, expected P, L or I)")
            labels = np.array(image)
    except OSError as err:  # UnidentifiedImageError and truncated files are OSErrors
        raise InputError(f"{path}: cannot read image ({err})") from None
    if labels.max(initial=0) > 255:
        raise InputError(f"{path}: label {int(labels.max())} does not fit in 0..255")
    labels = labels.astype(np.uint8)
    return (labels > 0).astype(np.uint8) if binary else labels


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

    Mode P is what DAVIS / YouTube-VOS tools read: the pixel value is the object id and the
    palette (default: the DAVIS palette) only colours it for viewers. Compression level 1:
    label maps compress well at any level, and writing speed matters more here. The folder
    must exist (:class:`OutputError` otherwise).
    """
    pal = _check_palette(palette)
    lab = _check_labels(labels, 256, str(path))
    image = Image.fromarray(lab)  # mode L ...
    image.putpalette(pal.reshape(-1).tolist())  # ... becomes mode P with the palette attached
    save_png(path, image)


def save_png(path: str | os.PathLike, image: Image.Image) -> None:
    """Write a PIL image as a PNG, atomically; OutputError (one line naming the file) when it cannot.

    Compression level 1: masks and mattes compress well at any level, and writing speed matters more.
    """
    try:
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG", compress_level=1)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the PNG ({exc.strerror or exc})") from exc


#: palette of per-object PNGs: 0 black, 1 white
_BINARY_PALETTE = np.zeros((256, 3), np.uint8)
_BINARY_PALETTE[1] = 255


def save_object_pngs(folder: str | os.PathLike, name: str, labels: np.ndarray,
                     object_ids: Sequence[int]) -> list[Path]:
    """One binary PNG per object: ``<folder>/<id as 3 digits>/<name>.png``, 1 (white) on the object.

    Palette PNGs with ids 0/1, written atomically; the per-object folders are created. Returns the paths.
    """
    labels = np.asarray(labels)
    paths = []
    for obj in object_ids:
        path = Path(folder) / f"{int(obj):03d}" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_index_png(path, (labels == obj).astype(np.uint8), _BINARY_PALETTE)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- overlays


def overlay(frame: np.ndarray, labels: np.ndarray, palette: np.ndarray | None = None, alpha: float = 0.5,
            contour: bool = True) -> np.ndarray:
    """Blend object colours into an RGB frame, with a one-pixel contour in the full colour.

    Background (0) pixels are untouched. The contour is the inner boundary of each
    object (a pixel whose 3x3 neighbourhood holds another id), found for all objects at
    once by a morphological gradient on the label map, so the cost does not grow with
    the number of objects.
    """
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


# --------------------------------------------------------------------------- mp4


def _mpeg4_quantizer(crf: int) -> int:
    """Map an x264 CRF to a fixed MPEG-4 Part 2 quantizer of similar look (CRF 23 -> q 5)."""
    return int(min(31, max(2, round(crf / 5))))


def _av() -> Any:
    """PyAV, imported on first use: it loads FFmpeg's libraries, which only video writing needs."""
    import av

    return av


class VideoFileWriter:
    """An encoded video written atomically: the one way this project writes a video file.

    Frames go to a hidden temporary file in the destination folder, renamed onto ``path`` by
    ``close()``; ``abort()`` (or an exception inside ``with``) removes it, and ``path`` is left as it
    was. Subclasses choose the codec (``_add_stream``) and turn an array into a frame (``_to_frame``):
    :class:`Mp4Writer` here, the matte writer of ``vos.io.matte``.
    """

    what = "video"

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]) -> None:
        av = _av()
        self.path = Path(path)
        h, w = (int(v) for v in size)
        if h < 1 or w < 1:
            raise ValueError(f"{self.path}: frame size must be positive, got {size}")
        if not fps or fps <= 0:
            raise ValueError(f"{self.path}: fps must be positive, got {fps}")
        self.size = (h, w)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.frames_written = 0
        self._closed = True  # until the stream exists: abort() has nothing to close
        self._tmp = _temporary_sibling(self.path)
        try:
            self._container = av.open(str(self._tmp), mode="w")
        except (av.error.FFmpegError, ValueError) as exc:
            _discard(self._tmp)
            raise OutputError(f"{self.path}: cannot create the {self.what} ({getattr(exc, 'strerror', None) or exc})") from exc
        try:
            self._stream = self._add_stream(av)
        except BaseException as exc:
            self._container.close()
            _discard(self._tmp)
            if isinstance(exc, (av.error.FFmpegError, ValueError)) and not isinstance(exc, OutputError):
                raise OutputError(f"{self.path}: cannot create the {self.what} ({exc})") from exc
            raise
        self._closed = False

    def _add_stream(self, av: Any) -> Any:
        """Add and configure the video stream of ``self._container``; return it."""
        raise NotImplementedError

    def _to_frame(self, av: Any, frame: np.ndarray) -> Any:
        """One array, checked, as an ``av.VideoFrame`` of the stream's size."""
        raise NotImplementedError

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (what the subclass takes, at the size given at construction)."""
        av = _av()
        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")
        video_frame = self._to_frame(av, np.asarray(frame))
        try:
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        except av.error.FFmpegError as exc:
            self.abort()
            raise OutputError(f"{self.path}: encoding failed ({exc.strerror or exc})") from exc
        self.frames_written += 1

    def close(self) -> Path:
        """Flush the encoder, finish the file and move it to ``path``. Returns ``path``."""
        av = _av()
        if self._closed:
            return self.path
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise OutputError(f"{self.path}: finishing the {self.what} failed "
                              f"({getattr(exc, 'strerror', None) or exc})") from exc
        self._closed = True
        try:
            _commit(self._tmp, self.path, fsync=False)
        except BaseException:
            _discard(self._tmp)
            raise
        return self.path

    def abort(self) -> None:
        """Stop writing and remove the temporary file; ``path`` is left untouched."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            logger.debug("closing aborted container %s failed", self._tmp, exc_info=True)
        _discard(self._tmp)

    def __enter__(self) -> "VideoFileWriter":
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class Mp4Writer(VideoFileWriter):
    """Write RGB frames to an H.264 mp4 (MPEG-4 Part 2 where libx264 is missing), atomically.

    Odd sizes are padded, never refused or cropped: yuv420p (the pixel format every player
    decodes) needs even width and height, so an odd size gets one more row/column that
    replicates the edge; no pixel of the source is lost. ``output_size`` is the (H, W) written.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], codec: str = "libx264",
                 crf: int = 23) -> None:
        h, w = (int(v) for v in size)
        self.output_size = (h + h % 2, w + w % 2)
        self.codec, self.crf = codec, int(crf)
        super().__init__(path, fps, size)

    def _add_stream(self, av: Any) -> Any:
        codec = self.codec
        try:
            options = {"crf": str(self.crf)} if codec == "libx264" else {}
            stream = self._container.add_stream(codec, rate=self.rate, options=options)
        except (av.codec.codec.UnknownCodecError, ValueError, av.error.FFmpegError) as exc:
            if codec == "mpeg4":
                raise OutputError(f"{self.path}: no usable video encoder ({exc})") from exc
            logger.warning("%s: encoder %s unavailable (%s), writing MPEG-4 Part 2 instead", self.path, codec, exc)
            codec = "mpeg4"
            stream = self._container.add_stream(codec, rate=self.rate)
        if codec == "mpeg4":  # fixed quantizer: mpeg4 has no CRF, and its default bit rate is tiny
            stream.codec_context.qmin = stream.codec_context.qmax = _mpeg4_quantizer(self.crf)
        stream.height, stream.width = self.output_size
        stream.pix_fmt = "yuv420p"
        self.codec = codec
        return stream

    def _to_frame(self, av: Any, frame: np.ndarray) -> Any:
        if frame.shape != (*self.size, 3) or frame.dtype != np.uint8:
            raise ValueError(f"{self.path}: expected a {self.size[0]}x{self.size[1]}x3 uint8 frame, "
                             f"got {frame.shape} {frame.dtype}")
        pad_h, pad_w = self.output_size[0] - self.size[0], self.output_size[1] - self.size[1]
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")


def write_mp4(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 24, crf: int = 18) -> Path:
    """Encode RGB uint8 frames (H, W, 3), streamed from any iterable, with :class:`Mp4Writer`.

    The first frame sets the size (odd sizes are padded, see :class:`Mp4Writer`); every frame must
    have it. The folder is created. ValueError for bad or no frames, and nothing is left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: Mp4Writer | None = None
    try:
        for frame in frames:
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"{path}: frames must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
            if writer is None:
                writer = Mp4Writer(path, fps, frame.shape[:2], crf=crf)
            writer.write(frame)
        if writer is None:
            raise ValueError(f"{path}: no frames to write")
        return writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
