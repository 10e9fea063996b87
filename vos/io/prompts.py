"""Masks the user gives, read from files: one mask (`--first-mask`) or a folder of them (`--masks DIR`).

A folder holds `<frame>.png` files, YouTube-VOS's and Cutie's `--mask_dir` layout: the stem is a
frame's file stem (frame folders) or a frame index (`00005.png` or `5.png` is frame 5). Each mask is a
label map (palette PNG, 0/255 grey or RGB colours: `seggpt.masks.load_mask`); 0 means "not given", so
a mask may hold only the objects new on that frame, or corrections. A file that holds no object is
skipped with a warning.

Sizes (one rule for every mask; the message names the file):
* the frame's size: used as it is;
* at most 2 pixels off in width and/or height (an odd-size export or a crop, e.g. Cutie's judo
  example, whose `00005.png` is 853 pixels wide against 854-pixel frames): padded with 0 ("not
  given") or cut at the right and bottom, never rescaled, so every pixel stays where it was drawn
  (a warning says so; the cut columns or rows must hold no object);
* otherwise the same aspect ratio (within 1%): resized with nearest neighbour (a warning);
* otherwise: an error.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from seggpt.errors import InputError
from seggpt.masks import load_mask

MAX_PAD = 2  # pixels a mask may be short or long per axis and be padded or cut instead of resized


#: the name of this module's errors (a mask that cannot be used): an alias of InputError (the README names it)
PromptError = InputError


def fit_mask(labels: np.ndarray, size: Tuple[int, int], where: str,
             log: Optional[logging.Logger] = None) -> np.ndarray:
    """A label map at frame size by the rules of the module docstring."""
    log = log or logging.getLogger(__name__)
    h, w = size
    mh, mw = labels.shape
    if (mh, mw) == (h, w):
        return labels
    if abs(mh - h) <= MAX_PAD and abs(mw - w) <= MAX_PAD:
        if labels[h:, :].any() or labels[:, w:].any():
            raise InputError(f"{where}: mask is {mw}x{mh}, frames are {w}x{h}, and the extra rows or columns "
                             "hold an object")
        out = np.zeros((h, w), labels.dtype)
        ch, cw = min(h, mh), min(w, mw)
        out[:ch, :cw] = labels[:ch, :cw]
        log.warning("%s: mask is %dx%d, frames are %dx%d: %s at the right/bottom with 'not given' (0), not "
                    "resized", where, mw, mh, w, h, "padded" if mh <= h and mw <= w else "cut or padded")
        return out
    if abs(mh / mw - h / w) > 0.01:
        raise InputError(f"{where}: mask is {mw}x{mh} but the frames are {w}x{h} (a different aspect ratio)")
    log.warning("%s: mask is %dx%d, frames are %dx%d: resized with nearest neighbour", where, mw, mh, w, h)
    out = cv2.resize(labels.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
    if not out.any():
        raise InputError(f"{where}: the mask is empty after resizing to the frame size")
    return out


def read_mask(path: str | Path, size: Tuple[int, int], log: Optional[logging.Logger] = None,
              allow_empty: bool = False) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """One mask file -> (label map at frame size, its palette or None)."""
    log = log or logging.getLogger(__name__)
    parsed = load_mask(path, allow_empty=allow_empty)
    for warning in parsed.warnings:
        log.warning("%s: %s", path, warning)
    if not parsed.labels.any():
        return np.zeros(size, np.int32), parsed.palette
    return fit_mask(parsed.labels, size, str(path), log), parsed.palette


def frame_of(stem: str, frame_names: Optional[Sequence[str]], num_frames: Optional[int], where: str) -> int:
    """The frame a mask file names: a frame's file stem first, else an integer index."""
    if frame_names and stem in frame_names:
        return list(frame_names).index(stem)
    if stem.isdigit():
        idx = int(stem)
        if num_frames is not None and idx >= num_frames:
            raise InputError(f"{where}: frame {idx} is out of range (the video has {num_frames} frames)")
        return idx
    raise InputError(f"{where}: '{stem}' is neither a frame's file name nor a frame index")


def read_mask_folder(folder: str | Path, size: Tuple[int, int], frame_names: Optional[Sequence[str]],
                     num_frames: Optional[int], log: Optional[logging.Logger] = None
                     ) -> Tuple[Dict[int, np.ndarray], Optional[np.ndarray]]:
    """`--masks DIR` -> ({frame index: label map}, the first mask's palette or None)."""
    log = log or logging.getLogger(__name__)
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of masks")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
    if not files:
        raise InputError(f"{folder}: no .png masks in the folder")
    masks: Dict[int, np.ndarray] = {}
    palette = None
    names: Dict[int, str] = {}
    for p in files:
        idx = frame_of(p.stem, frame_names, num_frames, str(p))
        if idx in masks:
            raise InputError(f"{p}: frame {idx} has a second mask ({names[idx]})")
        labels, pal = read_mask(p, size, log, allow_empty=True)
        if not labels.any():
            log.warning("%s: the mask holds no object: skipped", p)
            continue
        masks[idx], names[idx] = labels, p.name
        palette = pal if palette is None else palette  # the first mask's that has one
    if not masks:
        raise InputError(f"{folder}: every mask is empty")
    return dict(sorted(masks.items())), palette


def prompt_frames(masks: Dict[int, np.ndarray]) -> Dict[int, List[int]]:
    """{object id: the frames it is given on, in order}."""
    out: Dict[int, List[int]] = {}
    for idx in sorted(masks):
        for o in np.unique(masks[idx]):
            if o > 0:
                out.setdefault(int(o), []).append(idx)
    return out


__all__ = ["PromptError", "fit_mask", "read_mask", "read_mask_folder", "frame_of", "prompt_frames", "MAX_PAD"]
