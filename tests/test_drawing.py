"""vos.editing.drawing: strokes rasterised exactly (against a brute-force distance), in order, over the mask they start
from; a box made a mask by GrabCut; everything the browser sends checked in one line."""
import numpy as np
import pytest

from benchmarks.adversarial.editor_drawing import distance_to_path  # every pixel centre against every segment
from seggpt.errors import InputError
from vos.editing.drawing import apply_strokes, mask_from_box, parse_box, parse_strokes, stroke_band


@pytest.mark.parametrize("points,radius", [
    ([(5.0, 5.0)], 1.0),  # a dot: the four pixels around a pixel corner
    ([(3.2, 4.7)], 2.6),
    ([(1.0, 1.0), (20.3, 9.9)], 1.5),  # a diagonal line
    ([(2.0, 12.0), (10.0, 2.0), (18.0, 12.0)], 3.0),  # a polyline with a sharp corner
    ([(-5.0, 3.0), (30.0, 3.0)], 2.0),  # a stroke that leaves the frame on both sides
    ([(40.0, 40.0), (50.0, 45.0)], 3.0),  # entirely outside: nothing
])
def test_stroke_band_is_the_brute_force_distance(points, radius):
    size = (14, 22)
    assert np.array_equal(stroke_band(size, points, radius), distance_to_path(size, points) <= radius)


def test_strokes_apply_in_order_over_the_mask_they_start_from():
    base = np.zeros((20, 30), bool)
    base[5:15, 5:15] = True
    brush = {"tool": "brush", "radius": 2.0, "points": [(20.0, 10.0), (28.0, 10.0)]}
    eraser = {"tool": "eraser", "radius": 3.0, "points": [(10.0, 10.0)]}
    out = apply_strokes(base, parse_strokes([brush, eraser], base.shape))
    band_b = stroke_band(base.shape, brush["points"], 2.0)
    band_e = stroke_band(base.shape, eraser["points"], 3.0)
    expected = (base | band_b) & ~band_e
    assert np.array_equal(out, expected) and not base[band_b].all()  # base unchanged (a new array)
    # the eraser first, then the brush over the same place: the brush wins
    again = apply_strokes(base, parse_strokes([{**eraser}, {**brush, "points": [(10.0, 10.0)], "radius": 1.0}],
                                              base.shape))
    assert again[9:11, 9:11].all() and not again[7, 10]


@pytest.mark.parametrize("strokes,message", [
    ("x", "expected a list"),
    ([{"tool": "spray", "radius": 2, "points": [[1, 1]]}], "stroke 1: expected a tool of brush, eraser"),
    ([{"tool": "brush", "radius": 0, "points": [[1, 1]]}], "the radius must be"),
    ([{"tool": "brush", "radius": float("nan"), "points": [[1, 1]]}], "finite number"),
    ([{"tool": "brush", "radius": True, "points": [[1, 1]]}], "finite number"),
    ([{"tool": "brush", "radius": 2, "points": []}], "no points"),
    ([{"tool": "brush", "radius": 2, "points": [[1, 2, 3]]}], r"a point must be \[x, y\]"),
    ([{"tool": "brush", "radius": 2, "points": [[1, "2"]]}], "finite number"),
    ([{"tool": "brush", "radius": 2, "points": [[1e9, 2]]}], "far outside"),
    ([{"tool": "brush", "radius": 2, "points": [[1, 1]] * 50_001}], "more than 50000 points"),
    ([{"tool": "brush", "radius": 10 ** 400, "points": [[1, 1]]}], "finite number"),  # a huge number
])
def test_bad_strokes_are_one_line(strokes, message):
    with pytest.raises(InputError, match=message) as e:
        parse_strokes(strokes, (10, 10))
    assert "\n" not in str(e.value)


def test_box_corners_any_order_clipped_and_checked():
    assert parse_box([30, 20, 10, 5], (40, 50)) == (10, 5, 30, 20)
    assert parse_box([-4.5, -3, 70.2, 39.5], (40, 50)) == (0, 0, 50, 40)
    assert parse_box(np.array([1.2, 2.7, 8.1, 9.0]), (40, 50)) == (1, 2, 9, 9)  # numpy numbers too
    for bad, message in [(None, "draw a box"), ([1, 2, 3], "draw a box"), ([1, 1, 2, 9], "at least 3 pixels"),
                         ([60, 60, 90, 90], "0x0 pixels inside"), ([0, 0, float("inf"), 4], "finite"),
                         ([0, 0, 10 ** 400, 5], "finite number")]:  # a huge number
        with pytest.raises(InputError, match=message):
            parse_box(bad, (40, 50))


def _scene(seed=0, size=(120, 160)):
    """A textured grey background with a saturated disc: the kind of object a box is meant for."""
    rng = np.random.default_rng(seed)
    h, w = size
    frame = rng.integers(60, 140, (h, w, 1)).repeat(3, axis=2).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    truth = (yy - 60) ** 2 + (xx - 90) ** 2 <= 22 ** 2
    frame[truth] = (rng.integers(0, 40, (int(truth.sum()), 3)) + np.array([200, 40, 30])).clip(0, 255)
    return frame, truth


def test_grabcut_finds_the_object_in_its_box_and_nothing_outside():
    frame, truth = _scene()
    box = parse_box([64, 34, 117, 87], truth.shape)
    got = mask_from_box(frame, box)
    iou = (got & truth).sum() / (got | truth).sum()
    assert iou >= 0.9, iou
    outside = np.ones_like(truth)
    outside[34:87, 64:117] = False
    assert not got[outside].any()
    assert np.array_equal(got, mask_from_box(frame, box))  # deterministic
    whole = mask_from_box(frame, parse_box([0, 0, 160, 120], truth.shape))  # the whole frame still works
    assert whole.shape == truth.shape and (whole & truth).sum() > 0.5 * truth.sum()


def test_grabcut_on_a_flat_frame_is_one_line_or_a_mask():
    """A frame with nothing to learn from (one colour): GrabCut either finds something or says so in one line."""
    flat = np.full((40, 50, 3), 128, np.uint8)
    try:
        got = mask_from_box(flat, parse_box([10, 10, 30, 30], (40, 50)))
    except InputError as e:
        assert "GrabCut" in str(e) and "\n" not in str(e)
    else:
        assert got.shape == (40, 50) and not got[:, :10].any()


@pytest.mark.parametrize("points", [[(50.2, 50.7)], [(10.3, 20.7), (80.2, 60.1), (30.0, 90.0)],
                                    [(-40.0, 10.0), (150.0, 110.0)]])
def test_a_wide_brush_is_within_a_pixel_of_the_exact_band(points):
    """Above EXACT_RADIUS, OpenCV draws the band: every pixel within radius - 1.5 is in it, none beyond radius + 1.5."""
    from vos.editing.drawing import EXACT_RADIUS

    radius = EXACT_RADIUS + 4.5
    size = (120, 120)
    band = stroke_band(size, points, radius)
    d = distance_to_path(size, points)
    assert band[d <= radius - 1.5].all() and not band[d >= radius + 1.5].any()
