"""Editor pass cases (`editor`): the editing session stays consistent.

Drawing, undo (after removing or re-adding objects, across propagation, opening a video or a
session), cancelling adaptation, propagation and export, mutations refused while a propagation
runs, callbacks that raise, abandoned generators, session round trips: after each, the saved
session, the given masks and the labels agree (`check_invariants`).
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from vos.editing import drawing
from seggpt.errors import Cancelled  # a cancelled export is not an error of the user
from vos.editing.editor import EditorError

from .editor import BR, case, check_invariants, drawn_editor, expect_error, make_editor, must_raise, run_all


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
    ed, root, a = drawn_editor()
    run_all(ed.propagate(0))
    ed.remove_object(a)
    c = ed.add_object("c")  # reuses id 1
    assert ed.origin(3, c) == "none", \
        f"new object {c} (id reused) reports origin {ed.origin(3, c)!r} on frame 3: the removed object's"


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
    assert not tot, f"soft alpha export of new object {c} (never drawn) has {tot} opaque px: removed object's alpha"


@case
def ed_undo_after_propagation():
    ed, root, a = drawn_editor()
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
    seen = []

    def on_adapt(p):
        seen.append(p)
        ed.cancel()
    expect_error(lambda: seen.append(run_all(ed.propagate(0, on_adapt=on_adapt))), EditorError,
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
    assert errs and b in ed.objects, "remove_object from within adaptation callback was not refused"


@case
def ed_export_cancel_then_again():
    ed, root, a = drawn_editor()
    run_all(ed.propagate(0))

    def prog(i, n):
        if i == 2:
            ed.cancel()
    must_raise(lambda: ed.export(progress=prog), Cancelled, "cancelled export", limit=60)
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
    ed, root, _ = make_editor()
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10, r=8))
    run_all(ed.propagate(0))
    pred = ed.labels(3) == a
    st = [{"tool": "eraser", "radius": 3, "points": [[5, 5]]}, {"tool": "brush", "radius": 2, "points": [[50, 40]]}]
    ed.draw(3, a, st)
    want = drawing.apply_strokes(pred, drawing.parse_strokes(st, ed.size))
    assert np.array_equal(ed.given(3)[a], want), "correction != prediction + strokes"
    assert "corrected" in ed.origin(3, a), f"origin of correction is {ed.origin(3, a)!r}"


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
            raise AssertionError(f"step {step} {op}: {type(e).__name__}: {e}")
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
def ed_progress_callback_raises():
    ed, root, a = drawn_editor()
    run_all(ed.propagate(0))

    def boom(i, n):
        raise RuntimeError("user callback")
    try:
        ed.export(progress=boom)
    except RuntimeError:
        pass
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
        raise AssertionError("session round trip changed the given masks")
    check_invariants(ed, "after overlapping round trip")
