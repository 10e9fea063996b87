"""Cleaning anti-aliased, blurred, resized or compressed colour masks into their real regions.

``seggpt.masks`` parses user masks; when a mask's colours are not a few flat regions but blends along
every edge (anti-aliasing, blur, resizing, JPEG), this module decides that (:func:`needs_cleaning`),
refuses an image that is a photo rather than a mask (:func:`refuse_photo`), and reduces the mask to
its regions (:func:`clean_colors`) so that an edge never becomes extra objects. numpy and OpenCV only
(the torch-free layer).
"""

from __future__ import annotations

import cv2
import numpy as np

from .colors import MAX_OBJECTS
from .errors import InputError

__all__ = ["clean_colors", "flat_pixels", "needs_cleaning", "pack", "refuse_photo", "unpack"]

# A pixel is a blend when it lies on the segment between its two opposite neighbours within
# this distance (0..255 units): rounding of the three channels alone moves it by about 1.
_BLEND_TOL = 4.0
# A colour mask, even anti-aliased, blurred, resized or JPEG-compressed, is mostly flat regions (>= 0.72 of
# the pixels in every DAVIS and Cutie mask so treated, down to 1/4 size and blurred); a photo is not
# (0.02 to 0.43 on DAVIS, Cutie and SegGPT example frames). Below this share a colour image is refused.
_MIN_FLAT_SHARE = 0.55
_MIN_PIXELS_FOR_PHOTO_CHECK = 128 * 128  # smaller: too few pixels to tell (a heavily blurred 72x96 mask is 30% flat)

# When cleaning, region colours closer than this are one object (compression noise and the
# near-saturated plateau of a blurred edge, e.g. 254 next to 255). Palettes in use are farther
# apart: DAVIS colours >= 64, the SegGPT palette for 255 labels 36.
_MERGE_TOL = 24.0
# When cleaning, a pixel is inside a region when its 3x3 neighbours differ by at most this much
# per channel (blur and JPEG move flat areas by a level or two; an edge changes much faster).
_FLAT_TOL = 2
# When cleaning, a group of fewer flat pixels than this whose colour mixes two larger groups is
# a flat spot inside a heavily blurred transition, not an object.
_MIN_SEEDS = 9
# When cleaning, an edge pixel is unmixed only between regions at most this many pixels farther
# away than the nearest region: a blend next to a red object never joins a dark-red object
# elsewhere in the image.
_SEARCH_SLACK = 8.0
# When cleaning, a blend pixel is unmixed between pairs of its this many nearest regions.
_CANDIDATES = 3


def pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def unpack(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.int64)
    return np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], axis=-1).astype(np.uint8)


