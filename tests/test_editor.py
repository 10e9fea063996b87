"""vos.editing.editor: the web app's session logic without a browser (open, objects, masks, propagate, cancel, export,
session files, files only under the root folder)."""
import json

import zipfile

import numpy as np
import pytest
from PIL import Image

from seggpt.outputs import MANIFEST, read_manifest
from vos import VideoSegmenter
from seggpt.errors import Cancelled, InputError
from vos.editing.editor import SESSION_SUFFIX, Editor
from vos.io.exports import read_matte, rle_decode
from vos.data.synthetic import make_clip
from seggpt.io import save_index_png, write_mp4


@pytest.fixture(scope="module")
def segmenter(tiny_weights):
    return VideoSegmenter(tiny_weights, config={"memory": 1}, device="cpu")


def _rect(rows: slice, cols: slice, size=(48, 64)) -> np.ndarray:
    """A (H, W) bool mask set on `rows` x `cols`."""
    mask = np.zeros(size, bool)
    mask[rows, cols] = True
    return mask


def _one_mask(ed, labels, origin="drawn"):
    """The clip open with one object "a" given its true mask on frame 0; returns its id."""
    ed.open("clip.mp4")
    o = ed.add_object("a")
    ed.set_mask(0, o, labels[0] == 1, origin=origin)
    return o


def _two_masks(ed, left, right):
    """The clip open with objects "a" and "b" given `left` and `right` on frame 0; returns their ids."""
    ed.open("clip.mp4")
    a, b = ed.add_object("a"), ed.add_object("b")
    ed.set_mask(0, a, left)
    ed.set_mask(0, b, right)
    return a, b


@pytest.fixture(scope="module")
def clip():
    return make_clip(21, 6, size=(48, 64), num_objects=2)


@pytest.fixture
def labels(clip):
    return clip[1]


@pytest.fixture
def ed(segmenter, tmp_path, clip):
    """An editor on tmp_path, which holds clip.mp4 and labels3.png (frame 3's label map)."""
    write_mp4(tmp_path / "clip.mp4", clip[0], fps=10)
    save_index_png(tmp_path / "labels3.png", clip[1][3])
    return Editor(segmenter, tmp_path, settings={"weights": "tiny"})


def test_files_only_under_root(ed, tmp_path):
    with pytest.raises(InputError, match="open a video first"):
        ed.add_object("x")
    frames = tmp_path / "shots" / "a"
    frames.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((8, 12, 3), 40 * i, np.uint8)).save(frames / f"{i:05d}.jpg")
    assert ed.media() == ["clip.mp4", "shots/a/"]  # videos and frame folders (the PNG masks' folder is root)
    assert "3 frames, 12x8, 24 fps" in ed.open("shots/a/")
    for outside in ("../../etc", "/etc/passwd"):
        with pytest.raises(InputError, match="outside the folder"):
            ed.open(outside)


