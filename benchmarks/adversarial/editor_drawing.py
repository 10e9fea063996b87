"""Editor pass cases (`editor`): vos.editing.drawing, the gestures behind the app's canvas.

Hostile stroke and box documents (wrong types, NaN, inf, huge integers, too many points) are one-line
InputErrors; accepted input stays fast (a 1080p frame with thousands of points, a 4K GrabCut); the
stroke band matches a brute-force distance test; GrabCut copes with flat, tiny and grey frames.
"""
from __future__ import annotations

import numpy as np

from seggpt.errors import InputError
from vos.editing import drawing
from .editor import case, each, expect_error


def S(pts, r=3, tool="brush"):
    """A stroke document: one stroke through `pts`."""
    return [{"tool": tool, "radius": r, "points": pts}]


def refusing(parse, values, what, limit=5.0):
    """A case: parse(value, (20, 30)) raises a one-line InputError for each of `values` (`what` formats it)."""
    return lambda: each(lambda v: parse(v, (20, 30)), values, InputError, what, limit)


BAD_STROKES = [None, "x", 5, {}, [None], [1], [{"tool": "pen", "radius": 3, "points": [[1, 1]]}],
               S([[1, 1]], r=True), S([[1, 1]], r=float("nan")), S([[1, 1]], r=float("inf")), S([[1, 1]], r=0),
               S([[1, 1]], r=-1), S([[1, 1]], r=1e9), S([[1, 1]], r="3"), S([]), S("ab"), S([[1]]), S([[1, 2, 3]]),
               S([[True, 1]]), S([[float("nan"), 1]]), S([[1, float("inf")]]), S([["1", 2]]), S([[[1], 2]]),
               S([[1e12, 1]]), S([{"x": 1, "y": 2}]), S([[1 + 2j, 1]]), S([[None, None]]),
               [{"tool": ["brush"], "radius": 3, "points": [[1, 1]]}], [{"radius": 3, "points": [[1, 1]]}],
               S([[np.bool_(True), 1]]), S([[1, 1]], r=np.float64("nan"))]
BAD_BOXES = [None, [], [1, 2, 3], [1, 2, 3, 4, 5], "abcd", {"x0": 1}, [True, 0, 10, 10], [float("nan"), 0, 10, 10],
             [0, 0, float("inf"), 10], [0, 0, 2, 2], [-100, -100, -50, -50], [100, 100, 200, 200],
             [0, 0, "10", 10], [[0], 0, 10, 10], np.array([[0, 0], [10, 10]]), [0, 0, 10 ** 400, 10],
             [5, 5, 5, 5]]
for name, parse, values, what, *limit in [
        ("draw_parse_hostile_types", drawing.parse_strokes, BAD_STROKES, "parse_strokes({!r:.60})"),
        # JSON "1e400" gives inf, but a 400-digit integer literal gives a Python int
        ("draw_parse_huge_int_point", drawing.parse_strokes, [S([[10 ** 400, 1]])], "point 10**400"),
        ("draw_parse_huge_int_radius", drawing.parse_strokes, [S([[1, 1]], r=10 ** 400)], "radius 10**400"),
        ("draw_parse_huge_int_5000_digits", drawing.parse_strokes, [S([[1, 1]], r=10 ** 5000)], "radius 10**5000"),
        ("draw_parse_too_many_points", drawing.parse_strokes, [S([[1, 1]] * (drawing.MAX_POINTS + 1))], "200001 points", 10),
        ("draw_parse_box_hostile", drawing.parse_box, BAD_BOXES, "parse_box({!r:.50})")]:
    case(refusing(parse, values, what, *limit), name)


@case
def draw_parse_numpy_scalars_ok():
    out = drawing.parse_strokes(S([[np.float32(1.5), np.int64(2)]], r=np.float64(2)), (20, 30))
    assert out[0]["points"] == [(1.5, 2.0)] and out[0]["radius"] == 2.0


@case
def draw_parse_many_strokes_empty_list_ok():
    assert drawing.parse_strokes([], (5, 5)) == []


def cost_bounded(size, n, step, r, what):
    """A case: accepted input must not take long: `n` points (x = i mod W, y = i * step mod H) of radius `r`
    applied on a frame of `size` within 10 s."""
    def run():
        h, w = size
        strokes = drawing.parse_strokes(S([[float(i % w), float((i * step) % h)] for i in range(n)], r=r), size)
        expect_error(lambda: drawing.apply_strokes(np.zeros(size, bool), strokes), InputError, what, limit=10)
    return run


# 2000 points of radius 1000 on a 1080p frame (well under MAX_POINTS); MAX_POINTS points
case(cost_bounded((1080, 1920), 2000, 7, 1000, "apply_strokes 2000 pts r=1000 on 1080p"),
     "draw_apply_cost_bounded_big_radius")
case(cost_bounded((480, 640), drawing.MAX_POINTS, 13, 50, "apply_strokes MAX_POINTS pts r=50 on 640x480"),
     "draw_apply_cost_bounded_max_points")


