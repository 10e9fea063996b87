"""Adversarial cases for vos.drawing and vos.editor.Editor (library level).

Run: python -m benchmarks.adversarial_editor [-k TEXT] [--browser]
Prints PASS/FAIL per case and a summary; exits 1 if any case fails.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import traceback
import zipfile
import json

import numpy as np

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


class Fail(AssertionError):
    pass


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout("took too long")


def expect_error(fn, etype, what="", limit=5.0):
    """fn() must raise etype (one line) or return; never another exception, never slow."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        fn()
    except Timeout:
        raise Fail(f"{what}: hang (> {limit}s)")
    except etype as e:
        msg = str(e)
        if "\n" in msg or not msg.strip():
            raise Fail(f"{what}: {etype.__name__} message not one line: {msg!r:.200}")
        return e
    except Exception as e:
        raise Fail(f"{what}: {type(e).__name__} instead of {etype.__name__}: {str(e)[:150]}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return None


def must_raise(fn, etype, what="", limit=5.0):
    e = expect_error(fn, etype, what, limit)
    if e is None:
        raise Fail(f"{what}: accepted silently (expected {etype.__name__})")
    return e


# ====================================================================== drawing
from seggpt.errors import InputError  # noqa: E402
from vos import drawing  # noqa: E402

S = lambda pts, r=3, tool="brush": [{"tool": tool, "radius": r, "points": pts}]


@case
def draw_parse_hostile_types():
    bad = [None, "x", 5, {}, [None], [1], [{"tool": "pen", "radius": 3, "points": [[1, 1]]}],
           S([[1, 1]], r=True), S([[1, 1]], r=float("nan")), S([[1, 1]], r=float("inf")), S([[1, 1]], r=0),
           S([[1, 1]], r=-1), S([[1, 1]], r=1e9), S([[1, 1]], r="3"), S([]), S("ab"), S([[1]]), S([[1, 2, 3]]),
           S([[True, 1]]), S([[float("nan"), 1]]), S([[1, float("inf")]]), S([["1", 2]]), S([[[1], 2]]),
           S([[1e12, 1]]), S([{"x": 1, "y": 2}]), S([[1 + 2j, 1]]), S([[None, None]]),
           [{"tool": ["brush"], "radius": 3, "points": [[1, 1]]}], [{"radius": 3, "points": [[1, 1]]}],
           S([[np.bool_(True), 1]]), S([[1, 1]], r=np.float64("nan"))]
    for b in bad:
        must_raise(lambda: drawing.parse_strokes(b, (20, 30)), InputError, f"parse_strokes({b!r:.60})")


@case
def draw_parse_huge_int_point():
    # JSON "1e400" gives inf, but a 400-digit integer literal gives a Python int
    must_raise(lambda: drawing.parse_strokes(S([[10 ** 400, 1]]), (20, 30)), InputError, "point 10**400")


@case
def draw_parse_huge_int_radius():
    must_raise(lambda: drawing.parse_strokes(S([[1, 1]], r=10 ** 400), (20, 30)), InputError, "radius 10**400")


@case
def draw_parse_huge_int_5000_digits():
    must_raise(lambda: drawing.parse_strokes(S([[1, 1]], r=10 ** 5000), (20, 30)), InputError, "radius 10**5000")


@case
def draw_parse_numpy_scalars_ok():
    out = drawing.parse_strokes(S([[np.float32(1.5), np.int64(2)]], r=np.float64(2)), (20, 30))
    assert out[0]["points"] == [(1.5, 2.0)] and out[0]["radius"] == 2.0


@case
def draw_parse_too_many_points():
    pts = [[1, 1]] * (drawing.MAX_POINTS + 1)
    must_raise(lambda: drawing.parse_strokes(S(pts), (20, 30)), InputError, "200001 points", limit=10)


@case
def draw_parse_many_strokes_empty_list_ok():
    assert drawing.parse_strokes([], (5, 5)) == []


@case
def draw_apply_cost_bounded_big_radius():
    """Accepted input must not take long: 2000 points of radius 1000 on a 1080p frame (well under MAX_POINTS)."""
    size = (1080, 1920)
    pts = [[float(i % 1920), float((i * 7) % 1080)] for i in range(2000)]
    strokes = drawing.parse_strokes(S(pts, r=1000), size)
    expect_error(lambda: drawing.apply_strokes(np.zeros(size, bool), strokes), InputError,
                 "apply_strokes 2000 pts r=1000 on 1080p", limit=10)


@case
def draw_apply_cost_bounded_max_points():
    size = (480, 640)
    pts = [[float(i % 640), float((i * 13) % 480)] for i in range(drawing.MAX_POINTS)]
    strokes = drawing.parse_strokes(S(pts, r=50), size)
    expect_error(lambda: drawing.apply_strokes(np.zeros(size, bool), strokes), InputError,
                 "apply_strokes MAX_POINTS pts r=50 on 640x480", limit=10)


def brute_band(size, pts, r):
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    segs = list(zip(pts, pts[1:])) if len(pts) > 1 else [(pts[0], pts[0])]
    dmin = np.full((h, w), np.inf)
    for (x0, y0), (x1, y1) in segs:
        ax, ay = x1 - x0, y1 - y0
        L = ax * ax + ay * ay
        if L == 0:
            d = np.hypot(xs - x0, ys - y0)
        else:
            t = np.clip(((xs - x0) * ax + (ys - y0) * ay) / L, 0, 1)
            d = np.hypot(xs - (x0 + t * ax), ys - (y0 + t * ay))
        dmin = np.minimum(dmin, d)
    return dmin <= r, np.abs(dmin - r) < (1e-6 if r <= getattr(drawing, "EXACT_RADIUS", 1e9) else 1.5)


@case
def draw_stroke_band_exact_random():
    rng = np.random.default_rng(1)
    bad = 0
    for k in range(300):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        n = int(rng.integers(1, 6))
        pts = [(float(rng.uniform(-w, 2 * w)), float(rng.uniform(-h, 2 * h))) for _ in range(n)]
        if rng.random() < 0.3:
            pts = [(float(round(x)), float(round(y))) for x, y in pts]
        r = float(rng.choice([0.5, 0.7, 1.0, 1.5, 2.0, 8.0, rng.uniform(0.5, 8), rng.uniform(8, 40)]))
        got = drawing.stroke_band((h, w), pts, r)
        want, tie = brute_band((h, w), pts, r)
        diff = (got != want) & ~tie
        if diff.any():
            raise Fail(f"stroke_band differs from brute force (beyond tolerance) on {int(diff.sum())} px: size={(h, w)} pts={pts} r={r}")


@case
def draw_stroke_band_tiny_segment():
    got = drawing.stroke_band((10, 10), [(5.0, 5.0), (5.0 + 1e-300, 5.0)], 2.0)
    want, tie = brute_band((10, 10), [(5.0, 5.0), (5.0 + 1e-300, 5.0)], 2.0)
    assert not ((got != want) & ~tie).any(), "tiny segment"


@case
def draw_apply_order_brush_then_eraser():
    size = (20, 20)
    st = drawing.parse_strokes(S([[10, 10]], r=5) + S([[10, 10]], r=2, tool="eraser"), size)
    m = drawing.apply_strokes(np.zeros(size, bool), st)
    assert m[10, 4] or m[4, 10] or m.sum() > 0
    assert not m[10, 10], "eraser after brush should clear the centre"


@case
def draw_parse_box_hostile():
    bad = [None, [], [1, 2, 3], [1, 2, 3, 4, 5], "abcd", {"x0": 1}, [True, 0, 10, 10], [float("nan"), 0, 10, 10],
           [0, 0, float("inf"), 10], [0, 0, 2, 2], [-100, -100, -50, -50], [100, 100, 200, 200],
           [0, 0, "10", 10], [[0], 0, 10, 10], np.array([[0, 0], [10, 10]]), [0, 0, 10 ** 400, 10],
           [5, 5, 5, 5]]
    for b in bad:
        must_raise(lambda: drawing.parse_box(b, (20, 30)), InputError, f"parse_box({b!r:.50})")


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
    t = time.time()
    m = expect_error(lambda: _box_mask(f, [1400, 700, 2400, 1500]), InputError, "4K box", limit=8)
    m = _box_mask(f, [1400, 700, 2400, 1500])
    inside = m[800:1400, 1500:2300].mean()
    outside = m[700:800, 1400:2400].mean()
    if inside < 0.9 or outside > 0.2:
        raise Fail(f"4K GrabCut mask poor: inside {inside:.2f} outside-band {outside:.2f}")


@case
def draw_grabcut_whole_frame_box_clear_object():
    f = np.zeros((60, 80, 3), np.uint8)
    f[20:40, 30:50] = (255, 0, 0)
    m = _box_mask(f, [-10, -10, 200, 200])
    if m.sum() == 0:
        raise Fail("box over the whole frame: empty mask (object is clear)")


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


# ====================================================================== editor
from vos.editor import Editor, EditorError  # noqa: E402
from seggpt.errors import Cancelled  # noqa: E402 - a cancelled export is not an error of the user

_SEG = {}


def segmenter():
    if "s" not in _SEG:
        from vos import VideoSegmenter
        _SEG["s"] = VideoSegmenter("small", device="cpu", config={"memory": 1})
    return _SEG["s"]


def make_editor(n=6, size=(48, 64), name="clip.mp4", steps=0, root=None, seed=0):
    from seggpt.io import write_mp4
    from vos.synthetic import make_clip
    root = root or tempfile.mkdtemp(prefix="adv_ed_")
    fr, lab = make_clip(seed, n, size=size, num_objects=1)
    write_mp4(os.path.join(root, name), fr, fps=8)
    ed = Editor(segmenter(), root)
    ed.set_adapt_steps(steps)
    ed.open(name)
    return ed, root, lab


def run_all(gen):
    return list(gen)


def check_invariants(ed, where=""):
    """Saved session masks == given; labels show given masks (no overlap); removed objects absent."""
    p = ed.save_session("inv")
    with zipfile.ZipFile(p) as z:
        doc = json.loads(z.read("session.json"))
        from PIL import Image
        saved = {}
        for n in doc["annotations"]:
            with z.open(n["mask"]) as f:
                saved[(n["frame"], n["object"])] = np.array(Image.open(f)) > 127
    given = {(f, o): m for f in ed.annotated_frames() for o, m in ed.given(f).items()}
    if set(saved) != set(given):
        raise Fail(f"{where}: session holds {sorted(saved)} but given is {sorted(given)}")
    for k in given:
        if not np.array_equal(saved[k], given[k]):
            raise Fail(f"{where}: session mask {k} differs from given")
    ids = set(ed.objects)
    for (f, o) in given:
        if o not in ids:
            raise Fail(f"{where}: given mask of removed object {o} on frame {f}")
    for f in range(ed.num_frames):
        lab = ed.labels(f)
        extra = set(np.unique(lab).tolist()) - ids - {0}
        if extra:
            raise Fail(f"{where}: labels({f}) shows removed/unknown object ids {sorted(extra)}")
        g = ed.given(f)
        for o, m in g.items():
            others = [mm for oo, mm in g.items() if oo != o]
            excl = m & ~np.any(others, axis=0) if others else m
            if not np.array_equal(lab[excl] == o, np.ones(int(excl.sum()), bool)):
                raise Fail(f"{where}: labels({f}) does not show given mask of object {o} "
                           f"({int((lab[excl] != o).sum())} px missing)")
            if ((lab == o) & ~m).any() and f in ed.results:
                raise Fail(f"{where}: labels({f}) shows object {o} outside its given mask "
                           f"({int(((lab == o) & ~m).sum())} px)")


BR = lambda x, y, r=6: [{"tool": "brush", "radius": r, "points": [[x, y], [x + 8, y + 4]]}]


@case
def ed_errors_no_video():
    ed = Editor(segmenter(), tempfile.mkdtemp())
    for name, fn in [("draw", lambda: ed.draw(0, 1, BR(5, 5))), ("box", lambda: ed.box_to_mask(0, 1, [0, 0, 5, 5])),
                     ("accept", lambda: ed.accept_prediction(0, 1)), ("undo", lambda: ed.undo()),
                     ("add_object", lambda: ed.add_object("a")), ("export", lambda: ed.export()),
                     ("save", lambda: ed.save_session("x")), ("propagate", lambda: run_all(ed.propagate(0))),
                     ("labels", lambda: ed.labels(0)), ("origin", lambda: ed.origin(0, 1))]:
        must_raise(fn, EditorError, f"{name} with no video")


@case
def ed_errors_no_object():
    ed, root, _ = make_editor()
    for name, fn in [("draw", lambda: ed.draw(0, 1, BR(5, 5))), ("box", lambda: ed.box_to_mask(0, 1, [0, 0, 20, 20])),
                     ("accept", lambda: ed.accept_prediction(0, 1)), ("undo", lambda: ed.undo()),
                     ("export", lambda: ed.export()), ("propagate", lambda: run_all(ed.propagate(0)))]:
        must_raise(fn, EditorError, f"{name} with no object")


@case
def ed_hostile_frame_and_object_ids():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    for fr in [None, "x", -1, 6, 10 ** 30, float("nan"), float("inf"), [0], {}]:
        must_raise(lambda: ed.draw(fr, a, BR(5, 5)), EditorError, f"draw(frame={fr!r})")
    for ob in [None, "x", 0, 2, 256, float("nan"), float("inf"), [1], 10 ** 30]:
        must_raise(lambda: ed.draw(0, ob, BR(5, 5)), EditorError, f"draw(obj={ob!r})")


@case
def ed_fractional_frame_index_rejected():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    must_raise(lambda: ed.draw(1.7, a, BR(5, 5)), EditorError, "draw(frame=1.7) silently uses frame 1")


@case
def ed_add_object_hostile():
    ed, root, _ = make_editor()
    for oid in ["x", float("inf"), float("nan"), 0, 256, -3, [1]]:
        must_raise(lambda: ed.add_object("n", oid), EditorError, f"add_object(obj_id={oid!r})")
    must_raise(lambda: ed.add_object("n", 1.5), EditorError, "add_object(obj_id=1.5) silently becomes 1")
    expect_error(lambda: ed.add_object(123), EditorError, "add_object(name=123)")


@case
def ed_set_adapt_steps_hostile():
    ed, root, _ = make_editor()
    for s in [float("inf"), float("nan"), -1, 10 ** 9, "abc", None, [3], 2.5]:
        must_raise(lambda: ed.set_adapt_steps(s), EditorError, f"set_adapt_steps({s!r})")
    must_raise(lambda: ed.set_adapt_steps(True), EditorError, "set_adapt_steps(True) accepted as 1")


@case
def ed_draw_hostile_strokes():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    for st in [None, [], "x", [{"tool": "brush"}], S([[10 ** 400, 1]]), S([[1, 1]], r=10 ** 400), {"strokes": []},
               S([[float("nan"), 1]])]:
        must_raise(lambda: ed.draw(0, a, st), EditorError, f"draw(strokes={st!r:.50})")
    assert ed.can_undo == 0 and ed.annotated_frames() == [], "failed draws changed the state"


@case
def ed_box_hostile():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    for b in [None, [1, 2], [0, 0, 1, 1], [1000, 1000, 2000, 2000], [0, 0, 10 ** 400, 5], [True, 0, 5, 5]]:
        must_raise(lambda: ed.box_to_mask(0, a, b), EditorError, f"box_to_mask({b!r:.40})")
    assert ed.can_undo == 0


@case
def ed_box_flat_video():
    from seggpt.io import write_mp4
    root = tempfile.mkdtemp()
    write_mp4(os.path.join(root, "flat.mp4"), [np.full((32, 32, 3), 90, np.uint8)] * 3, fps=8)
    ed = Editor(segmenter(), root)
    ed.open("flat.mp4")
    a = ed.add_object("a")
    expect_error(lambda: ed.box_to_mask(0, a, [0, 0, 32, 32]), EditorError, "box on flat frame")
    expect_error(lambda: ed.box_to_mask(0, a, [4, 4, 12, 12]), EditorError, "small box on flat frame")


@case
def ed_draw_then_labels_and_session():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    b = ed.add_object("b")
    ed.draw(0, a, BR(10, 10))
    ed.draw(0, b, BR(30, 20))
    ed.draw(2, a, BR(40, 30))
    check_invariants(ed, "after draws")
    run_all(ed.propagate(0))
    check_invariants(ed, "after propagate")
    ed.accept_prediction(4, a)
    check_invariants(ed, "after accept")
    ed.undo()
    check_invariants(ed, "after undo")


@case
def ed_undo_after_remove_object():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    b = ed.add_object("b")
    ed.draw(0, a, BR(10, 10))
    ed.draw(0, b, BR(40, 25))  # the undo record of this change holds frame 0's result with a in it
    ed.remove_object(a)
    check_invariants(ed, "after remove_object")
    ed.undo()
    check_invariants(ed, "after remove_object + undo of another object's change")


@case
def ed_undo_after_remove_then_readd_same_id():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    run_all(ed.propagate(0))
    ed.remove_object(a)
    c = ed.add_object("c")  # reuses id 1
    if ed.origin(3, c) != "none":
        raise Fail(f"new object {c} (id reused) reports origin {ed.origin(3, c)!r} on frame 3: the removed object's")


@case
def ed_soft_export_after_remove_readd():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10, r=10))
    run_all(ed.propagate(0))
    ed.remove_object(a)
    c = ed.add_object("c")
    zp, msg = ed.export(["alpha"], soft=True)
    from PIL import Image
    with zipfile.ZipFile(zp) as z:
        names = [n for n in z.namelist() if n.startswith("alpha/") and n.endswith(".png")]
        tot = 0
        for n in names:
            with z.open(n) as f:
                im = np.array(Image.open(f))
            tot += int((im[..., 3] > 0).sum()) if im.ndim == 3 and im.shape[-1] == 4 else 0
    if tot:
        raise Fail(f"soft alpha export of new object {c} (never drawn) has {tot} opaque px: removed object's alpha")