def test_edit_propagate_correct_export_and_session(ed, labels, tmp_path):
    pytest.importorskip("pycocotools")
    assert "6 frames, 64x48" in ed.open("clip.mp4")
    runner = ed.add_object("runner")
    with pytest.raises(InputError, match="give a mask first"):
        list(ed.propagate(0))
    ed.set_mask(0, runner, labels[0] == 1)
    assert ed.load_mask(3, tmp_path / "labels3.png") == [1, 2]  # a label map: its ids, new ones become objects
    assert ed.objects[2].name == "object 2"

    steps = []
    for done, total, idx in ed.propagate(1):
        steps.append((done, total, idx))
        if done == 2:
            ed.cancel()  # the frames done stay
    assert steps == [(1, 5, 1), (2, 5, 2)] and ed.cancelled
    assert sorted(ed.results) == [0, 1, 2, 3]
    assert [i for _, _, i in ed.propagate(0)] == list(range(6))
    assert [i for _, _, i in ed.propagate(2, reverse=True)] == [2, 1, 0]
    assert np.array_equal(ed.labels(3) == 2, labels[3] == 2)  # an annotated frame is its masks

    drawn = ed.mask_of(4, runner)
    drawn[5:15, 5:15] = True  # a correction drawn on frame 4
    ed.set_mask(4, runner, drawn)
    assert [i for _, _, i in ed.propagate(4)] == [4, 5]
    assert np.array_equal(ed.labels(4) == runner, drawn)

    zip_path, message = ed.export()
    assert zip_path.parent == tmp_path / "exports" and "exported" in message
    leftovers = [p for p in (tmp_path / "exports").iterdir() if p.name.startswith(".") and p.name != MANIFEST]
    assert not leftovers  # no work folder left; the manifest records the export as ours
    assert zip_path.name in read_manifest(tmp_path / "exports")["files"]
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
        assert {f"masks/{t:05d}.png" for t in range(6)} <= names
        assert {"matte.mkv", "overlay.mp4", "rle.json", "report.json", "objects.json"} <= names
        assert "objects/001/00004.png" in names and "alpha/002/00004.png" in names
        z.extractall(tmp_path / "x")
    x = tmp_path / "x"
    index4 = np.array(Image.open(x / "masks" / "00004.png"))
    assert np.array_equal(index4 == 1, drawn)
    assert set(np.unique(np.array(Image.open(x / "objects" / "001" / "00004.png")))) <= {0, 255}
    doc = json.loads((x / "rle.json").read_text())
    assert [o["name"] for o in doc["objects"]] == ["runner", "object 2"]
    for fr in doc["frames"]:
        index = np.array(Image.open(x / "masks" / f"{fr['frame_idx']:05d}.png"))
        for o in fr["objects"]:
            assert np.array_equal(rle_decode(o["segmentation"]), index == o["id"])
    assert read_matte(x / "matte.mkv").shape == (6, 48, 64)

    session = ed.save_session("my edit")
    assert session.name == "my_edit" + SESSION_SUFFIX and ed.sessions() == [session.name]
    ed.remove_object(2)
    assert 2 not in ed.objects and not (ed.labels(3) == 2).any()
    assert "2 object(s), 4 mask(s)" in ed.open_session(session.name)  # 1 on 0, 1 and 2 on 3, 1 on 4
    assert ed.objects[1].name == "runner" and ed.annotated_frames() == [0, 3, 4]
    assert np.array_equal(ed.given(4)[1], drawn)


def test_soft_export_has_the_model_edges_and_keeps_drawn_masks_hard(ed, labels, tmp_path):
    """The app exported hard edges only. Soft: the RGBA alpha and the matte come from the model's
    scores (the CLI's --soft mapping) on propagated frames; a mask the user drew stays 0/255. The packaged
    small model (random weights may paint nothing), no adaptation."""
    from seggpt import SegGPT

    ed = Editor(VideoSegmenter(SegGPT.from_pretrained("small"), config={"adapt": {"steps": 0}, "objects": "joint"},
                               device="cpu"), tmp_path)  # the fixture's files, the packaged small model
    runner = _one_mask(ed, labels)
    list(ed.propagate(0))
    drawn = _rect(slice(10, 30), slice(10, 40))
    ed.set_mask(3, runner, drawn)
    soft_zip, _ = ed.export(["alpha", "matte"], soft=True)
    hard_zip, _ = ed.export(["alpha"], soft=False)
    assert hard_zip != soft_zip  # two exports in one second: both kept (the second replaced the first)
    for name, z in (("soft", soft_zip), ("hard", hard_zip)):
        zipfile.ZipFile(z).extractall(tmp_path / name)
    alpha = {(k, t): np.array(Image.open(tmp_path / k / "alpha" / f"{t:05d}.png"))[..., 3]
             for k in ("soft", "hard") for t in range(6)}
    assert all(set(np.unique(alpha["hard", t])) <= {0, 255} for t in range(6))
    assert any(len(set(np.unique(alpha["soft", t])) - {0, 255}) for t in (1, 2, 4, 5))  # soft edges somewhere
    for t in (1, 2, 4, 5):  # the soft alpha is the hard mask again at 128 (the documented mapping)
        assert np.mean((alpha["soft", t] >= 128) == (alpha["hard", t] == 255)) > 0.99
    assert np.array_equal(alpha["soft", 3], np.where(drawn, 255, 0))  # drawn: hard, exactly
    assert np.array_equal(read_matte(tmp_path / "soft" / "matte.mkv")[3], np.where(drawn, 255, 0))


