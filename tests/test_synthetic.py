"""vos.data.synthetic: determinism, scene properties (occlusion, leaving/entering, panning), writers."""

from __future__ import annotations

import itertools
import json

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from seggpt.colors import davis_palette
from seggpt.errors import InputError
from seggpt.io import write_mp4
from vos.data.synthetic import Scene, iter_clip, make_clip, make_pair, make_scene, write_davis2017, write_ytvos

SIZE = (72, 128)


def test_deterministic_for_a_seed():
    frames_a, labels_a = make_clip(11, 6, SIZE, 3)
    frames_b, labels_b = make_clip(11, 6, SIZE, 3)
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(labels_a, labels_b)
    frames_c, _ = make_clip(12, 6, SIZE, 3)
    assert not np.array_equal(frames_a, frames_c)
    assert frames_a.shape == (6, *SIZE, 3) and frames_a.dtype == np.uint8
    assert labels_a.shape == (6, *SIZE) and labels_a.dtype == np.uint8


@pytest.mark.parametrize("count", [1, 2, 5])
def test_object_count_and_visibility_in_first_frame(count):
    _, labels = make_clip(count, 2, SIZE, count)
    assert set(np.unique(labels[0])) == set(range(count + 1))


def test_streaming_frames_equal_make_clip():
    frames, labels = make_clip(5, 8, SIZE, 3)
    streamed = list(iter_clip(5, 8, SIZE, 3))
    assert len(streamed) == 8
    for t, (frame, label) in enumerate(streamed):
        np.testing.assert_array_equal(frame, frames[t])
        np.testing.assert_array_equal(label, labels[t])


def test_streaming_renders_lazily_at_any_length():
    # A million-frame clip costs nothing until frames are pulled, and frame 9,999 renders in
    # closed form (no state accumulated over the frames before it).
    clip = iter_clip(5, 1_000_000, SIZE, 3)
    first = [frame for frame, _ in itertools.islice(clip, 3)]
    assert len(first) == 3
    frame, labels = make_scene(5, SIZE, 3).render(9_999)
    assert frame.shape == (*SIZE, 3) and labels.max() <= 3


def test_occlusion_is_visible_in_labels():
    scene = make_scene(0, SIZE, 4)
    rank = {index: depth for depth, index in enumerate(scene.depth_order)}  # larger = nearer
    found = False
    for t in range(80):
        _, labels = scene.render(t)
        amodal = scene.amodal_masks(t)
        for index in range(scene.num_objects):
            hidden = amodal[index] & (labels != index + 1)
            if hidden.sum() > 20:
                assert labels[hidden].min() > 0  # hidden pixels show another object, not background
                occluders = {int(v) - 1 for v in np.unique(labels[hidden])}
                assert all(rank[o] > rank[index] for o in occluders)  # ... and only nearer ones
                found = True
    assert found


def test_objects_leave_and_reenter_the_frame():
    scene = make_scene(3, SIZE, 3, speed=2.0)
    last = scene.num_objects
    visible = [np.count_nonzero(scene.render(t)[1] == last) for t in range(150)]
    assert visible[0] > 0
    gone = visible.index(0)
    assert any(v > 0 for v in visible[gone:])


def test_background_pans_and_objects_move():
    scene = make_scene(4, SIZE, 2)
    frame0, labels0 = scene.render(0)
    frame5, labels5 = scene.render(5)
    background = (labels0 == 0) & (labels5 == 0)
    diff = np.abs(frame0.astype(int) - frame5.astype(int))[background].mean()
    assert diff > 5  # the background moved
    dx, dy = (5 * v for v in scene.pan)
    shifted = np.roll(frame0, (-round(dy), -round(dx)), axis=(0, 1)).astype(int)
    if abs(dx - round(dx)) < 0.25 and abs(dy - round(dy)) < 0.25:  # near-integer pan: it is a shift
        assert np.abs(shifted - frame5)[background].mean() < diff
    assert not np.array_equal(labels0, labels5)


def test_late_objects_and_scale_change():
    scene = make_scene(6, SIZE, 3, start_frames=[0, 4, 7])
    assert not (scene.render(3)[1] == 2).any() and (scene.render(4)[1] == 2).any()
    assert not (scene.render(6)[1] == 3).any() and (scene.render(7)[1] == 3).any()
    scales = [scene.object_pose(0, t)[2] for t in range(0, 120, 5)]
    assert max(scales) / min(scales) > 1.1


