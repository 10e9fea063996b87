"""Video-specific writing: the overlay video and a background writer thread.

Every file goes through the project's one writer layer, ``seggpt.io`` (atomic writes, index
PNGs, overlays, the mp4 encoder); this module adds what a video run needs on top of it:

* :class:`OverlayVideoWriter`: an mp4 of the frames with their labels blended in;
* :class:`BackgroundWriter`: PNG and H.264 encoding cost real CPU time per frame; running them
  in a thread with a bounded queue overlaps them with inference (both release the GIL in C
  code) while keeping at most ``maxsize`` pending frames in memory.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any, Callable

import numpy as np

from seggpt.io import Mp4Writer, overlay

__all__ = ["OverlayVideoWriter", "BackgroundWriter"]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- overlay video


class OverlayVideoWriter(Mp4Writer):
    """An mp4 of frames with their labels blended in (:func:`seggpt.io.overlay`), written atomically.

    ``write_labels(frame, labels)`` composes and appends one frame; ``write(frame)`` appends a
    frame as it is. Everything else (odd sizes padded, codec fallback, ``close``/``abort``) is
    :class:`seggpt.io.Mp4Writer`'s.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        size: tuple[int, int],
        palette: np.ndarray | None = None,
        alpha: float = 0.5,
        codec: str = "libx264",
        crf: int = 23,
    ) -> None:
        super().__init__(path, fps, size, codec=codec, crf=crf)
        self.palette = palette
        self.alpha = alpha

    def write_labels(self, frame: np.ndarray, labels: np.ndarray) -> None:
        """Blend ``labels`` into ``frame`` with the writer's palette and append the result."""
        self.write(overlay(frame, labels, self.palette, self.alpha))


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
