"""What a user draws becomes a mask: brush and eraser strokes over a mask, and a box through GrabCut.

The app's canvas sends its gestures in the frame's own pixel coordinates (the browser maps the
pointer through the canvas's displayed box, so the frame's shape and the zoom of the page do not
matter); they are rasterised here, on the server, so what is saved is exactly what these rules
say, whatever the browser drew on screen:

* a stroke is a polyline with a radius: every pixel within about `radius` of the path is set (the
  brush) or cleared (the eraser), applied in order over the mask the user started from (the given
  mask or the prediction): a correction is the prediction plus the strokes;
* a box is turned into a mask by GrabCut (Rother et al., "GrabCut: interactive foreground extraction
  using iterated graph cuts", SIGGRAPH 2004; OpenCV's implementation), the classical interactive
  segmentation from a rectangle: colour models of the box and of a band around it, refined by graph
  cuts. It needs no model, runs in well under a second on a crop around the box, and its result is
  refined with the brush like any other mask.

Everything from the browser is checked here (one line naming what is wrong: `InputError`), the editor's
numbers too (`whole_number`).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List, Sequence, Tuple

import cv2
import numpy as np

from seggpt.errors import InputError, is_integer

from vos.engine.objects import object_mask

TOOLS = ("brush", "eraser")
MAX_RADIUS = 1000  # pixels of the frame
EXACT_RADIUS = 8.0  # up to this radius a stroke's band is computed exactly (stroke_band)
MAX_POINTS = 50_000  # in one commit: minutes of drawing (the pointer reports about 60 points a second)
GRABCUT_ITERATIONS = 5
GRABCUT_MAX_PIXELS = 300_000  # the crop around a box is shrunk to this many pixels first: GrabCut stays fast
BOX_MIN_SIDE = 3


def _number(value: Any, what: str) -> float:
    try:
        ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok:
        shown = type(value).__name__ if is_integer(value) else repr(value)
        raise InputError(f"{what}: expected a finite number, got {shown[:40]}")
    return float(value)


def short(value: Any) -> str:
    """At most 40 characters of `value` for a message (repr can fail: an int of 5,000 digits)."""
    try:
        text = repr(value) if not isinstance(value, BaseException) else str(value)
    except Exception:  # noqa: BLE001 - only a message
        text = type(value).__name__
    return text[:40]


def whole_number(value: Any, what: str) -> int:
    """`value` as an int when it is a whole number (7, 7.0, "7", numpy's), else one line naming `what`."""
    try:
        f = float(value) if not isinstance(value, (bool, np.bool_)) else math.nan
        whole = math.isfinite(f) and f == int(f)
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        raise InputError(f"{what}: expected a whole number, got {short(value)}")
    return int(f)


def parse_strokes(strokes: Any, size: Tuple[int, int]) -> List[Dict[str, Any]]:
    """The canvas's strokes, checked: a list of {"tool": "brush"|"eraser", "radius": r, "points": [[x, y], ...]}
    in pixels of a frame of `size` (H, W). Points may lie outside the frame (a stroke that leaves it)."""
    if not isinstance(strokes, list):
        raise InputError(f"strokes: expected a list, got {type(strokes).__name__}")
    h, w = size
    out, total = [], 0
    for i, s in enumerate(strokes):
        what = f"stroke {i + 1}"
        if not isinstance(s, dict) or s.get("tool") not in TOOLS:
            raise InputError(f"{what}: expected a tool of {', '.join(TOOLS)}")
        radius = _number(s.get("radius"), f"{what} radius")
        if not 0.5 <= radius <= MAX_RADIUS:
            raise InputError(f"{what}: the radius must be 0.5..{MAX_RADIUS} pixels, got {radius:g}")
        points = s.get("points")
        if not isinstance(points, list) or not points:
            raise InputError(f"{what}: no points")
        total += len(points)
        if total > MAX_POINTS:
            raise InputError(f"strokes: more than {MAX_POINTS} points in one commit; commit more often")
        xy = []
        for p in points:
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise InputError(f"{what}: a point must be [x, y]")
            x, y = (_number(v, f"{what} point") for v in p)
            if not (-w <= x <= 2 * w and -h <= y <= 2 * h):
                raise InputError(f"{what}: point ({x:g}, {y:g}) is far outside the {w}x{h} frame")
            xy.append((x, y))
        out.append({"tool": s["tool"], "radius": radius, "points": xy})
    return out


def stroke_band(size: Tuple[int, int], points: Sequence[Tuple[float, float]], radius: float) -> np.ndarray:
    """The (H, W) bool pixels a stroke covers: those whose centre (x + 0.5, y + 0.5) lies within `radius` of the
    polyline through `points` (canvas coordinates): the rule the saved mask follows, whatever the browser's
    antialiased round-capped line of width 2 * radius showed on screen. Exact up to EXACT_RADIUS (computed segment by segment on each segment's bounding box); a wider
    brush is drawn by OpenCV with sub-pixel coordinates (within about a pixel of the exact band, a small
    fraction of such a radius), so a long stroke of a wide brush costs milliseconds, not minutes."""
    h, w = size
    band = np.zeros((h, w), bool)
    pts = [(float(x), float(y)) for x, y in points]
    if radius > EXACT_RADIUS:
        return _wide_band(band, pts, radius)
    segments = list(zip(pts, pts[1:])) if len(pts) > 1 else [(pts[0], pts[0])]
    r2 = radius * radius
    for (x0, y0), (x1, y1) in segments:
        left, right = max(0, int(math.floor(min(x0, x1) - radius))), min(w, int(math.ceil(max(x0, x1) + radius)) + 1)
        top, bottom = max(0, int(math.floor(min(y0, y1) - radius))), min(h, int(math.ceil(max(y0, y1) + radius)) + 1)
        if left >= right or top >= bottom:
            continue  # a segment outside the frame
        ys = np.arange(top, bottom, dtype=np.float64)[:, None] + 0.5
        xs = np.arange(left, right, dtype=np.float64)[None, :] + 0.5
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / length2, 0.0, 1.0) if length2 > 0 else 0.0
        band[top:bottom, left:right] |= (xs - (x0 + t * dx)) ** 2 + (ys - (y0 + t * dy)) ** 2 <= r2
    return band


