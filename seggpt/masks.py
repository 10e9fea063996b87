"""The one mask parser of the project: every user mask becomes an ``(H, W)`` int32 label map.

Masks arrive in many forms and each has its convention; this module is the only place that
knows them, so the engine, the CLIs and the benchmarks all agree on what a file means:

* **Palette PNG** (mode ``P``/``PA``, DAVIS 2017, YouTube-VOS): the pixel index is the object id
  and the file's palette is returned so outputs can keep the user's colours. DAVIS uses index
  255 as "void" (unlabelled border) in some files; ids are kept as they are (255 stays an
  object id, with a warning), because silently dropping it would hide an object in files that
  do use 255 as an id. Callers that know their data is DAVIS may zero it.
* **Grayscale** (``1``, ``L``, ``LA``, ``I``, ``I;16``): only ``0`` and white (DAVIS 2016) is one
  object with id 1; a few exact values (``0, 1, 2, 3`` index masks) are ids as given; an
  anti-aliased mask (grey levels that are blends of their neighbours, white present) is
  thresholded at half of white (128 for 8 bit) into one object, with a warning.
* **Colour** (``RGB``, ``RGBA``, ...): every distinct colour is an object and black is
  background. Ids: when every object colour is (within a few levels) a colour of the DAVIS/VOC
  palette, the id is its palette index (so RGB copies of DAVIS files keep their ids); otherwise ids ``1..N`` follow the
  colours sorted by value ``(R, G, B)``. Both rules depend on the colours only, never on where
  they appear, so the same colours give the same ids in every frame of a video.
  RGB images whose three channels are equal everywhere (the SegGPT examples) are grayscale
  and follow the grayscale rules. RGBA is composited onto black first, so transparent pixels
  are background and partly transparent edges are ordinary anti-aliasing.
  Anti-aliased or compressed colour masks are cleaned so that an edge never becomes extra
  objects: see :func:`_clean_colors`.
* **numpy arrays**: integer ``(H, W)`` arrays are label maps taken as they are (no grayscale
  guessing: a ``0/255`` uint8 array is object 255); boolean arrays are object 1; ``(H, W, 3)``
  and ``(H, W, 4)`` uint8 arrays follow the colour rules.

Errors are :class:`~seggpt.errors.InputError` with a one-line message naming the file. An empty mask
is one too ("holds no object") unless ``allow_empty=True`` (a YouTube-VOS annotation of a later frame
may legitimately hold no object): a caller that accepts empty masks says so, it does not catch them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

import cv2
import numpy as np
from PIL import Image

from .colors import MAX_OBJECTS, davis_palette
from .errors import InputError, check_input_file

__all__ = [
    "MaskError",
    "ParsedMask",
    "load_mask",
    "parse_mask",
    "object_ids",
]

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
# A colour this close to a DAVIS palette colour is that colour (JPEG and blur move a region's
# colour by a few levels; DAVIS colours are >= 64 apart, so this never confuses two of them).
_SNAP_TOL = 12.0
# When cleaning, a blend pixel is unmixed between pairs of its this many nearest regions.
_CANDIDATES = 3

PathLike = Union[str, os.PathLike]


#: the name this module's errors had: an alias of InputError (the README names it), not another class
MaskError = InputError


@dataclass
class ParsedMask:
    """A user mask read as objects.

    Attributes:
        labels: ``(H, W)`` int32, 0 = background, object ids ``1..255``.
        palette: ``(256, 3)`` uint8 colour of every id as the user gave it: the PNG's own
            palette for palette PNGs, the object colours for colour masks (unused rows black),
            ``None`` for grayscale masks and label arrays. Writers can reuse it so outputs look
            like the inputs.
        warnings: human-readable notes about guesses that were made (cleaning, void label).
    """

    labels: np.ndarray
    palette: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def object_ids(self) -> list[int]:
        return object_ids(self.labels)


def object_ids(labels: np.ndarray) -> list[int]:
    """Sorted non-zero ids present in a label map."""
    ids = np.unique(np.asarray(labels))
    return [int(i) for i in ids if i != 0]


def load_mask(path: PathLike, *, allow_empty: bool = False) -> ParsedMask:
    """Read a mask file (any format Pillow reads; PNG in practice). See the module docstring."""
    name = str(path)
    p = check_input_file(path, "mask image")  # never opens a FIFO or a device (it would block)
    try:
        with Image.open(p) as im:
            im.load()  # decode now: a truncated file fails here, not later
            image = im.copy()
    except Image.DecompressionBombError as e:
        raise InputError(f"{name}: image too large ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:  # UnidentifiedImageError is an OSError
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{name}: not a readable image ({reason})") from None
    return parse_mask(image, name=name, allow_empty=allow_empty)


def parse_mask(
    mask: np.ndarray | Image.Image, name: str = "<array>", *, allow_empty: bool = False
) -> ParsedMask:
    """Parse a PIL image or numpy array into objects. ``name`` is used in messages."""
    if isinstance(mask, Image.Image):
        parsed = _parse_image(mask, name)
    elif isinstance(mask, np.ndarray):
        parsed = _parse_array(mask, name)
    else:
        raise InputError(f"{name}: expected a PIL image or numpy array, got {type(mask).__name__}")
    return _finish(parsed, name, allow_empty)


# ---------------------------------------------------------------------------------- dispatch


def _parse_image(im: Image.Image, name: str) -> ParsedMask:
    mode = im.mode
    if mode in ("P", "PA"):
        labels = np.asarray(im if mode == "P" else im.getchannel(0)).astype(np.int32)
        pal = np.zeros(768, dtype=np.uint8)
        raw = im.getpalette() or []
        pal[: min(768, len(raw))] = raw[:768]
        warnings = []
        if (labels == 255).any():
            warnings.append("palette index 255 (the DAVIS 'void' label) kept as object id 255")
        return ParsedMask(labels, pal.reshape(256, 3), warnings)
    if mode == "1":
        return ParsedMask(np.asarray(im).astype(np.int32))
    if mode == "LA":
        la = np.asarray(im).astype(np.float32)
        return _parse_gray(_over_black(la[..., 0], la[..., 1]), 255, "LA", name)
    if mode in ("L", "I", "F") or mode.startswith("I;"):
        values = np.asarray(im)
        if values.dtype.kind == "f":
            values = _integral(values, name)
        values = values.astype(np.int64)
        white = 255 if mode == "L" or values.max(initial=0) <= 255 else 65535
        return _parse_gray(values, white, mode, name)
    if mode == "RGBA":
        rgba = np.asarray(im).astype(np.float32)
        return _parse_color(_over_black(rgba[..., :3], rgba[..., 3:]), "RGBA", name)
    return _parse_color(np.asarray(im.convert("RGB")), "RGB", name)


def _parse_array(a: np.ndarray, name: str) -> ParsedMask:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        if a.dtype == np.bool_:
            return ParsedMask(a.astype(np.int32))
        if a.dtype.kind == "f":
            a = _integral(a, name)
        if a.dtype.kind not in "iu":
            raise InputError(f"{name}: unsupported mask dtype {a.dtype}")
        if a.size and a.min() < 0:
            raise InputError(f"{name}: negative label {int(a.min())}")
        if a.size and a.max() > np.iinfo(np.int32).max:
            raise InputError(f"{name}: label {int(a.max())} out of range")
        return ParsedMask(a.astype(np.int32))
    if a.ndim == 3 and a.shape[2] in (3, 4):
        if a.dtype != np.uint8:
            raise InputError(f"{name}: colour masks must be uint8, got {a.dtype}")
        if a.shape[2] == 4:
            f = a.astype(np.float32)
            return _parse_color(_over_black(f[..., :3], f[..., 3:]), "RGBA", name)
        return _parse_color(a, "RGB", name)
    raise InputError(f"{name}: expected an (H, W) label map or (H, W, 3|4) colour mask, got shape {a.shape}")


def _finish(parsed: ParsedMask, name: str, allow_empty: bool) -> ParsedMask:
    labels = parsed.labels
    if labels.ndim != 2 or labels.size == 0:
        raise InputError(f"{name}: mask has no pixels (shape {labels.shape})")
    ids = object_ids(labels)
    if len(ids) > MAX_OBJECTS:
        raise InputError(f"{name}: {len(ids)} objects, at most {MAX_OBJECTS} are supported")
    if ids and ids[-1] > 255:
        raise InputError(f"{name}: object id {ids[-1]} > 255 cannot be stored in an index PNG")
    if not ids and not allow_empty:
        raise InputError(f"{name}: mask holds no object (all pixels are background)")
    parsed.labels = np.ascontiguousarray(labels, dtype=np.int32)
    return parsed


def _integral(values: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        raise InputError(f"{name}: float mask with non-integer values (threshold it into labels first)")
    return values.astype(np.int64)


def _over_black(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite onto black: transparent pixels are background, soft alpha is anti-aliasing."""
    return np.rint(color * (alpha / 255.0)).astype(np.uint8)


