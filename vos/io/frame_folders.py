"""Folders of frame images as a frame source: JPEG/PNG files in the natural order of their names.

A folder is one of the inputs ``vos.io.video.open_source`` opens (DAVIS and YouTube-VOS store their videos
so). Damaged input: a truncated or unreadable image, or a frame of another size than the first, ends the
stream after every frame before it, with one ``VideoError`` naming the file (as ``vos.io.decoders`` does
for video files).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from seggpt.errors import VideoError
from vos.io.sources import IMAGE_EXTENSIONS, ChunkedSource, Frame, given_fps, natural_key

__all__ = ["FolderSource"]


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


class FolderSource(ChunkedSource):
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
        self._fps = given_fps(fps)
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
