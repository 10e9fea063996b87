"""The matte video: every object's alpha in one grey video, written and read back.

Matte video (`--matte OUT`): the alpha of every object together (per pixel the largest) as a grey
video at the source fps: ``.mkv`` is FFV1 (lossless, 8-bit grey: reads back exactly), ``.mov`` is
ProRes 4444 (``prores_ks``, 10-bit 4:4:4 with alpha: the matte is the picture and the alpha channel;
ProRes is not lossless: it reads back within a few levels of 255).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Tuple

import numpy as np

from seggpt.errors import InputError
from seggpt.io import VideoFileWriter

MATTE_SUFFIXES = (".mkv", ".mov")


def check_matte_path(path: str | os.PathLike) -> None:
    """InputError unless `path` names a container the matte writer writes (checked before any inference)."""
    if Path(path).suffix.lower() not in MATTE_SUFFIXES:
        raise InputError(f"{path}: a matte video is .mkv (FFV1, lossless) or .mov (ProRes 4444)")


class MatteVideoWriter(VideoFileWriter):
    """Grey mattes (H, W) uint8 -> a lossless FFV1 .mkv or a ProRes 4444 .mov, atomically (module docstring)."""

    what = "matte video"

    def __init__(self, path: str | os.PathLike, fps: float, size: Tuple[int, int]) -> None:
        check_matte_path(path)
        if not fps or fps <= 0:
            raise InputError(f"{path}: fps must be positive, got {fps}")
        self.prores = Path(path).suffix.lower() == ".mov"
        super().__init__(path, fps, size)

    def _add_stream(self, av: Any) -> Any:
        codec, options, pix_fmt = (("prores_ks", {"profile": "4"}, "yuva444p10le") if self.prores
                                   else ("ffv1", {"level": "3"}, "gray"))
        stream = self._container.add_stream(codec, rate=self.rate, options=options)
        stream.pix_fmt = pix_fmt
        stream.height, stream.width = self.size
        return stream

    def _to_frame(self, av: Any, matte: np.ndarray) -> Any:
        if matte.shape != self.size or matte.dtype != np.uint8:
            raise ValueError(f"{self.path}: expected a {self.size[0]}x{self.size[1]} uint8 matte, "
                             f"got {matte.shape} {matte.dtype}")
        if self.prores:
            return av.VideoFrame.from_ndarray(np.ascontiguousarray(np.dstack([matte] * 4)), format="rgba")
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(matte), format="gray")


def read_matte(path: str | os.PathLike) -> np.ndarray:
    """A matte video back as (T, H, W) uint8 (the alpha channel of a ProRes 4444 file, the grey of FFV1)."""
    import av

    with av.open(str(path)) as c:
        out = [f.to_ndarray(format="rgba")[:, :, 3] if f.format.name.startswith("yuva") else f.to_ndarray(format="gray")
               for f in c.decode(video=0)]
    return np.stack(out) if out else np.zeros((0, 0, 0), np.uint8)


__all__ = ["MATTE_SUFFIXES", "MatteVideoWriter", "check_matte_path", "read_matte"]