def distance_to_path(size, pts):
    """Each pixel centre's distance (frame pixels) to the polyline through `pts`, by brute force (also the
    app's browser test's measure of where a stroke landed)."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    segs = list(zip(pts, pts[1:])) if len(pts) > 1 else [(pts[0], pts[0])]
    dmin = np.full((h, w), np.inf)
    for (x0, y0), (x1, y1) in segs:
        ax, ay = x1 - x0, y1 - y0
        L = ax * ax + ay * ay
        t = np.clip(((xs - x0) * ax + (ys - y0) * ay) / L, 0, 1) if L else 0.0  # the nearest point's place
        dmin = np.minimum(dmin, np.hypot(xs - (x0 + t * ax), ys - (y0 + t * ay)))
    return dmin


def band_errors(size, pts, r):
    """Where drawing.stroke_band differs from the brute-force band (pixels within `r`), beyond the tolerance."""
    dmin = distance_to_path(size, pts)
    tie = np.abs(dmin - r) < (1e-6 if r <= getattr(drawing, "EXACT_RADIUS", 1e9) else 1.5)
    return (drawing.stroke_band(size, pts, r) != (dmin <= r)) & ~tie


@case
def draw_stroke_band_exact_random():
    rng = np.random.default_rng(1)
    for k in range(300):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        n = int(rng.integers(1, 6))
        pts = [(float(rng.uniform(-w, 2 * w)), float(rng.uniform(-h, 2 * h))) for _ in range(n)]
        if rng.random() < 0.3:
            pts = [(float(round(x)), float(round(y))) for x, y in pts]
        r = float(rng.choice([0.5, 0.7, 1.0, 1.5, 2.0, 8.0, rng.uniform(0.5, 8), rng.uniform(8, 40)]))
        diff = band_errors((h, w), pts, r)
        assert not diff.any(), f"stroke_band differs from brute force (beyond tolerance) on {int(diff.sum())} px: size={(h, w)} pts={pts} r={r}"


@case
def draw_stroke_band_tiny_segment():
    assert not band_errors((10, 10), [(5.0, 5.0), (5.0 + 1e-300, 5.0)], 2.0).any(), "tiny segment"


@case
def draw_apply_order_brush_then_eraser():
    size = (20, 20)
    st = drawing.parse_strokes(S([[10, 10]], r=5) + S([[10, 10]], r=2, tool="eraser"), size)
    m = drawing.apply_strokes(np.zeros(size, bool), st)
    assert m[10, 4] or m[4, 10] or m.sum() > 0
    assert not m[10, 10], "eraser after brush should clear the centre"


@case
def draw_parse_box_ok_forms():
    assert drawing.parse_box([25, 18, 3, 2], (20, 30)) == (3, 2, 25, 18)
    assert drawing.parse_box((np.float32(-5), np.int64(-5), 100, 100), (20, 30)) == (0, 0, 30, 20)
    assert drawing.parse_box(np.array([1, 1, 9, 9]), (20, 30)) == (1, 1, 9, 9)


def _box_mask(frame, box):
    h, w = frame.shape[:2]
    return drawing.mask_from_box(frame, drawing.parse_box(box, (h, w)))


@case
def draw_grabcut_degenerate_frames():
    frames = {"3x3 flat": np.zeros((3, 3, 3), np.uint8), "4x4 flat white": np.full((4, 4, 3), 255, np.uint8),
              "flat 50x50": np.full((50, 50, 3), 128, np.uint8), "1-row-ish 3x200": np.zeros((3, 200, 3), np.uint8),
              "noise 5x5": np.random.default_rng(0).integers(0, 255, (5, 5, 3), dtype=np.uint8)}
    for name, f in frames.items():
        h, w = f.shape[:2]
        for box in ([0, 0, w, h], [0, 0, max(3, w // 2), max(3, h // 2)]):
            def go():
                m = _box_mask(f, box)
                assert m.shape == (h, w) and m.dtype == bool
            expect_error(go, InputError, f"mask_from_box {name} box={box}")


@case
def draw_grabcut_4k_fast():
    rng = np.random.default_rng(0)
    f = np.full((2160, 3840, 3), 40, np.uint8)
    f[800:1400, 1500:2300] = 200
    f += rng.integers(0, 10, f.shape, dtype=np.uint8)
    expect_error(lambda: _box_mask(f, [1400, 700, 2400, 1500]), InputError, "4K box", limit=8)
    m = _box_mask(f, [1400, 700, 2400, 1500])
    inside = m[800:1400, 1500:2300].mean()
    outside = m[700:800, 1400:2400].mean()
    assert inside >= 0.9 and outside <= 0.2, f"4K GrabCut mask poor: inside {inside:.2f} outside-band {outside:.2f}"


@case
def draw_grabcut_whole_frame_box_clear_object():
    f = np.zeros((60, 80, 3), np.uint8)
    f[20:40, 30:50] = (255, 0, 0)
    m = _box_mask(f, [-10, -10, 200, 200])
    assert m.sum() > 0, "box over the whole frame: empty mask (object is clear)"


@case
def draw_grabcut_gray_frame():
    f = np.zeros((40, 40), np.uint8)
    f[10:30, 10:30] = 255
    expect_error(lambda: drawing.mask_from_box(f, (5, 5, 35, 35)), InputError, "mask_from_box grey (H,W) frame")


@case
def draw_grabcut_box_outside_returns_empty_outside():
    f = np.random.default_rng(3).integers(0, 255, (50, 50, 3), dtype=np.uint8)
    f[10:20, 10:20] = 255
    m = _box_mask(f, [5, 5, 25, 25])
    assert not m[:5].any() and not m[25:].any() and not m[:, 25:].any(), "mask leaks outside box"