@case
def ed_undo_after_propagation():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    run_all(ed.propagate(0))
    ed.draw(3, a, BR(30, 20))
    run_all(ed.propagate(0))
    msg, f, o = ed.undo()
    assert (f, o) == (3, a), (f, o)
    check_invariants(ed, "undo after propagation")
    ed.undo()
    check_invariants(ed, "undo all")
    must_raise(lambda: ed.undo(), EditorError, "undo past history")
    must_raise(lambda: run_all(ed.propagate(0)), EditorError, "propagate without masks")


@case
def ed_undo_across_open_and_session():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    ed.save_session("s1")
    ed.open("clip.mp4")
    must_raise(lambda: ed.undo(), EditorError, "undo after opening a video")
    ed.open_session("s1" + ".vos-session.zip")
    must_raise(lambda: ed.undo(), EditorError, "undo right after open_session")
    check_invariants(ed, "after open_session")
    assert ed.origin(0, a) == "painted", ed.origin(0, a)


@case
def ed_session_hostile_docs():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    good = ed.save_session("good")
    with zipfile.ZipFile(good) as z:
        base = json.loads(z.read("session.json"))
        mask_bytes = z.read(base["annotations"][0]["mask"])
    variants = {
        "doc is list": [1, 2],
        "objects None": dict(base, objects=None),
        "object id None": dict(base, objects=[{"id": None, "name": "a"}]),
        "object id 999": dict(base, objects=[{"id": 999, "name": "a"}]),
        "note frame None": dict(base, annotations=[dict(base["annotations"][0], frame=None)]),
        "note frame 99": dict(base, annotations=[dict(base["annotations"][0], frame=99)]),
        "note object missing": dict(base, annotations=[dict(base["annotations"][0], object=7)]),
        "note mask missing": dict(base, annotations=[dict(base["annotations"][0], mask="masks/nope.png")]),
        "video int": dict(base, video=5),
        "video outside": dict(base, video="../../etc/passwd"),
        "video None": dict(base, video=None),
        "settings list": dict(base, settings=[1]),
        "fps string": dict(base, fps="abc"),
        "annotations dict": dict(base, annotations={"a": 1}),
    }
    sess = os.path.join(root, "sessions")
    for name, doc in variants.items():
        p = os.path.join(sess, name.replace(" ", "_") + ".vos-session.zip")
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("session.json", json.dumps(doc))
            z.writestr(base["annotations"][0]["mask"], mask_bytes)
        expect_error(lambda: ed.open_session(os.path.basename(p)), EditorError, f"open_session({name})")
    p = os.path.join(sess, "garbage.vos-session.zip")
    open(p, "wb").write(b"not a zip")
    must_raise(lambda: ed.open_session("garbage.vos-session.zip"), EditorError, "garbage session")


