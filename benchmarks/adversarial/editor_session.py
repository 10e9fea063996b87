"""Editor pass cases (`editor`): the editing session stays consistent.

Drawing, undo (after removing or re-adding objects, across propagation, opening a video or a
session), cancelling adaptation, propagation and export, mutations refused while a propagation
runs, callbacks that raise, abandoned generators, session round trips: after each, the saved
session, the given masks and the labels agree (`check_invariants`).
"""
from __future__ import annotations

import contextlib
import os
import zipfile

import numpy as np

from vos.editing import drawing
from seggpt.errors import Cancelled  # a cancelled export is not an error of the user
from vos.editing.editor import EditorError

from .editor import BR, case, check_invariants, drawn_editor, expect_error, must_raise, run_all, two_objects


def play(steps, **kwargs):
    """A case running `steps` on `two_objects(**kwargs)`: ("draw", frame, "a" or "b", x, y, r) draws
    `BR(x, y, r)`, ("propagate",) from frame 0, ("accept", frame, object), ("undo",), ("remove", object),
    ("check", where) checks the invariants."""
    def run():
        ed, a, b = two_objects(**kwargs)
        obj = {"a": a, "b": b}
        do = {"draw": lambda f, o, x, y, r: ed.draw(f, obj[o], BR(x, y, r)), "propagate": lambda: run_all(ed.propagate(0)),
              "accept": lambda f, o: ed.accept_prediction(f, obj[o]), "undo": ed.undo,
              "remove": lambda o: ed.remove_object(obj[o]), "check": lambda where: check_invariants(ed, where)}
        for op, *args in steps:
            do[op](*args)
    return run


B_OVER_A = [("draw", 0, "a", 20, 20, 8), ("draw", 0, "b", 24, 22, 8)]  # b drawn over a's given mask
for name, steps in {
        "ed_draw_then_labels_and_session": [
            ("draw", 0, "a", 10, 10, 6), ("draw", 0, "b", 30, 20, 6), ("draw", 2, "a", 40, 30, 6), ("check", "after draws"),
            ("propagate",), ("check", "after propagate"), ("accept", 4, "a"), ("check", "after accept"), ("undo",),
            ("check", "after undo")],
        # the undo record of b's draw holds frame 0's result with a in it
        "ed_undo_after_remove_object": [
            ("draw", 0, "a", 10, 10, 6), ("draw", 0, "b", 40, 25, 6), ("remove", "a"), ("check", "after remove_object"),
            ("undo",), ("check", "after remove_object + undo of another object's change")],
        "ed_undo_overlapping_draw_restores_other_given": [
            *B_OVER_A, ("undo",), ("check", "undo of b drawn over a's given mask")],
        "ed_undo_overlapping_after_propagate": [
            ("draw", 0, "a", 20, 20, 8), ("propagate",), ("draw", 2, "a", 20, 20, 8), ("draw", 2, "b", 24, 22, 8), ("undo",),
            ("check", "undo of b over a's given on a propagated frame")],
        "ed_remove_object_restores_other_given": [
            *B_OVER_A, ("remove", "b"), ("check", "remove b drawn over a's given mask")],
}.items():
    case(play(steps), name)


def readded(**kwargs):
    """`drawn_editor(propagate=True)`, then "a" removed and a new object "c" added (reusing id 1): (editor, c)."""
    ed, root, a = drawn_editor(propagate=True, **kwargs)
    ed.remove_object(a)
    return ed, ed.add_object("c")


@case
def ed_undo_after_remove_then_readd_same_id():
    ed, c = readded()
    assert ed.origin(3, c) == "none", \
        f"new object {c} (id reused) reports origin {ed.origin(3, c)!r} on frame 3: the removed object's"


@case
def ed_soft_export_after_remove_readd():
    from PIL import Image
    ed, c = readded(r=10)
    zp, msg = ed.export(["alpha"], soft=True)
    with zipfile.ZipFile(zp) as z:
        ims = [np.array(Image.open(z.open(n))) for n in z.namelist() if n.startswith("alpha/") and n.endswith(".png")]
    tot = sum(int((im[..., 3] > 0).sum()) for im in ims if im.ndim == 3 and im.shape[-1] == 4)
    assert not tot, f"soft alpha export of new object {c} (never drawn) has {tot} opaque px: removed object's alpha"


