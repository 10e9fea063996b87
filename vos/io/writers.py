"""Video-specific writing: the overlay video and a background writer thread.

Every file goes through the project's one writer layer, ``seggpt.io`` (atomic writes, index
PNGs, overlays, the mp4 encoder); this module adds what a video run needs on top of it:

* :class:`OverlayVideoWriter`: an mp4 of the frames with their labels blended in;
* :class:`PlaybackWriter`: the same in an encoding a browser's ``<video>`` plays (the app's playback):
  the overlay falls back to MPEG-4 Part 2 where libx264 is missing, which no browser plays, so the
  playback picks from H.264, VP9 and VP8 what this FFmpeg encodes and the page says it plays
  (:func:`playable_encoding`);
* :class:`BackgroundWriter`: PNG and H.264 encoding cost real CPU time per frame; running them
  in a thread with a bounded queue overlaps them with inference (both release the GIL in C
  code) while keeping at most ``maxsize`` pending frames in memory.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any, Callable, Collection, NamedTuple, Optional

import numpy as np

from seggpt.io import Mp4Writer, OutputError, overlay

__all__ = ["OverlayVideoWriter", "PlaybackWriter", "PlayableEncoding", "PLAYABLE_ENCODINGS", "playable_encoding",
           "BackgroundWriter"]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- overlay video


class OverlayVideoWriter(Mp4Writer):
    """An mp4 of frames with their labels blended in (:func:`seggpt.io.overlay`), written atomically.

    ``write_labels(frame, labels)`` composes and appends one frame; ``write(frame)`` appends a
    frame as it is. Everything else (odd sizes padded, codec fallback, ``close``/``abort``) is
    :class:`seggpt.io.Mp4Writer`'s.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], palette: np.ndarray | None = None,
                 alpha: float = 0.5, codec: str = "libx264", crf: int = 23) -> None:
        super().__init__(path, fps, size, codec=codec, crf=crf)
        self.palette = palette
        self.alpha = alpha

    def write_labels(self, frame: np.ndarray, labels: np.ndarray) -> None:
        """Blend ``labels`` into ``frame`` with the writer's palette and append the result."""
        self.write(overlay(frame, labels, self.palette, self.alpha))


# --------------------------------------------------------------------------- playback in a browser


class PlayableEncoding(NamedTuple):
    """An encoding a browser's ``<video>`` element plays."""

    name: str  # what the page reports it plays
    suffix: str  # the container, by file suffix
    encoder: str  # FFmpeg's encoder
    mime: str  # what the page asks ``HTMLMediaElement.canPlayType`` about
    options: dict  # the encoder's options: fast enough for a preview, good enough to judge masks by


#: best first: H.264 plays everywhere (Safari and iOS included) where the browser has the codec (builds of
#: Chromium without proprietary codecs do not); VP9 and VP8 in WebM play in Chromium and Firefox
PLAYABLE_ENCODINGS = (
    PlayableEncoding("h264", ".mp4", "libx264", 'video/mp4; codecs="avc1.640028"', {"crf": "23", "preset": "veryfast"}),
    PlayableEncoding("vp9", ".webm", "libvpx-vp9", 'video/webm; codecs="vp9"',
                     {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "32", "b": "0"}),
    PlayableEncoding("vp8", ".webm", "libvpx", 'video/webm; codecs="vp8"',
                     {"deadline": "realtime", "cpu-used": "8", "crf": "10", "b": "2M"}),
)


def _has_encoder(name: str) -> bool:
    import av

    try:
        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001 - UnknownCodecError, or a build without it
        return False
    return True


def playable_encoding(plays: Optional[Collection[str]] = None) -> PlayableEncoding:
    """The first of `PLAYABLE_ENCODINGS` this FFmpeg encodes and the browser plays (`plays`: the names the
    page reported; None: any). OutputError, saying which were tried, where there is none."""
    for enc in PLAYABLE_ENCODINGS:
        if (plays is None or enc.name in plays) and _has_encoder(enc.encoder):
            return enc
    have = [e.name for e in PLAYABLE_ENCODINGS if _has_encoder(e.encoder)]
    raise OutputError(f"no encoding both this browser and this FFmpeg play: the browser plays "
                      f"{', '.join(sorted(plays or [])) or 'none of them'}, FFmpeg encodes {', '.join(have) or 'none'} "
                      f"(of {', '.join(e.name for e in PLAYABLE_ENCODINGS)}); open the app in Chrome or Firefox")


class PlaybackWriter(OverlayVideoWriter):
    """An overlay video in a `PlayableEncoding` (its suffix on `path`); no fallback to an encoding the
    browser cannot play."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], encoding: PlayableEncoding,
                 palette: np.ndarray | None = None) -> None:
        self.encoding = encoding
        super().__init__(path, fps, size, palette=palette, codec=encoding.encoder)

    def _add_stream(self, av: Any) -> Any:
        stream = self._container.add_stream(self.encoding.encoder, rate=self.rate, options=dict(self.encoding.options))
        stream.height, stream.width = self.output_size
        stream.pix_fmt = "yuv420p"
        return stream


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
        for task in iter(self._queue.get, _STOP):
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
        try:
            self.close()
        except BaseException:  # noqa: BLE001
            if exc_type is None:
                raise
            logger.error("background writer also failed", exc_info=True)  # the body's exception wins