def test_strokes_box_accept_and_undo_over_the_prediction(ed, labels):
    """A correction is the prediction plus the brush minus the eraser; a box makes a mask by GrabCut; the
    prediction can be accepted as it is; undo takes each change back, the last first; the session file keeps
    what made each mask."""
    from vos.editing.drawing import stroke_band

    o = _one_mask(ed, labels, origin="mask PNG")
    assert ed.origin(0, o) == "mask PNG" and ed.origin(2, o) == "none"
    list(ed.propagate(0))
    predicted = ed.labels(2) == o
    assert ed.origin(2, o) == "prediction"
    brush = {"tool": "brush", "radius": 2.0, "points": [[3.0, 3.0], [20.0, 10.0]]}
    eraser = {"tool": "eraser", "radius": 3.0, "points": [[40.0, 20.0]]}
    area = ed.draw(2, o, [brush, eraser])
    expected = (predicted | stroke_band(predicted.shape, brush["points"], 2.0)) \
        & ~stroke_band(predicted.shape, eraser["points"], 3.0)
    assert np.array_equal(ed.given(2)[o], expected) and area == int(expected.sum())
    assert ed.origin(2, o) == "prediction, corrected"
    assert np.array_equal(ed.labels(2) == o, expected)  # what the frame shows now
    with pytest.raises(InputError, match="draw on the frame first"):
        ed.draw(2, o, [])
    with pytest.raises(InputError, match="stroke 1: expected a tool"):
        ed.draw(2, o, [{"tool": "knife"}])
    accepted = ed.labels(4) == o
    ed.accept_prediction(4, o)
    assert np.array_equal(ed.given(4)[o], accepted) and ed.origin(4, o) == "accepted prediction"
    box_area = ed.box_to_mask(5, o, [0, 0, 64, 48])
    assert box_area == int(ed.given(5)[o].sum()) > 0 and ed.origin(5, o) == "box (GrabCut)"
    with pytest.raises(InputError, match="box: .*at least 3 pixels"):
        ed.box_to_mask(5, o, [1, 1, 2, 2])

    session = ed.save_session("origins")
    with zipfile.ZipFile(session) as z:
        doc = json.loads(z.read("session.json"))
    assert {(n["frame"], n["origin"]) for n in doc["annotations"]} == {
        (0, "mask PNG"), (2, "prediction, corrected"), (4, "accepted prediction"), (5, "box (GrabCut)")}

    msg, frame_idx, obj_id = ed.undo()  # the box
    assert (frame_idx, obj_id) == (5, o) and "box (GrabCut)" in msg and o not in ed.given(5)
    assert ed.origin(5, o) == "prediction"
    ed.undo()  # the accepted prediction
    ed.undo()  # the correction: frame 2 shows the prediction again
    assert o not in ed.given(2) and np.array_equal(ed.labels(2) == o, predicted)
    ed.undo()  # the first mask: the object has no mask left anywhere
    assert not ed.annotated_frames() and o in ed.objects and o not in ed.state.objects
    with pytest.raises(InputError, match="nothing to undo"):
        ed.undo()
    ed.open_session(session.name)  # opening a session is not a change to undo
    assert ed.origin(2, o) == "prediction, corrected" and ed.can_undo == 0


def test_adaptation_steps_progress_and_cancel(ed, labels):
    """The app's adaptation control: steps reported as they run; a cancel during adaptation keeps nothing
    learnt and yields no frame; a bad count is one line."""
    _one_mask(ed, labels)
    for bad in (-1, 2.5, "x", 10 ** 6):
        with pytest.raises(InputError, match="adaptation steps"):
            ed.set_adapt_steps(bad)
    before = ed.adapt_steps
    try:
        ed.set_adapt_steps(3)
        steps = []
        frames = [f for _, _, f in ed.propagate(0, on_adapt=lambda p: steps.append((p.step, p.steps)))]
        assert steps == [(1, 3), (2, 3), (3, 3)] and len(frames) == 6
        assert ed.segmenter.adapted(ed.state) is not None
        ed.set_adapt_steps(50)  # a new count forgets what was learnt
        assert ed.segmenter.adapted(ed.state) is None

        def stop_at_two(p):
            if p.step == 2:
                ed.cancel()

        assert list(ed.propagate(0, on_adapt=stop_at_two)) == []
        assert ed.cancelled and ed.segmenter.adapted(ed.state) is None
    finally:
        ed.set_adapt_steps(before)


