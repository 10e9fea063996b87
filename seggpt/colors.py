"""Colour coding for SegGPT: label maps <-> RGB masks.

SegGPT never sees label ids. Prompt masks are RGB images in which every object has a colour,
and the model "paints" the query with the colours it read from the prompt. This module owns
that translation in both directions, so the whole project uses one palette and one decoder:

* :func:`palette` is the fixed palette of the transformers port (the one used at inference),
* :func:`random_colors` gives the per-sample random colours of in-context colouring training,
* :func:`labels_to_rgb` paints a label map, :func:`decode_colors` reads a predicted canvas
  back (nearest colour plus a distance that serves as a per-pixel confidence),
* :func:`denormalize` undoes the ImageNet normalisation of the model's output canvas.

Encoding works on numpy (data loading happens there); decoding works on torch tensors on any
device and in batches, because it runs on the model output before anything leaves the GPU.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "palette",
    "distinct_colors",
    "davis_palette",
    "labels_to_rgb",
    "decode_colors",
    "denormalize",
    "random_colors",
]

#: ImageNet channel statistics (RGB, for images scaled to 0..1) used by SegGPT's pre-processing.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Colours per chunk in decode_colors: bounds the temporary to (B, chunk, H, W) floats.
_DECODE_CHUNK = 16


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
    idx = np.arange(256)
    out = np.zeros((256, 3), dtype=np.int64)
    cid = idx.copy()
    for shift in range(7, -1, -1):
        for ch in range(3):
            out[:, ch] |= ((cid >> ch) & 1) << shift
        cid = cid >> 3
    return out.astype(np.uint8)


def labels_to_rgb(labels: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Paint an ``(H, W)`` integer label map with ``colors[label]``; returns ``(H, W, 3)`` uint8."""
    labels = np.asarray(labels)
    colors = np.asarray(colors)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an (H, W) integer array, got {labels.dtype} {labels.shape}")
    if colors.ndim != 2 or colors.shape[1] != 3:
        raise ValueError(f"colors must be (L, 3), got {colors.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(colors)):
        raise ValueError(
            f"labels span {labels.min()}..{labels.max()} but only {len(colors)} colours are given"
        )
    return colors.astype(np.uint8)[labels]


def decode_colors(rgb: torch.Tensor, colors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-colour decoding of predicted RGB canvases.

    Args:
        rgb: ``(B, 3, H, W)`` float in 0..255 (see :func:`denormalize`), any device.
        colors: ``(L, 3)`` colours of labels ``0..L-1`` (any numeric dtype).

    Returns:
        ``labels`` ``(B, H, W)`` long: the index of the nearest colour (squared L2), and
        ``distance`` ``(B, H, W)`` float32: the Euclidean distance (0..255 units) from the pixel
        to that colour. The model paints objects with the prompt colours, so a small distance
        means a confident pixel; a pixel half-way between two colours is ambiguous.

    The squared distance is expanded as ``|x|^2 - 2 x.c + |c|^2`` over chunks of colours, so the
    temporary is ``(B, chunk, H, W)`` and never ``(B, L, H, W, 3)``. The expansion loses a little
    precision, so the returned distance is recomputed exactly for the chosen colour.
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must be (B, 3, H, W), got {tuple(rgb.shape)}")
    if colors.ndim != 2 or colors.shape[1] != 3 or colors.shape[0] == 0:
        raise ValueError(f"colors must be a non-empty (L, 3), got {tuple(colors.shape)}")
    x = rgb.float()
    c = colors.to(device=x.device, dtype=torch.float32)
    x_sq = (x * x).sum(dim=1)  # (B, H, W)
    best = torch.full_like(x_sq, float("inf"))
    labels = torch.zeros(x_sq.shape, dtype=torch.long, device=x.device)
    for start in range(0, c.shape[0], _DECODE_CHUNK):
        chunk = c[start : start + _DECODE_CHUNK]
        cross = torch.einsum("bchw,lc->blhw", x, chunk)
        sq = x_sq.unsqueeze(1) - 2.0 * cross + (chunk * chunk).sum(dim=1).view(1, -1, 1, 1)
        chunk_best, chunk_arg = sq.min(dim=1)
        better = chunk_best < best  # strict: ties keep the lower label, like argmin
        best = torch.where(better, chunk_best, best)
        labels = torch.where(better, chunk_arg + start, labels)
    chosen = c[labels].permute(0, 3, 1, 2)  # (B, 3, H, W)
    distance = (x - chosen).pow(2).sum(dim=1).sqrt()
    return labels, distance


def denormalize(pred: torch.Tensor) -> torch.Tensor:
    """Map an ImageNet-normalised ``(B, 3, H, W)`` RGB prediction back to 0..255 (clipped).

    The model regresses the normalised target canvas; colours are compared in 0..255 units.
    Computed in float32 (the model may run in half precision; colour distances should not).
    """
    if pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"pred must be (B, 3, H, W), got {tuple(pred.shape)}")
    p = pred.float()
    mean = torch.tensor(IMAGENET_MEAN, device=p.device, dtype=p.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=p.device, dtype=p.dtype).view(1, 3, 1, 1)
    return ((p * std + mean) * 255.0).clamp_(0.0, 255.0)


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
