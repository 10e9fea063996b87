"""vos.data.datasets on the real DAVIS 2016 sets and on synthetic DAVIS 2017 / YouTube-VOS layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seggpt.io import read_label_png
from seggpt.errors import InputError
from vos.data.datasets import DAVIS, FolderDataset, YouTubeVOS
from vos.data.synthetic import make_clip, sequence_seed, write_davis2017, write_ytvos
from helpers import DATA, require

DAVIS16_VAL = DATA / "davis2016-val-480p"
DAVIS16_TRAIN = DATA / "davis2016-train-240p"

SIZE = (48, 80)


# ----------------------------------------------------------------------------- real DAVIS 2016


def test_davis2016_val():
    dataset = DAVIS(require(DAVIS16_VAL), year=2016, split="val")
    assert dataset.names == ["blackswan", "car-shadow", "dog", "drift-chicane", "libby", "motocross-jump"]
    seq = dataset["blackswan"]
    assert len(seq) == 50 and seq.frame_names[0] == "00000" and seq.frame_names[-1] == "00049"
    assert seq.size == (480, 854)
    assert seq.object_ids == [1]
    assert list(seq.annotations) == ["00000"]  # semi-supervised input: first frame only
    assert len(seq.ground_truth) == 50 and seq.frames_to_save == seq.frame_names
    first = seq.read_annotation("00000")
    assert first.dtype == np.uint8 and set(np.unique(first)) == {0, 1}  # 0/255 PNG -> id 1
    gt = dataset.load_ground_truth("car-shadow")
    assert gt.shape == (40, 480, 854) and gt.dtype == np.uint8
    assert set(np.unique(gt)) == {0, 1}
    raw = np.array(Image.open(DAVIS16_VAL / "Annotations" / "480p" / "car-shadow" / "00017.png"))
    np.testing.assert_array_equal(gt[17], raw > 0)


def test_davis2016_train_240p_resolution_fallback_and_empty_masks():
    root = require(DAVIS16_TRAIN)
    dataset = DAVIS(root, year=2016, split="train", resolution="480p")  # only 240p exists: used
    assert dataset.resolution == "240p" and len(dataset) == 30
    seq = dataset["surf"]
    assert seq.size == (240, 427) and seq.object_ids == [1]
    gt = dataset.load_ground_truth(seq)
    assert gt.shape == (55, 240, 427)
    assert gt[54].max() == 0 and gt[0].max() == 1  # the object leaves the view in the last frame


def test_davis_errors_name_the_path(tmp_path):
    with pytest.raises(InputError, match="DAVIS root folder not found"):
        DAVIS(tmp_path / "nowhere")
    root = tmp_path / "d"
    write_davis2017(root, 1, seed=0, num_frames=3, size=SIZE, num_objects=1)
    with pytest.raises(InputError, match=r"ImageSets/2017/train\.txt"):
        DAVIS(root, split="train")
    with pytest.raises(InputError, match="not in the 2017 val split"):
        DAVIS(root)["dog"]
    shutil.copytree(root / "JPEGImages" / "480p", root / "JPEGImages" / "Full-Resolution")
    with pytest.raises(InputError, match=r"1080p.*available: \['480p', 'Full-Resolution'\]"):
        DAVIS(root, resolution="1080p")
    (root / "Annotations" / "480p" / "synth-000" / "00000.png").unlink()
    with pytest.raises(InputError, match=r"synth-000/00000\.png: first-frame annotation not found"):
        DAVIS(root)["synth-000"]


# ----------------------------------------------------------------------------- synthetic DAVIS 2017


def test_synthetic_davis2017_round_trip(tmp_path):
    names = write_davis2017(tmp_path, 2, seed=7, num_frames=5, size=SIZE, num_objects=3, resolution="240p")
    dataset = DAVIS(tmp_path, year=2017, resolution="240p")
    assert dataset.names == names == ["synth-000", "synth-001"]
    for index, seq in enumerate(dataset):
        assert seq.object_ids == [1, 2, 3]
        assert seq.object_first_frame == {1: "00000", 2: "00000", 3: "00000"}
        assert seq.size == SIZE and len(seq) == 5
        with Image.open(seq.annotations["00000"]) as png:
            assert png.mode == "P"  # palette PNG as in DAVIS 2017
        _, labels = make_clip(sequence_seed(7, index), 5, SIZE, 3)
        np.testing.assert_array_equal(dataset.load_ground_truth(seq), labels)  # lossless labels


def test_void_label_is_not_an_object(tmp_path):
    write_davis2017(tmp_path, 1, seed=1, num_frames=3, size=SIZE, num_objects=2)
    mask_path = tmp_path / "Annotations" / "480p" / "synth-000" / "00000.png"
    with Image.open(mask_path) as png:
        labels = np.array(png)
        palette = png.getpalette()
    labels[:2, :2] = 255
    image = Image.fromarray(labels)
    image.putpalette(palette)
    image.save(mask_path)
    assert DAVIS(tmp_path)["synth-000"].object_ids == [1, 2]


# ----------------------------------------------------------------------------- YouTube-VOS


def _ytvos(tmp_path: Path) -> list[str]:
    return write_ytvos(tmp_path, 3, seed=2, num_frames=16, size=SIZE, num_objects=3, step=5)


def test_ytvos_layout_sparse_frames(tmp_path):
    names = _ytvos(tmp_path)
    dataset = YouTubeVOS(tmp_path, "valid", ground_truth_root=tmp_path / "valid" / "GroundTruth")
    assert dataset.names == names
    late_objects = 0
    for seq in dataset:
        assert seq.frame_names == ["00000", "00005", "00010", "00015"]
        assert seq.object_ids == [1, 2, 3] and seq.size == SIZE
        assert seq.object_first_frame[1] == "00000"
        for frame, path in seq.annotations.items():
            given = read_label_png(path)
            # Each annotation holds exactly the objects first given there (0 = not given).
            assert sorted(int(v) for v in np.unique(given) if v) == sorted(seq.objects_first_given_at(frame))
        late_objects += sum(frame != "00000" for frame in seq.object_first_frame.values())
        gt = seq.load_ground_truth()
        assert gt.shape == (len(seq.frames_to_save), *SIZE)
        for obj, frame in seq.object_first_frame.items():
            before = seq.frames_to_save.index(frame)
            assert not (gt[:before] == obj).any()  # not in the scene before its first frame
    assert late_objects > 0  # some objects appear later in the video


def test_ytvos_all_frames_and_frames_to_save(tmp_path):
    _ytvos(tmp_path)
    meta = json.loads((tmp_path / "valid" / "meta.json").read_text())
    dataset = YouTubeVOS(tmp_path, all_frames_root=tmp_path / "all_frames" / "valid_all_frames")
    for seq in dataset:
        assert seq.frame_names == [f"{t:05d}" for t in range(16)]  # run on every frame
        listed = {f for obj in meta["videos"][seq.name]["objects"].values() for f in obj["frames"]}
        assert seq.frames_to_save == sorted(listed)  # save only the listed frames
        assert set(seq.frames_to_save) <= set(seq.frame_names)
        assert seq.frames_dir == tmp_path / "all_frames" / "valid_all_frames" / "JPEGImages" / seq.name


def test_ytvos_errors(tmp_path):
    with pytest.raises(InputError, match="split folder not found"):
        YouTubeVOS(tmp_path)
    _ytvos(tmp_path)
    with pytest.raises(InputError, match="no ground truth"):
        next(iter(YouTubeVOS(tmp_path))).load_ground_truth()
    (tmp_path / "valid" / "meta.json").write_text('{"videos": {"a": {"objects": {"1": {}}}}}')
    with pytest.raises(InputError, match=r"meta\.json: not a YouTube-VOS meta\.json"):
        YouTubeVOS(tmp_path)
    (tmp_path / "valid" / "meta.json").unlink()
    with pytest.raises(InputError, match=r"meta\.json not found"):
        YouTubeVOS(tmp_path)


# ----------------------------------------------------------------------------- folders


def test_folder_dataset(tmp_path):
    frames, labels = make_clip(4, 3, SIZE, 2)
    folder = tmp_path / "clip"
    folder.mkdir()
    for name, frame in zip(("frame1", "frame10", "frame2"), (frames[0], frames[2], frames[1])):
        Image.fromarray(frame).save(folder / f"{name}.jpg")
    (folder / "notes.txt").write_text("not a frame")
    mask = Image.fromarray(labels[0])
    mask.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))
    mask.save(tmp_path / "mask.png")
    seq = next(iter(FolderDataset(folder, tmp_path / "mask.png")))
    assert seq.name == "clip" and seq.frame_names == ["frame1", "frame2", "frame10"]  # natural order
    assert seq.object_ids == [1, 2] and list(seq.annotations) == ["frame1"] and seq.size == SIZE
    Image.fromarray(np.repeat(labels[0][..., None] * 100, 3, axis=2)).save(tmp_path / "rgb.png")
    rgb = next(iter(FolderDataset(folder, tmp_path / "rgb.png", mask_frame="frame2")))
    assert rgb.object_ids == [] and list(rgb.annotations) == ["frame2"]  # left to the mask parser
    with pytest.raises(InputError, match="mask file not found"):
        FolderDataset(folder, tmp_path / "missing.png")
    with pytest.raises(InputError, match="frame folder not found"):
        next(iter(FolderDataset(tmp_path / "none", tmp_path / "mask.png")))
    with pytest.raises(InputError, match="not an index PNG"):
        read_label_png(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="not an index PNG"):  # the readers say it as the reader does
        rgb.read_annotation("frame2")


def test_davis2016_original_frame_list_split_file(tmp_path):
    # The original DAVIS 2016 release lists frame pairs in ImageSets/480p/<split>.txt.
    names = write_davis2017(tmp_path, 2, seed=5, num_frames=3, size=SIZE, num_objects=2)
    shutil.rmtree(tmp_path / "ImageSets" / "2017")
    lines = [f"/JPEGImages/480p/{n}/{t:05d}.jpg /Annotations/480p/{n}/{t:05d}.png" for n in names for t in range(3)]
    (tmp_path / "ImageSets" / "480p").mkdir()
    (tmp_path / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")
    dataset = DAVIS(tmp_path, year=2016)
    assert dataset.names == names
    seq = dataset[names[0]]
    assert seq.object_ids == [1] and seq.binary_masks  # 2016: every object pixel is object 1
    assert set(np.unique(dataset.load_ground_truth(seq))) == {0, 1}
