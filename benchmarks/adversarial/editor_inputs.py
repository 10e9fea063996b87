"""Editor pass cases (`editor`): hostile arguments and files given to vos.editing.editor.Editor.

No video or no object yet; frame and object ids, adaptation steps, strokes, boxes and export kinds
of the wrong type or range; crafted and broken session files; hostile session names; masks of the
wrong size or format; tiny, odd and flat videos. Each is a one-line EditorError or works, and a
refused call leaves the editor as it was.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from vos.editing.editor import Editor, EditorError

from .editor import (BR, case, check_invariants, drawn_editor, each, expect_error, make_editor, must_raise, one_object,
                     run_all, segmenter, write_ffv1)
from .editor_drawing import S

NAN, INF = float("nan"), float("inf")


def calls(ed, box):
    """What a user does on an editor, by name (object 1, frame 0; `box` for the box)."""
    return {"draw": lambda: ed.draw(0, 1, BR(5, 5)), "box": lambda: ed.box_to_mask(0, 1, box),
            "accept": lambda: ed.accept_prediction(0, 1), "undo": lambda: ed.undo(),
            "add_object": lambda: ed.add_object("a"), "export": lambda: ed.export(), "save": lambda: ed.save_session("x"),
            "propagate": lambda: run_all(ed.propagate(0)), "labels": lambda: ed.labels(0), "origin": lambda: ed.origin(0, 1)}


@case
def ed_errors_no_video():
    for name, fn in calls(Editor(segmenter(), tempfile.mkdtemp()), [0, 0, 5, 5]).items():
        must_raise(fn, EditorError, f"{name} with no video")


@case
def ed_errors_no_object():
    ed_calls = calls(make_editor()[0], [0, 0, 20, 20])
    for name in ["draw", "box", "accept", "undo", "export", "propagate"]:
        must_raise(ed_calls[name], EditorError, f"{name} with no object")


@case
def ed_hostile_frame_and_object_ids():
    ed, a = one_object()
    each(lambda fr: ed.draw(fr, a, BR(5, 5)), [None, "x", -1, 6, 10 ** 30, NAN, INF, [0], {}], EditorError,
         "draw(frame={!r})")
    each(lambda ob: ed.draw(0, ob, BR(5, 5)), [None, "x", 0, 2, 256, NAN, INF, [1], 10 ** 30], EditorError,
         "draw(obj={!r})")


@case
def ed_fractional_frame_index_rejected():
    ed, a = one_object()
    must_raise(lambda: ed.draw(1.7, a, BR(5, 5)), EditorError, "draw(frame=1.7) silently uses frame 1")


@case
def ed_add_object_hostile():
    ed, root, _ = make_editor()
    each(lambda oid: ed.add_object("n", oid), ["x", INF, NAN, 0, 256, -3, [1]], EditorError, "add_object(obj_id={!r})")
    must_raise(lambda: ed.add_object("n", 1.5), EditorError, "add_object(obj_id=1.5) silently becomes 1")
    expect_error(lambda: ed.add_object(123), EditorError, "add_object(name=123)")


@case
def ed_set_adapt_steps_hostile():
    ed, root, _ = make_editor()
    each(ed.set_adapt_steps, [INF, NAN, -1, 10 ** 9, "abc", None, [3], 2.5], EditorError, "set_adapt_steps({!r})")
    must_raise(lambda: ed.set_adapt_steps(True), EditorError, "set_adapt_steps(True) accepted as 1")


@case
def ed_draw_hostile_strokes():
    ed, a = one_object()
    each(lambda st: ed.draw(0, a, st), [None, [], "x", [{"tool": "brush"}], S([[10 ** 400, 1]]), S([[1, 1]], r=10 ** 400),
                                        {"strokes": []}, S([[NAN, 1]])], EditorError, "draw(strokes={!r:.50})")
    assert ed.can_undo == 0 and ed.annotated_frames() == [], "failed draws changed the state"


@case
def ed_box_hostile():
    ed, a = one_object()
    each(lambda b: ed.box_to_mask(0, a, b), [None, [1, 2], [0, 0, 1, 1], [1000, 1000, 2000, 2000], [0, 0, 10 ** 400, 5],
                                             [True, 0, 5, 5]], EditorError, "box_to_mask({!r:.40})")
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


def session_parts(ed):
    """What `ed` saves as session "good": the document, its first mask's name and bytes."""
    with zipfile.ZipFile(ed.save_session("good")) as z:
        base = json.loads(z.read("session.json"))
        return base, base["annotations"][0]["mask"], z.read(base["annotations"][0]["mask"])