def _wide_band(band: np.ndarray, pts: List[Tuple[float, float]], radius: float) -> np.ndarray:
    shift = 4  # fixed-point bits of OpenCV's coordinates; its integer coordinate i is pixel i's centre
    fixed = np.round((np.asarray(pts) - 0.5) * (1 << shift)).astype(np.int64)
    fixed = np.clip(fixed, -(1 << 28), 1 << 28).astype(np.int32)  # inside OpenCV's range; far points stay far
    canvas = band.view(np.uint8)
    thickness = max(1, int(round(2 * radius)))
    if len(fixed) > 1:
        cv2.polylines(canvas, [fixed.reshape(-1, 1, 2)], False, 1, thickness=thickness, lineType=cv2.LINE_8,
                      shift=shift)
    else:  # a dot (OpenCV's thick lines have round ends and joins of their own)
        cv2.circle(canvas, (int(fixed[0][0]), int(fixed[0][1])), int(round(radius * (1 << shift))), 1, thickness=-1,
                   lineType=cv2.LINE_8, shift=shift)
    return band


def apply_strokes(mask: np.ndarray, strokes: Sequence[Dict[str, Any]]) -> np.ndarray:
    """`mask` (H, W) bool with the checked `strokes` applied in order (brush sets, eraser clears); a new array."""
    out = object_mask(mask, "the mask to draw on")
    for s in strokes:
        out[stroke_band(out.shape, s["points"], s["radius"])] = s["tool"] == "brush"
    return out


def parse_box(box: Any, size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """[x0, y0, x1, y1] in frame pixels (any corner order), clipped to the frame; at least BOX_MIN_SIDE wide."""
    if isinstance(box, np.ndarray):
        box = box.tolist()
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise InputError("box: draw a box on the frame first (expected [x0, y0, x1, y1])")
    x0, y0, x1, y1 = (_number(v, "box") for v in box)
    h, w = size
    left, right = sorted((x0, x1))
    top, bottom = sorted((y0, y1))
    left, top = max(0, int(math.floor(left))), max(0, int(math.floor(top)))
    right, bottom = min(w, int(math.ceil(right))), min(h, int(math.ceil(bottom)))
    if right - left < BOX_MIN_SIDE or bottom - top < BOX_MIN_SIDE:
        raise InputError(f"box: {max(0, right - left)}x{max(0, bottom - top)} pixels inside the frame; draw a box "
                         f"at least {BOX_MIN_SIDE} pixels on each side over the object")
    return left, top, right, bottom


def mask_from_box(frame: np.ndarray, box: Tuple[int, int, int, int],
                  iterations: int = GRABCUT_ITERATIONS) -> np.ndarray:
    """The object inside `box` (left, top, right, bottom; `parse_box`) of an (H, W, 3) uint8 RGB frame, by
    GrabCut: a (H, W) bool mask, empty outside the box. Deterministic (OpenCV's RNG is seeded)."""
    if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3):
        raise InputError(f"box: GrabCut needs an (H, W, 3) uint8 RGB frame, got {getattr(frame, 'shape', type(frame))}")
    h, w = frame.shape[:2]
    left, top, right, bottom = box
    bw, bh = right - left, bottom - top
    # GrabCut learns the background from outside the box: a band around it, enough to model the colours
    margin = max(8, int(round(0.25 * max(bw, bh))))
    cx0, cy0 = max(0, left - margin), max(0, top - margin)
    cx1, cy1 = min(w, right + margin), min(h, bottom + margin)
    crop = np.ascontiguousarray(frame[cy0:cy1, cx0:cx1, ::-1])  # OpenCV's BGR
    scale = min(1.0, math.sqrt(GRABCUT_MAX_PIXELS / float(crop.shape[0] * crop.shape[1])))
    if scale < 1.0:
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    ch, cw = crop.shape[:2]
    rx0, ry0 = int((left - cx0) * scale), int((top - cy0) * scale)
    rx1, ry1 = min(cw, int(math.ceil((right - cx0) * scale))), min(ch, int(math.ceil((bottom - cy0) * scale)))
    if rx0 == 0 and ry0 == 0 and rx1 == cw and ry1 == ch:  # the box is the whole frame: leave GrabCut a border
        rx0, ry0, rx1, ry1 = 1, 1, cw - 1, ch - 1
    labels = np.zeros((ch, cw), np.uint8)
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(crop, labels, (rx0, ry0, max(1, rx1 - rx0), max(1, ry1 - ry0)), np.zeros((1, 65), np.float64),
                    np.zeros((1, 65), np.float64), int(iterations), cv2.GC_INIT_WITH_RECT)
    except cv2.error as e:
        raise InputError(f"box: GrabCut could not separate the object from its surroundings "
                         f"({str(e).strip().splitlines()[-1][:80]}); paint the mask with the brush") from None
    fg = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.float32)
    if scale < 1.0:
        fg = cv2.resize(fg, (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((h, w), bool)  # the object inside the box only
    out[top:bottom, left:right] = (fg >= 0.5)[top - cy0:bottom - cy0, left - cx0:right - cx0]
    return out


__all__ = ["apply_strokes", "mask_from_box", "parse_box", "parse_strokes", "short", "stroke_band", "TOOLS", "whole_number"]