@case
def ed_session_failed_open_keeps_state():
    """A session that fails half-way must not leave the editor half-loaded."""
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    good = ed.save_session("good")
    with zipfile.ZipFile(good) as z:
        base = json.loads(z.read("session.json"))
        mb = z.read(base["annotations"][0]["mask"])
    bad = dict(base, annotations=base["annotations"] + [dict(base["annotations"][0], frame=99)])
    p = os.path.join(root, "sessions", "half.vos-session.zip")
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("session.json", json.dumps(bad))
        z.writestr(base["annotations"][0]["mask"], mb)
    ed.draw(2, a, BR(30, 20))
    before = sorted(ed.annotated_frames()), ed.can_undo
    must_raise(lambda: ed.open_session("half.vos-session.zip"), EditorError, "half-bad session")
    after = sorted(ed.annotated_frames()), ed.can_undo
    if after != before:
        raise Fail(f"failed open_session changed the editor: (frames, undo) {before} -> {after}")


@case
def ed_cancel_during_adapt_then_propagate():
    ed, root, _ = make_editor(steps=3)
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    seen = []

    def on_adapt(p):
        seen.append(p)
        ed.cancel()
    out = expect_error(lambda: seen.append(run_all(ed.propagate(0, on_adapt=on_adapt))), EditorError,
                       "cancel during adaptation", limit=60)
    must_raise(lambda: None, EditorError, "noop") if False else None
    res = run_all(ed.propagate(0))
    if len(res) != ed.num_frames:
        raise Fail(f"propagate after cancelled adaptation did {len(res)} of {ed.num_frames} frames")
    if ed.cancelled:
        raise Fail("still 'cancelled' after a complete propagation")