def test_export_cancels_before_the_next_frame_and_writes_nothing(ed, labels, tmp_path):
    _one_mask(ed, labels)

    def stop_at_two(done, total):
        if done == 2:
            ed.cancel()

    with pytest.raises(Cancelled, match="export cancelled after 2 of 6 frames: nothing was written"):
        ed.export(progress=stop_at_two)
    assert not [p for p in (tmp_path / "exports").iterdir() if p.name != MANIFEST]
    path, _ = ed.export()  # the next export is not cancelled by the last cancel
    assert path.is_file()


def test_undo_takes_back_one_object_only(ed):
    """Undo restores the object it concerns: a removed object never comes back with it, other objects'
    masks drawn on the frame since stay."""
    left, right = _rect(slice(10, 30), slice(5, 25)), _rect(slice(10, 30), slice(30, 50))
    a, b = _two_masks(ed, left, right)
    ed.remove_object(a)
    ed.undo()  # b's mask: frame 0 shows nothing of a, the removed object
    assert not (ed.labels(0) == a).any() and not (ed.labels(0) == b).any()
    ed.set_mask(0, b, right)
    c = ed.add_object("c")
    ed.set_mask(2, c, left)
    ed.set_mask(2, b, right)
    ed.undo()  # b on frame 2 goes; c drawn there stays
    assert np.array_equal(ed.labels(2) == c, left) and not (ed.labels(2) == b).any()
    assert set(ed.given(2)) == {c}
    for bad in (float("inf"), 2.5, "x", True):
        with pytest.raises(InputError, match="frame: expected a whole number"):
            ed.set_mask(bad, c, left)
    with pytest.raises(InputError, match="object id: expected a whole number"):
        ed.add_object("d", obj_id="x")
    nan = left.astype(np.float32)
    nan[0, 0] = np.nan  # a NaN marked every pixel before the editor used the engine's one mask converter
    for bad, words in [(nan, "NaN or infinite"), (left[:10], "the mask is 64x10, the frame 64x48")]:
        with pytest.raises(InputError, match=f"^object {c} on frame 3: .*{words}"):
            ed.set_mask(3, c, bad)
    assert c not in ed.given(3)


def test_given_masks_show_again_and_reused_ids_start_clean(ed, tmp_path):
    """Under a mask taken back (undo, a removed object) another object's given mask shows again; an id used
    again after its object was removed has none of the old object's pixels or soft edges; a damaged session
    file leaves the open video as it was."""
    left, right = _rect(slice(10, 30), slice(5, 30)), _rect(slice(10, 30), slice(20, 50))  # overlap: columns 20..29
    a, b = _two_masks(ed, left, right)
    ed.undo()
    assert np.array_equal(ed.labels(0) == a, left)
    ed.set_mask(0, b, right)
    ed.remove_object(b)
    assert np.array_equal(ed.labels(0) == a, left)
    list(ed.propagate(0))
    ed.remove_object(a)
    again = ed.add_object("new")
    assert again == a and ed.origin(3, again) == "none"
    with pytest.raises(InputError, match="outputs to export"):
        ed.export(None)

    ed.add_object("x")
    ed.set_mask(0, again, left)
    good = ed.save_session("good")
    with zipfile.ZipFile(good) as z:
        doc = json.loads(z.read("session.json"))
        masks = {n: z.read(n) for n in z.namelist() if n.endswith(".png")}
    doc["annotations"][0]["frame"] = 99
    bad = tmp_path / "sessions" / ("bad" + SESSION_SUFFIX)
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("session.json", json.dumps(doc))
        for n, data in masks.items():
            z.writestr(n, data)
    with pytest.raises(InputError, match="does not fit the video"):
        ed.open_session(bad.name)
    assert np.array_equal(ed.given(0)[again], left)  # the work in progress is untouched


def _predicted(ed, frame_idx, labels):
    """A frame's result as the engine hands it over (`FrameResult`'s fields the editor keeps)."""
    from types import SimpleNamespace

    labels = np.asarray(labels, np.uint8)
    ids = sorted(ed.objects)
    margins = np.stack([np.where(labels == o, 1.0, -1.0) for o in ids]).astype(np.float32)
    ed._keep(SimpleNamespace(frame_idx=frame_idx, labels=labels, object_ids=ids,
                             confidence=np.ones(labels.shape, np.float32), margins=margins))


