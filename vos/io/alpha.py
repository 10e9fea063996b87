"""Alpha mattes of the objects, hard or soft, and the PNGs that carry them (0/255 grey, RGBA).

Alpha, hard and soft (`--soft`):
* hard: 255 where the pixel's label is the object, else 0 (the index PNGs exactly);
* soft: from the model's per-object scores at frame resolution (`FrameResult.margins`: the object's
  score minus the best other label's, normalised to [-1, 1], positive exactly on the object), mapped
  linearly around the decision boundary: ``alpha = clip(0.5 + margin / (2 * width), 0, 1)``, width
  0.2 by default (`--soft-width`, at least 0.001). So alpha is 0.5 on the boundary, 1 where the margin is >= width,
  0 where it is <= -width, and ``alpha >= 128`` gives back the hard mask (ties aside). Masks given by
  the user are hard (margin 1). The model works at a low resolution (448x448, or 64x64 for our small
  model) and its scores are resized bilinearly, so the edge is as soft as one model pixel is wide.

RGBA PNG layout (`--alpha DIR`): with one object, ``DIR/<frame>.png``; with several, one folder per
object, ``DIR/<id:03d>/<frame>.png``. RGB is the frame, A the object's alpha.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from seggpt.errors import InputError
from seggpt.io import save_png

DEFAULT_SOFT_WIDTH = 0.2
#: the narrowest soft edge (a score margin): narrower is a hard edge, and 1 / (2 width) overflows near 0
MIN_SOFT_WIDTH = 1e-3


def hard_alpha(labels: np.ndarray, object_ids: Sequence[int]) -> np.ndarray:
    """(N, H, W) uint8: 255 where the label is the object, else 0."""
    ids = np.asarray(list(object_ids), dtype=np.int64).reshape(-1, 1, 1)
    return ((np.asarray(labels)[None] == ids) * 255).astype(np.uint8)


def soft_alpha(margins: np.ndarray, width: float = DEFAULT_SOFT_WIDTH) -> np.ndarray:
    """Margins in [-1, 1] (`FrameResult.margins`) -> uint8 alpha: ``clip(0.5 + margin / (2 width), 0, 1)``."""
    if not MIN_SOFT_WIDTH <= width <= 1:
        raise InputError(f"soft width must be in [{MIN_SOFT_WIDTH:g}, 1], got {width}")
    a = np.clip(0.5 + np.asarray(margins, np.float32) / (2.0 * width), 0.0, 1.0)
    return np.rint(a * 255.0).astype(np.uint8)


def margins_of_alpha(alpha: np.ndarray, width: float = DEFAULT_SOFT_WIDTH) -> np.ndarray:
    """The inverse of `soft_alpha`: margins that it maps back to `alpha` exactly (the centres of its uint8
    steps), for results kept as alpha only (the web app's session)."""
    return (np.asarray(alpha, np.float32) / 255.0 - 0.5) * 2.0 * width


def result_alpha(result, soft: bool, width: float = DEFAULT_SOFT_WIDTH) -> np.ndarray:
    """(N, H, W) uint8 alpha of every object of a FrameResult, hard or soft (module docstring)."""
    return soft_alpha(result.margins, width) if soft else hard_alpha(result.labels, result.object_ids)


# --------------------------------------------------------------------------- PNGs


def save_object_png(path: str | os.PathLike, mask: np.ndarray) -> None:
    """One object's mask as an 8-bit grey PNG holding 0 and 255 (every tool reads 255 as 'in')."""
    from PIL import Image

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"{path}: a mask must be (H, W), got {m.shape}")
    save_png(path, Image.fromarray(np.where(m.astype(bool), 255, 0).astype(np.uint8), mode="L"))


def save_rgba_png(path: str | os.PathLike, frame: np.ndarray, alpha: np.ndarray) -> None:
    """RGB frame + (H, W) uint8 alpha -> an RGBA PNG."""
    from PIL import Image

    f, a = np.asarray(frame), np.asarray(alpha)
    if f.ndim != 3 or f.shape[2] != 3 or a.shape != f.shape[:2]:
        raise ValueError(f"{path}: frame {f.shape} and alpha {a.shape} do not match")
    save_png(path, Image.fromarray(np.dstack([f.astype(np.uint8), a.astype(np.uint8)]), mode="RGBA"))


def alpha_path(folder: Path, obj_id: int, frame_name: str, several: bool) -> Path:
    """Where an RGBA PNG goes (the layout of the module docstring)."""
    return (folder / f"{obj_id:03d}" / f"{frame_name}.png") if several else folder / f"{frame_name}.png"


__all__ = ["DEFAULT_SOFT_WIDTH", "MIN_SOFT_WIDTH", "hard_alpha", "soft_alpha", "margins_of_alpha", "result_alpha",
           "save_object_png", "save_rgba_png", "alpha_path"]
