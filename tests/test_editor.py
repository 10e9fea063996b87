"""vos.editor: the web app's session logic without a browser (open, objects, masks, propagate, cancel, export,
session files, files only under the root folder)."""
import json

import zipfile

import numpy as np
import pytest
from PIL import Image

from seggpt.outputs import MANIFEST, read_manifest
from vos import VideoSegmenter
from vos.editor import SESSION_SUFFIX, Editor, EditorError
from vos.exports import read_matte, rle_decode
from vos.synthetic import make_clip
from seggpt.io import save_index_png, write_mp4


@pytest.fixture(scope="module")
def segmenter(tiny_weights):
    return VideoSegmenter(tiny_weights, config={"memory": 1}, device="cpu")


@pytest.fixture
def editor(segmenter, tmp_path):
    frames, labels = make_clip(21, 6, size=(48, 64), num_objects=2)
    write_mp4(tmp_path / "clip.mp4", frames, fps=10)
    save_index_png(tmp_path / "labels3.png", labels[3])
    ed = Editor(segmenter, tmp_path, settings={"weights": "tiny"})
    return ed, labels


def test_files_only_under_root(editor, tmp_path):
    ed, _ = editor
    with pytest.raises(EditorError, match="open a video first"):
        ed.add_object("x")
    frames = tmp_path / "shots" / "a"
    frames.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((8, 12, 3), 40 * i, np.uint8)).save(frames / f"{i:05d}.jpg")
    assert ed.media() == ["clip.mp4", "shots/a/"]  # videos and frame folders (the PNG masks' folder is root)
    assert "3 frames, 12x8, 24 fps" in ed.open("shots/a/")
    with pytest.raises(EditorError, match="outside the folder"):
        ed.open("../../etc")
    with pytest.raises(EditorError, match="outside the folder"):
        ed.open("/etc/passwd")


def test_edit_propagate_correct_export_and_session(editor, tmp_path):
    pytest.importorskip("pycocotools")
    ed, labels = editor
    assert "6 frames, 64x48" in ed.open("clip.mp4")
    runner = ed.add_object("runner")
    with pytest.raises(EditorError, match="give a mask first"):
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


def test_soft_export_has_the_model_edges_and_keeps_drawn_masks_hard(editor, tmp_path):
    """Issue 14: the app exported hard edges only. Soft: the RGBA alpha and the matte come from the model's
    scores (the CLI's --soft mapping) on propagated frames; a mask the user drew stays 0/255. The packaged
    small model (random weights may paint nothing), no adaptation."""
    from seggpt import SegGPT

    _, labels = editor
    ed = Editor(VideoSegmenter(SegGPT.from_pretrained("small"), config={"adapt": {"steps": 0}, "objects": "joint"},
                               device="cpu"),
                tmp_path)
    ed.open("clip.mp4")
    runner = ed.add_object("runner")
    ed.set_mask(0, runner, labels[0] == 1)
    list(ed.propagate(0))
    drawn = np.zeros(labels[0].shape, bool)
    drawn[10:30, 10:40] = True
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
