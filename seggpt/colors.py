"""Colours and constants every part of the project shares (numpy only, no torch).

SegGPT never sees label ids. Prompt masks are RGB images in which every object has a colour,
and the model "paints" the query with the colours it read from the prompt. The colours come from
here, so the whole project paints with one palette:

* :func:`palette` is the fixed palette of the transformers port (the one used at inference),
* :func:`distinct_colors` is the set of colours farthest apart, for few objects,
* :func:`davis_palette` is the PASCAL VOC / DAVIS palette of index PNGs,
* :func:`random_colors` gives the per-sample random colours of in-context colouring training,
* :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD` define the model's input normalisation (the torch
  version for the model lives in ``seggpt.predictor``; :func:`normalize_image` is the numpy one
  that training data uses), and :data:`MAX_OBJECTS` is how many objects an index PNG can hold.

The way back (a predicted canvas to labels) runs on torch tensors on the model's device:
``seggpt.predictor.decode_colors`` and ``seggpt.predictor.denormalize``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "palette",
    "distinct_colors",
    "davis_palette",
    "random_colors",
    "normalize_image",
    "MAX_OBJECTS",
]

#: ImageNet channel statistics (RGB, for images scaled to 0..1) used by SegGPT's pre-processing.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Index PNGs hold ids 0..255 (0 is background), so at most 255 objects.
MAX_OBJECTS = 255

_MEAN_255 = np.array(IMAGENET_MEAN, dtype=np.float32) * 255.0
_STD_255 = np.array(IMAGENET_STD, dtype=np.float32) * 255.0


def normalize_image(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> ``(3, H, W)`` float32, ImageNet-normalised as the model expects."""
    return ((np.asarray(rgb).astype(np.float32) - _MEAN_255) / _STD_255).transpose(2, 0, 1)


def palette(num_labels: int) -> np.ndarray:
    """The SegGPT palette for labels ``0..num_labels`` as a ``(num_labels + 1, 3)`` uint8 array.

    Same colours as transformers' ``SegGptImageProcessor.get_palette`` so that masks we encode
    are the masks the published model was evaluated with: label 0 is black and label ``k``
    takes the cell ``loc = k - 1`` of a ``base**3`` grid over the RGB cube, counted down from
    white, so one object is white (what the official video demo uses) and colours stay as
    far apart as the grid allows.
    """
    if num_labels < 0:
        raise ValueError(f"num_labels must be >= 0, got {num_labels}")
    # Same float expression as the reference: int(64 ** (1/3)) is 3, and that must match.
    base = int(num_labels ** (1 / 3)) + 1
    margin = 256 // base
    loc = np.arange(num_labels, dtype=np.int64)
    out = np.zeros((num_labels + 1, 3), dtype=np.int64)
    out[1:, 0] = 255 - loc // base**2 * margin
    out[1:, 1] = 255 - (loc % base**2) // base * margin
    out[1:, 2] = 255 - loc % base * margin
    return out.astype(np.uint8)


#: black, then the corners of the RGB cube: every pair at least 255 apart
_CUBE_CORNERS = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                          [255, 255, 0], [255, 0, 255], [0, 255, 255]], dtype=np.uint8)


def distinct_colors(num_labels: int) -> np.ndarray:
    """Colours for labels ``0..num_labels`` as far apart as possible, ``(num_labels + 1, 3)`` uint8.

    Black, then white, red, green, blue, yellow, magenta, cyan (the RGB cube's corners, >= 255 apart)
    for up to 7 labels; beyond that the SegGPT palette. Why: SegGPT was trained with random colours,
    so any colours are valid, and the farther apart they are the more a blurred prediction can
    drift before it decodes to the wrong object. The palette's first colours are whites and pale
    tints 128 apart (white, (255,255,127), ...). One label is white either way.
    """
    if num_labels < 0:
        raise ValueError(f"num_labels must be >= 0, got {num_labels}")
    if num_labels < len(_CUBE_CORNERS):
        return _CUBE_CORNERS[: num_labels + 1].copy()
    return palette(num_labels)


def davis_palette() -> np.ndarray:
    """The 256-entry PASCAL VOC / DAVIS palette as a ``(256, 3)`` uint8 array.

    DAVIS 2017 and YouTube-VOS annotations are palette PNGs with these colours; users who
    converted such files to RGB hand us these colours, and index PNGs we write with this
    palette look like the benchmark files. Built by the usual bit-interleaving rule.
    """
    out = np.zeros((256, 3), dtype=np.int64)
    cid = np.arange(256)
    for shift in range(7, -1, -1):
        for ch in range(3):
            out[:, ch] |= ((cid >> ch) & 1) << shift
        cid = cid >> 3
    return out.astype(np.uint8)


def random_colors(
    num_labels: int,
    rng: np.random.Generator,
    min_distance: float = 80.0,
    *,
    tries: int = 256,
    relax: float = 0.8,
) -> np.ndarray:
    """Random, well separated colours for labels ``0..num_labels``: ``(num_labels + 1, 3)`` uint8.

    In-context colouring training maps each sample's objects to fresh random colours so the
    model must read the colour from the prompt instead of memorising one. Colours that are close
    to each other or to the black background would make that task ambiguous, so every colour
    keeps at least ``min_distance`` (Euclidean, 0..255 units) from black and from the others.

    Rejection sampling: up to ``tries`` candidates per label; if none fits, the distance is
    multiplied by ``relax`` and sampling goes on, so it always ends (for any ``num_labels`` up to
    the size of the RGB cube) while keeping colours as far apart as the request allows. Colours
    are always distinct. Deterministic for a given ``rng`` state.
    """
    if num_labels < 0:
        raise ValueError(f"num_labels must be >= 0, got {num_labels}")
    if num_labels >= 256**3:
        raise ValueError(f"cannot draw {num_labels} distinct non-black colours")
    if not 0.0 < relax < 1.0:
        raise ValueError(f"relax must be in (0, 1), got {relax}")
    chosen = np.zeros((num_labels + 1, 3), dtype=np.int64)  # row 0: black background
    needed = float(min_distance)
    batch = 64
    for k in range(1, num_labels + 1):
        taken = chosen[:k]
        drawn = 0
        while True:
            cand = rng.integers(0, 256, size=(batch, 3))
            d2 = ((cand[:, None, :] - taken[None, :, :]) ** 2).sum(-1).min(axis=1)
            # Distinct colours are required whatever the relaxation: distance >= 1.
            ok = np.flatnonzero(d2 >= max(needed, 1.0) ** 2)
            if ok.size:
                chosen[k] = cand[ok[0]]
                break
            drawn += batch
            if drawn >= tries:
                needed *= relax
                drawn = 0
    return chosen.astype(np.uint8)
