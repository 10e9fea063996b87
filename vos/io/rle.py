"""COCO run-length encoding of the objects' masks, and the entries of the RLE JSON (`vos.io.exports`).

RLE JSON (`--rle OUT.json`), COCO's run-length encoding per object per frame (pycocotools, the
`coco` extra)::

    {"format": "seggpt-vos-rle", "version": 1, "video": "judo", "width": 854, "height": 480,
     "fps": 24.0, "num_frames": 16,
     "objects": [{"id": 1, "name": "object 1", "prompt_frames": [0], "frames": 16,
                  "empty_frames": [[3, 5]], "empty": 3, "longest_empty_run": 3, "lost": false}, ...],
     "frames": [{"frame_idx": 0, "name": "00000",
                 "objects": [{"id": 1, "segmentation": {"size": [480, 854], "counts": "..."},
                              "area": 5321, "bbox": [x, y, w, h], "score": 0.97}, ...]}, ...]}

Each frame lists the objects that exist there (from the first frame each is given on; before it an
object is absent and not listed); an empty object has area 0, bbox null and score null. ``score`` is
the mean of `FrameResult.confidence` over the object's pixels (1 on masks the user gave).
``empty_frames`` are inclusive [first, last] ranges.
"""
from __future__ import annotations

from typing import Iterable, List, Mapping, Optional

import numpy as np

from seggpt.errors import InputError

RLE_FORMAT = "seggpt-vos-rle"
RLE_VERSION = 1


def _mask_utils():
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        raise InputError("RLE output needs pycocotools: pip install 'seggpt-vos[coco]'") from None
    return mask_utils


def require_rle() -> None:
    """InputError (one line naming the extra) where pycocotools is missing: check before any inference."""
    _mask_utils()


def rle_encode(mask: np.ndarray) -> dict:
    """(H, W) bool -> COCO compressed RLE {"size": [H, W], "counts": str} (pycocotools' encoding)."""
    rle = _mask_utils().encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_decode(rle: Mapping) -> np.ndarray:
    """The inverse of `rle_encode`: (H, W) bool."""
    r = {"size": list(rle["size"]), "counts": rle["counts"].encode("ascii") if isinstance(rle["counts"], str)
         else rle["counts"]}
    import warnings

    with warnings.catch_warnings():  # pycocotools' own numpy 2 DeprecationWarning (copy=False), not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        return _mask_utils().decode(r).astype(bool)


def _bbox(mask: np.ndarray) -> Optional[List[int]]:
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(ys):
        return None
    return [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)]


def frame_objects_rle(labels: np.ndarray, confidence: Optional[np.ndarray], object_ids: Iterable[int],
                      scores: Optional[Mapping[int, Optional[float]]] = None) -> List[dict]:
    """The RLE JSON entries of one frame (module docstring) for the objects `object_ids`; `scores`, where
    given, are the objects' scores already computed (else the mean confidence over each object)."""
    out = []
    for o in object_ids:
        m = labels == o
        area = int(m.sum())
        score = None
        if area and scores is not None:
            score = scores.get(o)
        elif area and confidence is not None:
            score = round(float(confidence[m].mean()), 4)
        out.append({"id": int(o), "segmentation": rle_encode(m), "area": area, "bbox": _bbox(m), "score": score})
    return out


__all__ = ["RLE_FORMAT", "RLE_VERSION", "require_rle", "rle_encode", "rle_decode", "frame_objects_rle"]