def write_session(root, name, doc, mask, mask_bytes):
    """sessions/`name`.vos-session.zip under `root`: `doc` as session.json, and the mask."""
    with zipfile.ZipFile(os.path.join(root, "sessions", name + ".vos-session.zip"), "w") as z:
        z.writestr("session.json", json.dumps(doc))
        z.writestr(mask, mask_bytes)


@case
def ed_session_hostile_docs():
    ed, root, a = drawn_editor()
    base, mask, mask_bytes = session_parts(ed)
    note = base["annotations"][0]
    # the saved document with one field replaced: (variant, field, value)
    variants = {"doc is list": [1, 2], **{name: dict(base, **{field: value}) for name, field, value in [
        ("objects None", "objects", None), ("object id None", "objects", [{"id": None, "name": "a"}]),
        ("object id 999", "objects", [{"id": 999, "name": "a"}]),
        ("note frame None", "annotations", [dict(note, frame=None)]), ("note frame 99", "annotations", [dict(note, frame=99)]),
        ("note object missing", "annotations", [dict(note, object=7)]),
        ("note mask missing", "annotations", [dict(note, mask="masks/nope.png")]),
        ("video int", "video", 5), ("video outside", "video", "../../etc/passwd"), ("video None", "video", None),
        ("settings list", "settings", [1]), ("fps string", "fps", "abc"), ("annotations dict", "annotations", {"a": 1})]}}
    for name, doc in variants.items():
        write_session(root, name.replace(" ", "_"), doc, mask, mask_bytes)
        expect_error(lambda: ed.open_session(name.replace(" ", "_") + ".vos-session.zip"), EditorError,
                     f"open_session({name})")
    open(os.path.join(root, "sessions", "garbage.vos-session.zip"), "wb").write(b"not a zip")
    must_raise(lambda: ed.open_session("garbage.vos-session.zip"), EditorError, "garbage session")


@case
def ed_session_failed_open_keeps_state():
    """A session that fails half-way must not leave the editor half-loaded."""
    ed, root, a = drawn_editor()
    base, mask, mask_bytes = session_parts(ed)
    bad = dict(base, annotations=base["annotations"] + [dict(base["annotations"][0], frame=99)])
    write_session(root, "half", bad, mask, mask_bytes)
    ed.draw(2, a, BR(30, 20))
    before = sorted(ed.annotated_frames()), ed.can_undo
    must_raise(lambda: ed.open_session("half.vos-session.zip"), EditorError, "half-bad session")
    after = sorted(ed.annotated_frames()), ed.can_undo
    assert after == before, f"failed open_session changed the editor: (frames, undo) {before} -> {after}"


@case
def ed_export_hostile_kinds():
    ed, root, a = drawn_editor()
    each(ed.export, [[], ["bogus"], "index", None, [None], [["index"]]], EditorError, "export({!r})", 30, expect_error)


@case
def ed_tiny_and_odd_frames():
    root = tempfile.mkdtemp()
    for name, (h, w) in {"t8.mkv": (8, 8), "odd.mkv": (17, 23), "tall.mkv": (61, 9)}.items():
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(3)]
        ed, root, _ = make_editor(name=name, root=root, frames=frames)
        assert ed.size == (h, w), f"{name}: size {ed.size} != {(h, w)}"
        a = ed.add_object("a")
        ed.draw(0, a, [{"tool": "brush", "radius": 2, "points": [[w / 2, h / 2]]}])
        expect_error(lambda: ed.box_to_mask(1, a, [0, 0, w, h]), EditorError, f"{name} box")
        expect_error(lambda: run_all(ed.propagate(0)), EditorError, f"{name} propagate", limit=60)
        check_invariants(ed, name)
        expect_error(lambda: ed.export(), EditorError, f"{name} export", limit=60)


@case
def ed_open_8x8_ffv1_frames_readable():
    root = tempfile.mkdtemp()
    write_ffv1(os.path.join(root, "t8.mkv"), [np.full((8, 8, 3), 40 * i, np.uint8) for i in range(3)])
    ed = Editor(segmenter(), root)
    expect_error(lambda: ed.open("t8.mkv"), EditorError, "open 8x8")
    if ed.is_open:
        expect_error(lambda: ed.frame(0), EditorError, "frame(0) of 8x8 ffv1")


@case
def ed_save_session_hostile_names():
    ed, root, a = drawn_editor()
    each(ed.save_session, ["../../evil", "/etc/passwd", "a\x00b", "x" * 5000, None, "", "...", 5, "sessions/../../x"],
         EditorError, "save_session({!r:.30})", check=expect_error)
    outside = [f for f in os.listdir(root) if f not in ("clip.mp4", "sessions")]
    assert not outside, f"save_session wrote outside sessions/: {outside}"


@case
def ed_load_mask_hostile_pngs():
    from PIL import Image
    ed, a = one_object()
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