@case
def ed_undo_after_propagation():
    ed, root, a = drawn_editor(propagate=True)
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
    ed, root, a = drawn_editor()
    ed.save_session("s1")
    ed.open("clip.mp4")
    must_raise(lambda: ed.undo(), EditorError, "undo after opening a video")
    ed.open_session("s1" + ".vos-session.zip")
    must_raise(lambda: ed.undo(), EditorError, "undo right after open_session")
    check_invariants(ed, "after open_session")
    assert ed.origin(0, a) == "painted", ed.origin(0, a)


@case
def ed_cancel_during_adapt_then_propagate():
    ed, root, a = drawn_editor(steps=3)
    expect_error(lambda: run_all(ed.propagate(0, on_adapt=lambda p: ed.cancel())), EditorError,
                 "cancel during adaptation", limit=60)
    res = run_all(ed.propagate(0))
    assert len(res) == ed.num_frames, f"propagate after cancelled adaptation did {len(res)} of {ed.num_frames} frames"
    assert not ed.cancelled, "still 'cancelled' after a complete propagation"


@case
def ed_cancel_mid_propagation_keeps_done():
    ed, root, a = drawn_editor(n=8)
    done = []
    for d, t, f in ed.propagate(0):
        done.append(f)
        if d == 3:
            ed.cancel()
    assert len(done) == 3, f"cancel after 3 frames: {len(done)} done"
    ed.set_adapt_steps(1)
    res = run_all(ed.propagate(0))
    assert len(res) == 8
    check_invariants(ed, "after cancel + repropagate")


@case
def ed_mutations_during_propagation():
    ed, root, a = drawn_editor()
    g = ed.propagate(0)
    next(g)
    for name, fn in [("set_adapt_steps", lambda: ed.set_adapt_steps(5)), ("draw", lambda: ed.draw(1, a, BR(5, 5))),
                     ("undo", lambda: ed.undo()), ("remove_object", lambda: ed.remove_object(a)),
                     ("export", lambda: ed.export()), ("propagate", lambda: next(ed.propagate(0))),
                     ("accept", lambda: ed.accept_prediction(0, a))]:
        must_raise(fn, EditorError, f"{name} during propagation")
    assert a in ed.objects, "remove_object during propagation removed the object anyway"
    list(g)  # the propagation runs to its end
    check_invariants(ed, "after propagation with refused mutations")
    ed.set_adapt_steps(2)
    assert ed.adapt_steps == 2


@case
def ed_remove_object_while_adapting_refused():
    ed, a, b = two_objects(steps=2)
    ed.draw(0, a, BR(10, 10))
    errs = []

    def on_adapt(p):
        try:
            ed.remove_object(b)
        except EditorError as e:
            errs.append(str(e))
    run_all(ed.propagate(0, on_adapt=on_adapt))
    assert errs and b in ed.objects, "remove_object from within adaptation callback was not refused"


@case
def ed_export_cancel_then_again():
    ed, root, a = drawn_editor(propagate=True)
    must_raise(lambda: ed.export(progress=lambda i, n: ed.cancel() if i == 2 else None), Cancelled, "cancelled export",
               limit=60)
    exp = os.path.join(root, "exports")
    left = os.listdir(exp)
    assert not left, f"cancelled export left {left}"
    zp, msg = ed.export()
    assert os.path.exists(zp), msg
    left = [n for n in os.listdir(exp) if n.startswith(".") and not n.startswith(".seggpt-vos-manifest")]
    assert not left, f"export left temp entries {left}"
    zp2, _ = ed.export(["index"])
    assert zp2 != zp