def test_make_pair():
    a = make_pair(np.random.default_rng(0), (64, 64))
    b = make_pair(np.random.default_rng(0), (64, 64))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    prompt, prompt_labels, query, query_labels = a
    assert prompt.shape == query.shape == (64, 64, 3) and prompt_labels.shape == (64, 64)
    assert prompt_labels.max() >= 1
    assert not np.array_equal(prompt, query)
    _, p_labels, _, _ = make_pair(np.random.default_rng(1), (64, 64), num_objects=2)
    assert set(np.unique(p_labels)) == {0, 1, 2}


def test_invalid_arguments():
    with pytest.raises(InputError, match="size"):
        Scene(0, (8, 8))
    with pytest.raises(InputError, match="num_objects"):
        Scene(0, SIZE, 0)
    with pytest.raises(InputError, match="start_frames"):
        Scene(0, SIZE, 2, start_frames=[0])


def test_write_davis2017_layout(tmp_path):
    names = write_davis2017(tmp_path, 2, seed=3, num_frames=3, size=SIZE, num_objects=(2, 3), resolution="480p")
    assert (tmp_path / "ImageSets" / "2017" / "val.txt").read_text().split() == names
    for name in names:
        jpgs = sorted((tmp_path / "JPEGImages" / "480p" / name).iterdir())
        pngs = sorted((tmp_path / "Annotations" / "480p" / name).iterdir())
        assert [p.name for p in jpgs] == ["00000.jpg", "00001.jpg", "00002.jpg"]
        assert [p.name for p in pngs] == ["00000.png", "00001.png", "00002.png"]
        with Image.open(pngs[0]) as png:
            assert png.mode == "P" and png.size == (SIZE[1], SIZE[0])
            np.testing.assert_array_equal(np.array(png.getpalette()).reshape(-1, 3)[:4], davis_palette()[:4])
            assert 2 <= np.array(png).max() <= 3
    assert not list(tmp_path.rglob(".*"))  # no temporary files left behind


def test_write_ytvos_layout(tmp_path):
    names = write_ytvos(tmp_path, 2, seed=1, num_frames=11, size=SIZE, num_objects=2, step=5)
    meta = json.loads((tmp_path / "valid" / "meta.json").read_text())
    assert sorted(meta["videos"]) == names
    for name in names:
        assert sorted(p.stem for p in (tmp_path / "valid" / "JPEGImages" / name).iterdir()) == ["00000", "00005", "00010"]
        assert len(list((tmp_path / "all_frames" / "valid_all_frames" / "JPEGImages" / name).iterdir())) == 11
        assert len(list((tmp_path / "valid" / "GroundTruth" / name).iterdir())) == 3
        for obj, info in meta["videos"][name]["objects"].items():
            first = info["frames"][0]
            with Image.open(tmp_path / "valid" / "Annotations" / name / f"{first}.png") as png:
                assert int(obj) in np.unique(np.array(png))


def test_write_mp4_round_trip(tmp_path):
    frames, _ = make_clip(2, 6, (64, 96), 2)
    path = write_mp4(tmp_path / "clip.mp4", iter(frames), fps=12)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 12
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) == 6 and decoded[0].shape == (64, 96, 3)
    # Lossy H.264 with 4:2:0 chroma on fine textures: compare smoothed frames, and require the
    # decoded video to be far closer to its source than to the same frames in reverse order.
    blur = lambda x: np.stack([cv2.GaussianBlur(f, (5, 5), 0) for f in x]).astype(int)  # noqa: E731
    error = np.abs(blur(decoded) - blur(frames)).mean()
    assert error < 5 and error < 0.5 * np.abs(blur(decoded) - blur(frames[::-1])).mean()
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    # changed by the redesign: the one mp4 writer pads odd sizes (this used to be refused)
    with av.open(str(write_mp4(tmp_path / "odd.mp4", [np.zeros((63, 96, 3), np.uint8)]))) as container:
        assert (container.streams.video[0].codec_context.height, container.streams.video[0].codec_context.width) == (64, 96)
    with pytest.raises(ValueError, match="no frames"):
        write_mp4(tmp_path / "empty.mp4", [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "odd.mp4"]


def test_dataset_writers_leave_no_temporary_file_on_error(tmp_path):
    """A split list that cannot be written fails without leaving its temporary file behind."""
    (tmp_path / "ImageSets" / "2017" / "val.txt").mkdir(parents=True)  # a folder where the file goes
    with pytest.raises(OSError):
        write_davis2017(tmp_path, 1, seed=0, num_frames=2, size=SIZE, num_objects=1)
    assert [p.name for p in (tmp_path / "ImageSets" / "2017").iterdir()] == ["val.txt"]