def _interior(keys: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has their exact value: the inside of real regions.

    Anti-aliasing produces thin bands in which the value changes from pixel to pixel, so its
    colours have (almost) no interior pixels; every object worth prompting with has some.
    """
    return flat_pixels(keys[..., None], tol=0)


def _blends(img: np.ndarray) -> np.ndarray:
    """Pixels lying strictly between their two opposite neighbours, in some direction.

    This is what anti-aliasing, blurring, resizing and alpha edges produce: a mix of the colours
    on either side. A hard-edged mask has none, except a one-pixel-wide structure whose colour
    happens to lie between its neighbours' colours. ``img`` is ``(H, W, C)`` float.
    """
    h, w = img.shape[:2]
    padded = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")  # border: a neighbour equals c
    out = np.zeros((h, w), dtype=bool)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        p = padded[1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]
        q = padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        v = q - p
        cp = img - p
        vv = (v * v).sum(-1)
        t_num = (cp * v).sum(-1)  # projection of c on the segment, times |v|^2
        resid2_vv = (cp * cp).sum(-1) * vv - t_num * t_num  # distance to the line^2, times |v|^2
        out |= (
            (vv > 0)
            & np.any(img != p, axis=-1)
            & np.any(img != q, axis=-1)
            & (t_num > 0)
            & (t_num < vv)
            & (resid2_vv <= (_BLEND_TOL**2) * vv)
        )
    return out


def needs_cleaning(img: np.ndarray, keys: np.ndarray | None = None) -> bool:
    """True when the mask has anti-aliasing colours: no interior, mostly blends of neighbours.

    Every anti-aliased, blurred, resized or compressed edge has such colours. A clean mask has
    none: its colours have interior pixels or, for a thin object, pixels that are not blends,
    except a sliver whose colour happens to lie between the colours on both of its sides along
    most of its length, which is rare enough to accept.
    """
    if keys is None:
        keys = img[..., 0].astype(np.int64)
    blend = _blends(img)
    if not blend.any():
        return False
    colors, inverse = np.unique(keys.ravel(), return_inverse=True)
    inverse = inverse.ravel()
    has_interior = np.zeros(len(colors), dtype=bool)
    has_interior[inverse[_interior(keys).ravel()]] = True
    total = np.bincount(inverse, minlength=len(colors))
    blends = np.bincount(inverse[blend.ravel()], minlength=len(colors))
    return bool(np.any(~has_interior & (2 * blends >= total)))


def refuse_photo(flat: np.ndarray, name: str) -> None:
    """InputError when too few pixels are flat (`flat_pixels`) for the image to be a mask (``_MIN_FLAT_SHARE``)."""
    if flat.size >= _MIN_PIXELS_FOR_PHOTO_CHECK and flat.mean() < _MIN_FLAT_SHARE:
        raise InputError(f"{name}: does not look like a mask: only {flat.mean():.0%} of its pixels lie in regions of "
                         "one colour (a photo?); give a mask image (palette, grey, or flat colours on black)")


def flat_pixels(rgb: np.ndarray, tol: int = _FLAT_TOL) -> np.ndarray:
    """Pixels whose 3x3 neighbours all differ from them by at most ``tol`` per channel.

    The inside of an object is flat even after blurring or JPEG compression (which move exact
    values by a level or two); an anti-aliased band changes much faster than that across it.
    """
    h, w = rgb.shape[:2]
    a = rgb.astype(np.int32)  # int32: 16-bit grey images and packed colours too
    padded = np.pad(a, ((1, 1), (1, 1), (0, 0)), mode="edge")
    flat = np.ones((h, w), dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                flat &= np.abs(padded[dy : dy + h, dx : dx + w] - a).max(axis=-1) <= tol
    return flat


def _along(c: np.ndarray, a: np.ndarray, b: np.ndarray, clip: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour ``c`` as a mix of colours ``a`` and ``b``: ``(t, distance, |b - a|^2)``.

    ``t`` is where ``c`` projects on the line from ``a`` (0) to ``b`` (1), kept within the segment
    with ``clip``; ``distance`` is how far ``c`` lies from that point. Shapes broadcast (``(..., 3)``).
    """
    v = b - a
    vv = (v * v).sum(-1)
    t = ((c - a) * v).sum(-1) / np.maximum(vv, 1e-6)
    if clip:
        t = np.clip(t, 0.0, 1.0)
    return t, np.linalg.norm(a + t[..., None] * v - c, axis=-1), vv


def _not_transitions(colors: np.ndarray, sizes: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Which groups to keep: drops tiny groups that are flat spots inside a blurred transition.

    Heavy blur leaves isolated flat spots in transitions (the saddle between two nearby objects,
    a narrow gap inside one): a few flat pixels whose colour mixes two no smaller groups that
    both lie within ``2 * _SEARCH_SLACK`` px. A real object has at least ``_MIN_SEEDS`` flat
    pixels, or a colour that is no such mix of its neighbours. ``seeds`` is the group of every
    flat pixel (-1 elsewhere).
    """
    keep = np.ones(len(colors), dtype=bool)
    for g in np.argsort(sizes, kind="stable"):
        if sizes[g] >= _MIN_SEEDS:
            break
        others = keep & (sizes >= sizes[g])
        others[g] = False
        if others.sum() < 2:
            continue
        away = cv2.distanceTransform((seeds != g).astype(np.uint8), cv2.DIST_L2, 3)
        near = away <= 2 * _SEARCH_SLACK
        others &= np.isin(np.arange(len(colors)), seeds[near & (seeds >= 0)])
        candidates = np.flatnonzero(others)
        for i, a in enumerate(candidates):
            t, resid, vv = _along(colors[g], colors[a], colors[candidates[i + 1 :]])
            if np.any((vv > 0) & (t > 0) & (t < 1) & (resid <= 2 * _BLEND_TOL)):
                keep[g] = False
                break
    return keep


def _grow(rgb: np.ndarray, group_colors: np.ndarray, group_of_pixel: np.ndarray) -> None:
    """Grow each group from its seeds through connected pixels of (nearly) its colour, in place.

    Compression noise leaves few flat pixels inside an object; the rest of the object is still
    within ``_MERGE_TOL`` of its colour and connected to them. Growing only through connected
    pixels keeps a blend that happens to look like another object's colour out of that object.
    """
    img = rgb.astype(np.float32)
    best = np.full(group_of_pixel.shape, np.inf, dtype=np.float32)
    nearest = np.zeros(group_of_pixel.shape, dtype=np.int64)
    for g, color in enumerate(group_colors.astype(np.float32)):
        d = np.linalg.norm(img - color, axis=-1)
        better = d < best
        best[better] = d[better]
        nearest[better] = g
    free = (group_of_pixel < 0) & (best <= _MERGE_TOL)
    if not free.any():
        return
    for g in np.unique(nearest[free]):
        seeds = group_of_pixel == g
        n, comp = cv2.connectedComponents((seeds | (free & (nearest == g))).astype(np.uint8), connectivity=8)
        reached = np.zeros(n, dtype=bool)
        reached[comp[seeds]] = True
        reached[0] = False  # component 0 is the outside of the mask
        group_of_pixel[free & (nearest == g) & reached[comp]] = g


def _unmix(rgb: np.ndarray, group_colors: np.ndarray, group_of_pixel: np.ndarray) -> None:
    """Give every unassigned pixel (a blend) to the region it is mostly made of, in place.

    An anti-aliased pixel is a mix ``t * A + (1 - t) * B`` of the two regions it lies between.
    Candidates are the ``_CANDIDATES`` groups nearest in space (and at most ``_SEARCH_SLACK`` px
    farther than the nearest); the pair that explains the colour best (smallest distance to
    the segment between their colours) wins, and the pixel goes to the end it is closer to.
    Plain nearest-colour assignment would give the dark edge of any object to a dark object
    nearby; unmixing gives it to the background it fades into.
    """
    ys, xs = np.nonzero(group_of_pixel < 0)
    if not len(ys):
        return
    k = min(_CANDIDATES, len(group_colors))
    cand_d = np.full((len(ys), k), np.inf, dtype=np.float32)  # spatial distance, ascending
    cand_g = np.zeros((len(ys), k), dtype=np.int64)
    for g in range(len(group_colors)):  # running k-nearest groups: memory O(pixels * k)
        d = cv2.distanceTransform((group_of_pixel != g).astype(np.uint8), cv2.DIST_L2, 3)[ys, xs]
        all_d = np.concatenate([cand_d, d[:, None]], axis=1)
        all_g = np.concatenate([cand_g, np.full((len(ys), 1), g)], axis=1)
        order = np.argsort(all_d, axis=1, kind="stable")[:, :k]
        cand_d = np.take_along_axis(all_d, order, axis=1)
        cand_g = np.take_along_axis(all_g, order, axis=1)
    usable = cand_d <= cand_d[:, :1] + _SEARCH_SLACK
    c = rgb[ys, xs].astype(np.float32)
    col = group_colors.astype(np.float32)
    best = np.full(len(ys), np.inf, dtype=np.float32)
    choice = cand_g[:, 0].copy()
    for i in range(k):
        for j in range(i, k):  # j == i: the colour of one group alone
            ok = usable[:, i] & usable[:, j]
            t, resid, _ = _along(c, col[cand_g[:, i]], col[cand_g[:, j]], clip=True)
            better = ok & (resid < best)
            best[better] = resid[better]
            choice[better] = np.where(t <= 0.5, cand_g[:, i], cand_g[:, j])[better]
    group_of_pixel[ys, xs] = choice


def clean_colors(rgb: np.ndarray, keys: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Reduce an anti-aliased / blurred / compressed colour mask to its real regions.

    1. Seed pixels: flat pixels (see :func:`flat_pixels`), the insides of regions.
    2. Seed colours closer than ``_MERGE_TOL`` are one group, represented by the colour with the
       most seed pixels (so noise around an object's colour and the near-white plateau of a
       blurred white edge do not become objects). A group within the tolerance of black is
       background. Tiny groups that are flat spots inside heavy blur are dropped
       (:func:`_not_transitions`).
    3. Groups grow from their seeds through connected pixels of nearly their colour
       (:func:`_grow`), which recovers objects whose inside is noisy.
    4. Every other pixel (the edges) is unmixed (:func:`_unmix`) between the regions around it,
       so a blend becomes one of the regions it was blended from, never a region elsewhere.

    Objects with no flat 3x3 patch at all are lost, as they are when such a mask is
    thresholded. Returns group colours ``(G, 3)`` uint8 and the group of each pixel ``(H, W)``.
    """
    flat = flat_pixels(rgb)
    refuse_photo(flat, name)
    if not flat.any():  # degenerate (tiny or noise-only image): the commonest colour seeds
        values, counts = np.unique(keys, return_counts=True)
        flat = keys == values[np.argmax(counts)]
    seed_colors, seed_inverse, seed_counts = np.unique(keys[flat], return_inverse=True, return_counts=True)
    order = np.argsort(-seed_counts, kind="stable")
    seed_rgb = unpack(seed_colors).astype(np.float32)

    group_of_seed = np.full(len(seed_colors), -1, dtype=np.int64)
    reps: list[int] = []
    for si in order:
        if reps:
            d = np.linalg.norm(seed_rgb[reps] - seed_rgb[si], axis=1)
            j = int(np.argmin(d))
            if d[j] <= _MERGE_TOL:
                group_of_seed[si] = j
                continue
        if len(reps) > MAX_OBJECTS:  # e.g. a photo: stop before the costly part
            raise InputError(f"{name}: more than {MAX_OBJECTS} distinct regions (is this a mask?)")
        group_of_seed[si] = len(reps)
        reps.append(int(si))
    group_colors = unpack(seed_colors[reps])
    group_colors[np.linalg.norm(group_colors.astype(np.float32), axis=1) <= _MERGE_TOL] = 0
    group_size = np.bincount(group_of_seed, weights=seed_counts, minlength=len(reps))
    group_of_pixel = np.full(keys.shape, -1, dtype=np.int64)
    group_of_pixel[flat] = group_of_seed[seed_inverse]
    keep = _not_transitions(group_colors.astype(np.float32), group_size, group_of_pixel)
    if not keep.all():
        new_index = np.where(keep, np.cumsum(keep) - 1, -1)
        group_of_pixel = np.where(group_of_pixel >= 0, new_index[group_of_pixel], -1)
        group_colors = group_colors[keep]
    _grow(rgb, group_colors, group_of_pixel)
    _unmix(rgb, group_colors, group_of_pixel)
    return group_colors, group_of_pixel