@case
def ed_draw_correction_is_prediction_plus_strokes():
    ed, root, a = drawn_editor(r=8, propagate=True)
    pred = ed.labels(3) == a
    st = [{"tool": "eraser", "radius": 3, "points": [[5, 5]]}, {"tool": "brush", "radius": 2, "points": [[50, 40]]}]
    ed.draw(3, a, st)
    want = drawing.apply_strokes(pred, drawing.parse_strokes(st, ed.size))
    assert np.array_equal(ed.given(3)[a], want), "correction != prediction + strokes"
    assert "corrected" in ed.origin(3, a), f"origin of correction is {ed.origin(3, a)!r}"


@case
def ed_undo_depth_and_random_sequences():
    rng = np.random.default_rng(5)
    ed, a, b = two_objects(n=5)
    log = []

    def u(lo, hi):
        return float(rng.uniform(lo, hi))
    # what each op does to frame f and object o (the ops but undo, prop and add need an object)
    does = {"draw": lambda: ed.draw(f, o, BR(u(0, 60), u(0, 44), r=u(1, 8))),
            "erase": lambda: ed.draw(f, o, [{"tool": "eraser", "radius": 6, "points": [[u(0, 60), 20.0]]}]),
            "undo": ed.undo, "accept": lambda: ed.accept_prediction(f, o),
            "prop": lambda: run_all(ed.propagate(f, reverse=bool(rng.integers(0, 2)))),
            "remove": lambda: ed.remove_object(o) if len(ed.objects) > 1 else None, "add": lambda: ed.add_object("n"),
            "box": lambda: ed.box_to_mask(f, o, [u(0, 30), 0, u(34, 64), 40])}
    for step in range(120):
        op = rng.choice(["draw", "draw", "erase", "undo", "accept", "prop", "remove", "add", "box"])
        f = int(rng.integers(0, 5))
        o = int(rng.choice(list(ed.objects))) if ed.objects else None
        try:
            if o or op in ("undo", "prop", "add"):
                does[op]()
            log.append(f"{op}(f={f},o={o})")
        except EditorError:
            log.append(f"{op}(f={f},o={o})=err")
        except Exception as e:
            raise AssertionError(f"step {step} {op}: {type(e).__name__}: {e}")
        check_invariants(ed, f"random step {step}, last ops {log[-5:]}")
    check_invariants(ed, "random end")


@case
def ed_progress_callback_raises():
    ed, root, a = drawn_editor(propagate=True)

    def boom(i, n):
        raise RuntimeError("user callback")
    with contextlib.suppress(RuntimeError):
        ed.export(progress=boom)
    zp, _ = ed.export(["index"])  # the editor must not stay busy
    left = [n for n in os.listdir(os.path.join(root, "exports")) if n.startswith(".") and "manifest" not in n]
    assert not left, f"export aborted by its callback left {left}"


@case
def ed_generator_abandoned_releases_busy():
    ed, root, a = drawn_editor()
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
    ed, root, a = drawn_editor(frame=3, n=4)
    r = run_all(ed.propagate(3))
    assert len(r) == 1 and r[0][2] == 3, r
    r = run_all(ed.propagate(3, reverse=True))
    assert [x[2] for x in r] == [3, 2, 1, 0], r
    r = run_all(ed.propagate(0, reverse=True))
    assert len(r) == 1, r
    check_invariants(ed, "edges")


@case
def ed_session_roundtrip_overlapping():
    ed, a, b = two_objects()
    ed.draw(0, a, BR(20, 20, r=8))
    ed.draw(0, b, BR(24, 22, r=8))
    ed.draw(3, b, [{"tool": "eraser", "radius": 3, "points": [[1, 1]]}])  # empty: "not on this frame"
    ed.save_session("ov")
    g0 = {f: {o: m.copy() for o, m in ed.given(f).items()} for f in ed.annotated_frames()}
    ed.open_session("ov.vos-session.zip")
    g1 = {f: ed.given(f) for f in ed.annotated_frames()}
    if set(g0) != set(g1) or any(set(g0[f]) != set(g1[f]) or any(not np.array_equal(g0[f][o], g1[f][o]) for o in g0[f])
                                 for f in g0):
        raise AssertionError("session round trip changed the given masks")
    check_invariants(ed, "after overlapping round trip")