@case
def ed_cancel_mid_propagation_keeps_done():
    ed, root, _ = make_editor(n=8)
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    done = []
    for d, t, f in ed.propagate(0):
        done.append(f)
        if d == 3:
            ed.cancel()
    if len(done) != 3:
        raise Fail(f"cancel after 3 frames: {len(done)} done")
    must_raise(lambda: ed.set_adapt_steps(2), EditorError, "noop") if False else None
    ed.set_adapt_steps(1)
    res = run_all(ed.propagate(0))
    assert len(res) == 8
    check_invariants(ed, "after cancel + repropagate")


@case
def ed_mutations_during_propagation():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    g = ed.propagate(0)
    next(g)
    for name, fn in [("set_adapt_steps", lambda: ed.set_adapt_steps(5)), ("draw", lambda: ed.draw(1, a, BR(5, 5))),
                     ("undo", lambda: ed.undo()), ("remove_object", lambda: ed.remove_object(a)),
                     ("export", lambda: ed.export()), ("propagate", lambda: next(ed.propagate(0))),
                     ("accept", lambda: ed.accept_prediction(0, a))]:
        must_raise(fn, EditorError, f"{name} during propagation")
    if a not in ed.objects:
        raise Fail("remove_object during propagation removed the object anyway")
    rest = list(g)
    check_invariants(ed, "after propagation with refused mutations")
    ed.set_adapt_steps(2)
    assert ed.adapt_steps == 2