# --------------------------------------------------------------------------------- grayscale


def _parse_gray(values: np.ndarray, white: int, mode: str, name: Optional[str] = None) -> ParsedMask:
    """Grayscale rules: 0/white is one object, anti-aliased is thresholded, else ids as given.

    With `name` (an image file, not a label array) a grey photo is refused (`_refuse_photo`)."""
    present = np.unique(values)
    if np.all(np.isin(present, (0, white))):
        return ParsedMask((values == white).astype(np.int32))
    if name is not None:
        _refuse_photo(_flat(values[..., None]), name)
    if present[-1] > white // 2 and _needs_cleaning(values[..., None].astype(np.float32)):
        labels = (values > white // 2).astype(np.int32)  # 8 bit: >= 128, i.e. mean channel > 127
        n = int(labels.any())
        return ParsedMask(
            labels, None, [f"anti-aliased {mode} mask thresholded at {white // 2 + 1} into {n} object(s)"]
        )
    return ParsedMask(values.astype(np.int32))


# ------------------------------------------------------------------------------------ colour


def _parse_color(rgb: np.ndarray, mode: str, name: str) -> ParsedMask:
    """Colour rules: distinct colours are objects (cleaned when anti-aliased), black is background."""
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        parsed = _parse_gray(rgb[..., 0].astype(np.int64), 255, f"{mode} (grey)", name)
        if not parsed.warnings and parsed.labels.max(initial=0) > 0:  # keep the user's colours
            parsed.palette = np.zeros((256, 3), dtype=np.uint8)
            for i in object_ids(parsed.labels):
                parsed.palette[i] = rgb[parsed.labels == i][0]
        return parsed
    keys = _pack(rgb)
    colors, inverse = np.unique(keys.ravel(), return_inverse=True)
    inverse = inverse.reshape(keys.shape)
    warnings: list[str] = []
    if _needs_cleaning(rgb.astype(np.float32), keys):
        group_colors, group_of_pixel = _clean_colors(rgb, keys, name)
        n_obj = int(np.count_nonzero(np.any(group_colors != 0, axis=1)))
        warnings.append(
            f"anti-aliased {mode} mask ({len(colors)} colours) cleaned to {n_obj} object(s)"
        )
    else:
        group_colors, group_of_pixel = _unpack(colors), inverse
    labels, pal = _assign_ids(group_colors, group_of_pixel, name)
    return ParsedMask(labels, pal, warnings)


def _assign_ids(
    group_colors: np.ndarray, group_of_pixel: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Ids from colours only, so every frame of a video agrees.

    DAVIS palette index when every object colour is (within ``_SNAP_TOL``) a distinct DAVIS
    colour; otherwise the rank of the colour ``(R, G, B)``.
    """
    is_bg = ~np.any(group_colors != 0, axis=1)
    obj = np.flatnonzero(~is_bg)
    if len(obj) > MAX_OBJECTS:
        raise InputError(f"{name}: {len(obj)} colours, at most {MAX_OBJECTS} objects are supported")
    cols = group_colors[obj].astype(np.float32)
    davis = davis_palette().astype(np.float32)
    ids = np.zeros(len(obj), dtype=np.int64)
    if len(obj):
        d = np.linalg.norm(cols[:, None, :] - davis[None, 1:, :], axis=2)
        nearest = np.argmin(d, axis=1)
        if np.all(d[np.arange(len(obj)), nearest] <= _SNAP_TOL) and len(set(nearest.tolist())) == len(obj):
            ids = nearest + 1
        else:
            order = sorted(range(len(obj)), key=lambda j: tuple(int(v) for v in group_colors[obj[j]]))
            ids[order] = np.arange(1, len(obj) + 1)
    lut = np.zeros(len(group_colors), dtype=np.int32)
    lut[obj] = ids
    pal = np.zeros((256, 3), dtype=np.uint8)
    pal[ids] = group_colors[obj]
    return lut[group_of_pixel], pal


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _unpack(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.int64)
    return np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], axis=-1).astype(np.uint8)


def _interior(keys: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has their exact value: the inside of real regions.

    Anti-aliasing produces thin bands in which the value changes from pixel to pixel, so its
    colours have (almost) no interior pixels; every object worth prompting with has some.
    """
    h, w = keys.shape
    padded = np.pad(keys, 1, mode="edge")
    same = np.ones((h, w), dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                same &= padded[dy : dy + h, dx : dx + w] == keys
    return same


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


def _needs_cleaning(img: np.ndarray, keys: np.ndarray | None = None) -> bool:
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


def _refuse_photo(flat: np.ndarray, name: str) -> None:
    """InputError when too few pixels are flat (`_flat`) for the image to be a mask (``_MIN_FLAT_SHARE``)."""
    if flat.size >= _MIN_PIXELS_FOR_PHOTO_CHECK and flat.mean() < _MIN_FLAT_SHARE:
        raise InputError(f"{name}: does not look like a mask: only {flat.mean():.0%} of its pixels lie in regions of "
                         "one colour (a photo?); give a mask image (palette, grey, or flat colours on black)")


def _flat(rgb: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbours all differ from them by at most ``_FLAT_TOL`` per channel.

    The inside of an object is flat even after blurring or JPEG compression (which move exact
    values by a level or two); an anti-aliased band changes much faster than that across it.
    """
    h, w = rgb.shape[:2]
    a = rgb.astype(np.int32)  # int32: 16-bit grey images too
    padded = np.pad(a, ((1, 1), (1, 1), (0, 0)), mode="edge")
    flat = np.ones((h, w), dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                flat &= np.abs(padded[dy : dy + h, dx : dx + w] - a).max(axis=-1) <= _FLAT_TOL
    return flat


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
            b = candidates[i + 1 :]
            v = colors[b] - colors[a]
            vv = (v * v).sum(-1)
            t = ((colors[g] - colors[a]) * v).sum(-1) / np.maximum(vv, 1e-6)
            resid = np.linalg.norm(colors[a] + t[:, None] * v - colors[g], axis=1)
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
            a, b = col[cand_g[:, i]], col[cand_g[:, j]]
            v = b - a
            vv = (v * v).sum(-1)
            t = np.clip(((c - a) * v).sum(-1) / np.maximum(vv, 1e-6), 0.0, 1.0)
            resid = np.linalg.norm(a + t[:, None] * v - c, axis=1)
            better = ok & (resid < best)
            best[better] = resid[better]
            choice[better] = np.where(t <= 0.5, cand_g[:, i], cand_g[:, j])[better]
    group_of_pixel[ys, xs] = choice


def _clean_colors(rgb: np.ndarray, keys: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Reduce an anti-aliased / blurred / compressed colour mask to its real regions.

    1. Seed pixels: flat pixels (see :func:`_flat`), the insides of regions.
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
    flat = _flat(rgb)
    _refuse_photo(flat, name)
    if not flat.any():  # degenerate (tiny or noise-only image): the commonest colour seeds
        values, counts = np.unique(keys, return_counts=True)
        flat = keys == values[np.argmax(counts)]
    seed_colors, seed_inverse, seed_counts = np.unique(keys[flat], return_inverse=True, return_counts=True)
    order = np.argsort(-seed_counts, kind="stable")
    seed_rgb = _unpack(seed_colors).astype(np.float32)

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
    group_colors = _unpack(seed_colors[reps])
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
