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
  objects: see :func:`seggpt.mask_cleaning.clean_colors`.
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

import numpy as np
from PIL import Image

from .colors import MAX_OBJECTS, davis_palette
from .errors import InputError, check_input_file
from .mask_cleaning import clean_colors, flat_pixels, needs_cleaning, pack, refuse_photo, unpack

__all__ = [
    "MaskError",
    "ParsedMask",
    "load_mask",
    "parse_mask",
    "object_ids",
]

# A colour this close to a DAVIS palette colour is that colour (JPEG and blur move a region's
# colour by a few levels; DAVIS colours are >= 64 apart, so this never confuses two of them).
_SNAP_TOL = 12.0

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
    return [int(i) for i in np.unique(np.asarray(labels)) if i != 0]


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
        warnings = ["palette index 255 (the DAVIS 'void' label) kept as object id 255"] if (labels == 255).any() else []
        return ParsedMask(labels, pal.reshape(256, 3), warnings)
    if mode == "1":
        return ParsedMask(np.asarray(im).astype(np.int32))
    if mode == "LA":
        return _parse_gray(_over_black(np.asarray(im))[..., 0], 255, "LA", name)
    if mode in ("L", "I", "F") or mode.startswith("I;"):
        values = np.asarray(im)
        if values.dtype.kind == "f":
            values = _integral(values, name)
        values = values.astype(np.int64)
        white = 255 if mode == "L" or values.max(initial=0) <= 255 else 65535
        return _parse_gray(values, white, mode, name)
    if mode == "RGBA":
        return _parse_color(_over_black(np.asarray(im)), "RGBA", name)
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
        rgba = a.shape[2] == 4
        return _parse_color(_over_black(a) if rgba else a, "RGBA" if rgba else "RGB", name)
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


def _over_black(image: np.ndarray) -> np.ndarray:
    """Composite an image with alpha last (LA, RGBA) onto black: transparent pixels are background, soft
    alpha is anti-aliasing."""
    f = image.astype(np.float32)
    return np.rint(f[..., :-1] * (f[..., -1:] / 255.0)).astype(np.uint8)


# --------------------------------------------------------------------------------- grayscale


def _parse_gray(values: np.ndarray, white: int, mode: str, name: Optional[str] = None) -> ParsedMask:
    """Grayscale rules: 0/white is one object, anti-aliased is thresholded, else ids as given.

    With `name` (an image file, not a label array) a grey photo is refused (`seggpt.mask_cleaning.refuse_photo`)."""
    present = np.unique(values)
    if np.all(np.isin(present, (0, white))):
        return ParsedMask((values == white).astype(np.int32))
    if name is not None:
        refuse_photo(flat_pixels(values[..., None]), name)
    if present[-1] > white // 2 and needs_cleaning(values[..., None].astype(np.float32)):
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
    keys = pack(rgb)
    colors, inverse = np.unique(keys.ravel(), return_inverse=True)
    inverse = inverse.reshape(keys.shape)
    warnings: list[str] = []
    if needs_cleaning(rgb.astype(np.float32), keys):
        group_colors, group_of_pixel = clean_colors(rgb, keys, name)
        n_obj = int(np.count_nonzero(np.any(group_colors != 0, axis=1)))
        warnings.append(
            f"anti-aliased {mode} mask ({len(colors)} colours) cleaned to {n_obj} object(s)"
        )
    else:
        group_colors, group_of_pixel = unpack(colors), inverse
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