@case
def ed_remove_object_while_adapting_refused():
    ed, root, _ = make_editor(steps=2)
    a = ed.add_object("a")
    b = ed.add_object("b")
    ed.draw(0, a, BR(10, 10))
    errs = []

    def on_adapt(p):
        try:
            ed.remove_object(b)
        except EditorError as e:
            errs.append(str(e))
    run_all(ed.propagate(0, on_adapt=on_adapt))
    if not errs or b not in ed.objects:
        raise Fail("remove_object from within adaptation callback was not refused")


@case
def ed_export_cancel_then_again():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    run_all(ed.propagate(0))

    def prog(i, n):
        if i == 2:
            ed.cancel()
    must_raise(lambda: ed.export(progress=prog), Cancelled, "cancelled export", limit=60)
    exp = os.path.join(root, "exports")
    left = os.listdir(exp)
    if left:
        raise Fail(f"cancelled export left {left}")
    zp, msg = ed.export()
    assert os.path.exists(zp), msg
    left = [n for n in os.listdir(exp) if n.startswith(".") and not n.startswith(".seggpt-vos-manifest")]
    if left:
        raise Fail(f"export left temp entries {left}")
    zp2, _ = ed.export(["index"])
    assert zp2 != zp


@case
def ed_export_hostile_kinds():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    for k in [[], ["bogus"], "index", None, [None], [["index"]]]:
        expect_error(lambda: ed.export(k), EditorError, f"export({k!r})", limit=30)


@case
def ed_tiny_and_odd_frames():
    import av
    root = tempfile.mkdtemp()
    for name, (h, w) in {"t8.mkv": (8, 8), "odd.mkv": (17, 23), "tall.mkv": (61, 9)}.items():
        c = av.open(os.path.join(root, name), "w")
        s = c.add_stream("ffv1", rate=8)
        s.width, s.height, s.pix_fmt = w, h, "bgr0"
        rng = np.random.default_rng(0)
        for i in range(3):
            f = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        c.close()
        ed = Editor(segmenter(), root)
        ed.set_adapt_steps(0)
        ed.open(name)
        if ed.size != (h, w):
            raise Fail(f"{name}: size {ed.size} != {(h, w)}")
        a = ed.add_object("a")
        ed.draw(0, a, [{"tool": "brush", "radius": 2, "points": [[w / 2, h / 2]]}])
        expect_error(lambda: ed.box_to_mask(1, a, [0, 0, w, h]), EditorError, f"{name} box")
        expect_error(lambda: run_all(ed.propagate(0)), EditorError, f"{name} propagate", limit=60)
        check_invariants(ed, name)
        expect_error(lambda: ed.export(), EditorError, f"{name} export", limit=60)