@pytest.fixture
def long_ed(segmenter, tmp_path):
    """An editor on tmp_path with long.mp4 (16 frames, 48x32, one object) open."""
    frames, _ = make_clip(5, 16, size=(32, 48), num_objects=1)
    write_mp4(tmp_path / "long.mp4", frames, fps=8)
    ed = Editor(segmenter, tmp_path)
    ed.open("long.mp4")
    return ed


def test_timeline_marks_given_present_empty_lost_and_not_segmented(long_ed):
    """The rows the app's timeline draws: the CLI's lost rule for this length (16 frames: more than 2 empty in a
    row), an object's first mask given, frames without a result not segmented; the names escaped in the page."""
    from vos.editing.app_views import timeline_html

    ed = long_ed
    a, b = ed.add_object("runner <b>"), ed.add_object("ball")
    square = _rect(slice(4, 12), slice(4, 12), (32, 48))
    ed.set_mask(0, a, square)
    ed.set_mask(0, b, np.roll(square, 20, axis=1))
    for t in range(1, 14):  # 14, 15: not segmented yet
        labels = np.zeros((32, 48), np.uint8)
        if t <= 8:
            labels[square] = a  # the runner leaves after frame 8
        if t not in (5, 6):
            labels[np.roll(square, 20, axis=1)] = b  # the ball is missed on two frames only
        _predicted(ed, t, labels)
    assert ed.lost_after == 2
    rows = {r.obj_id: r for r in ed.timeline()}
    assert rows[a].runs == [(0, 1, "given"), (1, 9, "present"), (9, 14, "lost"), (14, 16, "none")]
    assert rows[a].lost == [(9, 13)] and rows[a].empty == 5
    assert rows[b].runs == [(0, 1, "given"), (1, 5, "present"), (5, 7, "empty"), (7, 14, "present"), (14, 16, "none")]
    assert rows[b].lost == []
    page = timeline_html(ed, 3)
    assert "runner &lt;b&gt; LOST on 9-13" in page and "<b>" not in page.split("</b>", 1)[1]
    assert page.count('class="vos-tl-bar" data-frames="16"') == 2 and 'data-lost="9-13"' in page


def test_playback_is_a_video_a_browser_plays_with_every_frame(long_ed, tmp_path):
    """The playback: the encoding the page said its browser plays (never MPEG-4 Part 2), every frame, the
    results blended in; a browser that plays none of the encodings is told so in one line."""
    import av

    from vos.io.writers import PLAYABLE_ENCODINGS

    ed = long_ed
    a = ed.add_object("runner")
    square = _rect(slice(20, 28), slice(36, 44), (32, 48))  # away from the frame number in the top-left corner
    ed.set_mask(0, a, square)
    plain = next(iter(ed.source.iter_frames(0, 1)))[1]
    playable = {e.name: e for e in PLAYABLE_ENCODINGS}
    for plays, codec in ((["vp9", "h264"], "h264"), (["vp9"], "vp9"), (["vp8"], "vp8")):
        path, msg = ed.playback(tmp_path, plays=plays)
        assert path.suffix == playable[codec].suffix and codec in msg and "15 frame(s) not segmented yet" in msg
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            assert stream.codec_context.name == codec
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) == 16 and frames[0].shape == (32, 48, 3)
        diff = np.abs(frames[0].astype(int) - plain.astype(int)).mean(axis=2)
        assert diff[22:26, 38:42].mean() > 20 > diff[20:, :30].mean()  # the mask blended in where it is only
    with pytest.raises(InputError, match="no encoding both this browser and this FFmpeg play"):
        ed.playback(tmp_path, plays=[])
    for bad, match in ((dict(hide="12"), "hide is a list"), (dict(hide=[1.7]), "object id to hide"),
                       (dict(hide=None), "hide is a list"), (dict(plays="h264"), "plays is a list"),
                       (dict(plays=[5]), "plays is a list"), (dict(max_side=0), "at least 16"),
                       (dict(max_side="a"), "max_side")):
        with pytest.raises(InputError, match=match):  # one line each, never a bare TypeError or a guess
            ed.playback(tmp_path, **bad)
    for folder in ("", None, tmp_path / "missing"):
        with pytest.raises(InputError, match="is not a folder"):
            ed.playback(folder)