@case
def ed_draw_correction_is_prediction_plus_strokes():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10, r=8))
    run_all(ed.propagate(0))
    pred = ed.labels(3) == a
    st = [{"tool": "eraser", "radius": 3, "points": [[5, 5]]}, {"tool": "brush", "radius": 2, "points": [[50, 40]]}]
    ed.draw(3, a, st)
    want = drawing.apply_strokes(pred, drawing.parse_strokes(st, ed.size))
    if not np.array_equal(ed.given(3)[a], want):
        raise Fail("correction != prediction + strokes")
    if "corrected" not in ed.origin(3, a):
        raise Fail(f"origin of correction is {ed.origin(3, a)!r}")


@case
def ed_undo_depth_and_random_sequences():
    rng = np.random.default_rng(5)
    ed, root, _ = make_editor(n=5)
    ids = [ed.add_object("a"), ed.add_object("b")]
    log = []
    for step in range(120):
        op = rng.choice(["draw", "draw", "erase", "undo", "accept", "prop", "remove", "add", "box"])
        f = int(rng.integers(0, 5))
        o = int(rng.choice(list(ed.objects))) if ed.objects else None
        try:
            if op == "draw" and o:
                ed.draw(f, o, BR(float(rng.uniform(0, 60)), float(rng.uniform(0, 44)), r=float(rng.uniform(1, 8))))
            elif op == "erase" and o:
                ed.draw(f, o, [{"tool": "eraser", "radius": 6, "points": [[float(rng.uniform(0, 60)), 20.0]]}])
            elif op == "undo":
                ed.undo()
            elif op == "accept" and o:
                ed.accept_prediction(f, o)
            elif op == "prop":
                run_all(ed.propagate(f, reverse=bool(rng.integers(0, 2))))
            elif op == "remove" and o and len(ed.objects) > 1:
                ed.remove_object(o)
            elif op == "add":
                ed.add_object("n")
            elif op == "box" and o:
                ed.box_to_mask(f, o, [float(rng.uniform(0, 30)), 0, float(rng.uniform(34, 64)), 40])
            log.append(f"{op}(f={f},o={o})")
        except EditorError:
            log.append(f"{op}(f={f},o={o})=err")
        except Exception as e:
            raise Fail(f"step {step} {op}: {type(e).__name__}: {e}")
        check_invariants(ed, f"random step {step}, last ops {log[-5:]}")
    check_invariants(ed, "random end")


@case
def ed_undo_overlapping_draw_restores_other_given():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    b = ed.add_object("b")
    ed.draw(0, a, BR(20, 20, r=8))
    ed.draw(0, b, BR(24, 22, r=8))  # over a's given mask
    ed.undo()
    check_invariants(ed, "undo of b drawn over a's given mask")


@case
def ed_undo_overlapping_after_propagate():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    b = ed.add_object("b")
    ed.draw(0, a, BR(20, 20, r=8))
    run_all(ed.propagate(0))
    ed.draw(2, a, BR(20, 20, r=8))
    ed.draw(2, b, BR(24, 22, r=8))
    ed.undo()
    check_invariants(ed, "undo of b over a's given on a propagated frame")


@case
def ed_remove_object_restores_other_given():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    b = ed.add_object("b")
    ed.draw(0, a, BR(20, 20, r=8))
    ed.draw(0, b, BR(24, 22, r=8))
    ed.remove_object(b)
    check_invariants(ed, "remove b drawn over a's given mask")


@case
def ed_open_8x8_ffv1_frames_readable():
    import av
    root = tempfile.mkdtemp()
    c = av.open(os.path.join(root, "t8.mkv"), "w")
    s = c.add_stream("ffv1", rate=8)
    s.width, s.height, s.pix_fmt = 8, 8, "bgr0"
    for i in range(3):
        for p in s.encode(av.VideoFrame.from_ndarray(np.full((8, 8, 3), 40 * i, np.uint8), format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    ed = Editor(segmenter(), root)
    expect_error(lambda: ed.open("t8.mkv"), EditorError, "open 8x8")
    if ed.is_open:
        f = expect_error(lambda: ed.frame(0), EditorError, "frame(0) of 8x8 ffv1")


@case
def ed_save_session_hostile_names():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    for n in ["../../evil", "/etc/passwd", "a\x00b", "x" * 5000, None, "", "...", 5, "sessions/../../x"]:
        r = expect_error(lambda: ed.save_session(n), EditorError, f"save_session({n!r:.30})")
    for dp, dn, fn in os.walk(os.path.dirname(root)):
        pass
    outside = [f for f in os.listdir(root) if f not in ("clip.mp4", "sessions")]
    if outside:
        raise Fail(f"save_session wrote outside sessions/: {outside}")


@case
def ed_progress_callback_raises():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    run_all(ed.propagate(0))

    def boom(i, n):
        raise RuntimeError("user callback")
    try:
        ed.export(progress=boom)
    except RuntimeError:
        pass
    zp, _ = ed.export(["index"])  # the editor must not stay busy
    left = [n for n in os.listdir(os.path.join(root, "exports")) if n.startswith(".") and "manifest" not in n]
    if left:
        raise Fail(f"export aborted by its callback left {left}")


@case
def ed_generator_abandoned_releases_busy():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    g = ed.propagate(0)
    next(g)
    g.close()
    ed.draw(1, a, BR(20, 20))  # must not say a propagation is running
    g = ed.propagate(0)
    next(g)
    del g
    ed.draw(2, a, BR(20, 20))


@case
def ed_propagate_edges():
    ed, root, _ = make_editor(n=4)
    a = ed.add_object("a")
    ed.draw(3, a, BR(10, 10))
    r = run_all(ed.propagate(3))
    assert len(r) == 1 and r[0][2] == 3, r
    r = run_all(ed.propagate(3, reverse=True))
    assert [x[2] for x in r] == [3, 2, 1, 0], r
    r = run_all(ed.propagate(0, reverse=True))
    assert len(r) == 1, r
    check_invariants(ed, "edges")


@case
def ed_load_mask_hostile_pngs():
    from PIL import Image
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    d = tempfile.mkdtemp()
    cases = {"wrong size": np.zeros((10, 10), np.uint8), "rgba": np.zeros((48, 64, 4), np.uint8),
             "16bit": np.full((48, 64), 300, np.uint16), "ids>255 palette-less": np.full((48, 64), 255, np.uint8)}
    for name, arr in cases.items():
        p = os.path.join(d, name.replace(" ", "_") + ".png")
        Image.fromarray(arr).save(p)
        expect_error(lambda: ed.load_mask(0, p, a), EditorError, f"load_mask {name}")
    p = os.path.join(d, "junk.png")
    open(p, "wb").write(b"\x89PNG junk")
    must_raise(lambda: ed.load_mask(0, p, a), EditorError, "junk png")
    must_raise(lambda: ed.load_mask(0, os.path.join(d, "missing.png"), a), EditorError, "missing png")
    check_invariants(ed, "after load_mask attempts")


@case
def ed_session_roundtrip_overlapping():
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    b = ed.add_object("b")
    ed.draw(0, a, BR(20, 20, r=8))
    ed.draw(0, b, BR(24, 22, r=8))
    ed.draw(3, b, [{"tool": "eraser", "radius": 3, "points": [[1, 1]]}])  # empty: "not on this frame"
    ed.save_session("ov")
    g0 = {f: {o: m.copy() for o, m in ed.given(f).items()} for f in ed.annotated_frames()}
    ed.open_session("ov.vos-session.zip")
    g1 = {f: ed.given(f) for f in ed.annotated_frames()}
    if set(g0) != set(g1) or any(set(g0[f]) != set(g1[f]) or any(not np.array_equal(g0[f][o], g1[f][o]) for o in g0[f])
                                 for f in g0):
        raise Fail("session round trip changed the given masks")
    check_invariants(ed, "after overlapping round trip")


def browser_cases():
    """Headless Chromium against `python -m vos.app` (needs playwright and /usr/bin/chromium)."""
    import os, sys, time, json, subprocess, socket, numpy as np
    sys.path.insert(0, "/work/main")
    from seggpt.io import write_mp4
    from vos.synthetic import make_clip
    root = tempfile.mkdtemp(prefix="adv_browser_")
    fr, _ = make_clip(0, 5, size=(48, 64), num_objects=1)
    write_mp4(os.path.join(root, "clip.mp4"), fr, fps=8)
    import av
    for name, (h, w) in {"t8.mkv": (8, 8), "odd.mkv": (17, 23)}.items():
        c = av.open(os.path.join(root, name), "w"); s = c.add_stream("ffv1", rate=8); s.width, s.height, s.pix_fmt = w, h, "bgr0"
        for i in range(3):
            for pk in s.encode(av.VideoFrame.from_ndarray(np.random.randint(0, 255, (h, w, 3), dtype=np.uint8), format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
        c.close()
    port = 7932
    logf = open(os.path.join(root, "app.log"), "w")
    proc = subprocess.Popen(["/work/main/.venv/bin/python", "-m", "vos.app", "--root", root, "--weights", "small",
                             "--device", "cpu", "--port", str(port)], cwd="/work/main", stdout=logf, stderr=subprocess.STDOUT)
    for _ in range(120):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close(); break
        except OSError:
            time.sleep(0.5)
    from playwright.sync_api import sync_playwright
    results = []
    def status(page):
        return page.locator("#status textarea").input_value()
    def press(page, sel, wait=2.0):
        page.click(sel); time.sleep(wait); return status(page)
    def check(name, s, expect_error=True):
        # expect_error None: a one-line error or a success are both right (content-dependent, e.g. GrabCut)
        ok = ("Traceback" not in s) and ("\n" not in s.strip()) and (
            expect_error is None or (s.startswith("error:") if expect_error else not s.startswith("error:")))
        results.append((name, ok, s[:160])); print("PASS" if ok else "FAIL", name, "|", s[:160].replace("\n", "\\n"), flush=True)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
            page = b.new_page(); page.goto(f"http://127.0.0.1:{port}/"); page.wait_for_selector("#use-drawing", timeout=60000)
            time.sleep(2)
            for sel in ["#use-drawing", "#box-to-mask", "#accept", "#undo", "#forward", "#backward", "#export", "#save-session"]:
                check(f"no video {sel}", press(page, sel, 1.5))
            def openv(n):
                page.click("#pick-video input"); time.sleep(0.5); page.keyboard.press("Control+A"); page.keyboard.type(n); time.sleep(0.5); page.keyboard.press("Enter"); time.sleep(0.5)
                return press(page, "#open", 4)
            check("open clip", openv("clip.mp4"), False)
            page.fill("#object-name input, #object-name textarea", "a"); check("add a", press(page, "#add-object", 2), False)
            page.fill("#object-name input, #object-name textarea", "b"); check("add b", press(page, "#add-object", 2), False)
            time.sleep(1)
            key = page.evaluate("() => window.vosCanvas.key()")
            print("key", key)
            def forge(strokes_js, k="key"):
                page.evaluate("([k, v]) => { window.__o = window.__o || window.vosCanvas.strokes; window.vosCanvas.strokes = () => JSON.stringify({key: k, strokes: v}); }", [key if k == "key" else k, None])
                page.evaluate(f"() => {{ const k = JSON.parse(window.vosCanvas.strokes()).key; const v = {strokes_js}; window.vosCanvas.strokes = () => JSON.stringify({{key: k, strokes: v}}); }}")
                return press(page, "#use-drawing", 3)
            check("forged 300k points", forge("[{tool:'brush',radius:3,points:Array(300000).fill([1,1])}]"))
            check("forged radius 1e9", forge("[{tool:'brush',radius:1e9,points:[[1,1]]}]"))
            check("forged tool", forge("[{tool:'fill',radius:3,points:[[1,1]]}]"))
            check("forged far point", forge("[{tool:'brush',radius:3,points:[[1e7,1]]}]"))
            check("forged strokes dict", forge("{a:1}"))
            check("forged bogus key", forge("[{tool:'brush',radius:3,points:[[5,5]]}]", k="bogus-key"))
            check("forged null key", forge("[{tool:'brush',radius:3,points:[[5,5]]}]", k=None))
            check("forged valid", forge("[{tool:'brush',radius:6,points:[[20,20],[30,25]]}]"), False)
            page.evaluate("() => { window.vosCanvas.strokes = window.__o; }")
            # stale key: the key from before the valid commit
            check("stale key after commit", forge("[{tool:'brush',radius:3,points:[[5,5]]}]", k=key))
            # move slider to frame 2, then send strokes with frame-0 key
            k0 = page.evaluate("() => window.vosCanvas.key()")
            num = page.locator("#frame input[type=number]")
            num.fill("2"); num.press("Enter"); time.sleep(2)
            k2 = page.evaluate("() => window.vosCanvas.key()")
            print("k0", k0, "k2", k2)
            check("strokes with frame-0 key after slider moved (land on frame 0, by design)", forge("[{tool:'brush',radius:3,points:[[5,5]]}]", k=k0), False)
            check("propagate", press(page, "#forward", 8), False)
            for i in range(8): page.click("#cancel")
            check("after cancel spam: undo", press(page, "#undo", 2), False)
            check("export", press(page, "#export", 8), False)
            # tiny/odd videos
            for n in ["t8.mkv", "odd.mkv"]:
                check(f"open {n}", openv(n), False)
                page.fill("#object-name input, #object-name textarea", "a"); press(page, "#add-object", 2)
                page.evaluate("() => { if (window.__o) window.vosCanvas.strokes = window.__o; }")
                key = page.evaluate("() => window.vosCanvas.key()")  # this video's canvas, not the first one's
                check(f"{n} forged valid draw", forge("[{tool:'brush',radius:2,points:[[4,4]]}]"), False)
                check(f"{n} box", (page.evaluate("() => { const k = window.vosCanvas.key(); window.__b = window.__b || window.vosCanvas.box; window.vosCanvas.box = () => JSON.stringify({key: k, box: [0,0,8,8]}); }"), press(page, "#box-to-mask", 3))[1], None)
                check(f"{n} propagate", press(page, "#forward", 10), False)
                page.evaluate("() => { if (window.__b) window.vosCanvas.box = window.__b; }")
            b.close()
    finally:
        proc.terminate(); proc.wait(10); logf.close()
    log = open(os.path.join(root, "app.log")).read()
    tb = log.count("Traceback")
    print("app log Tracebacks:", tb)
    if tb:
        i = log.index("Traceback"); print(log[i:i + 1500])
    print(sum(ok for _, ok, _ in results), "/", len(results), "browser checks passed")
    return [n for n, ok, _ in results if not ok] + (["app log has Traceback"] if tb else [])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="")
    ap.add_argument("--browser", action="store_true")
    a = ap.parse_args(argv)
    sel = [c for c in CASES if a.k in c.__name__]
    fails = []
    t0 = time.time()
    for c in sel:
        t = time.time()
        try:
            c()
            print(f"PASS {c.__name__} ({time.time() - t:.1f}s)", flush=True)
        except Fail as e:
            fails.append(c.__name__)
            print(f"FAIL {c.__name__}: {e}", flush=True)
        except Exception as e:
            fails.append(c.__name__)
            tb = traceback.format_exc().strip().splitlines()
            print(f"FAIL {c.__name__}: unexpected {type(e).__name__}: {str(e)[:200]} [{tb[-3].strip()[:150]}]",
                  flush=True)
    bf = []
    if a.browser:
        bf = browser_cases()
        for n in bf:
            print(f"FAIL browser: {n}")
        fails += [f"browser: {n}" for n in bf]
    total = len(sel) + (len(bf) if a.browser else 0)
    print(f"\n{total - len(fails)}/{total} passed ({len(sel)} library cases) in {time.time() - t0:.0f}s; failing: {', '.join(fails) or 'none'}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
