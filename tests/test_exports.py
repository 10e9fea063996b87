"""Editor outputs (vos.io.exports and the modules of each output: vos.io.alpha, vos.io.matte, vos.io.rle,
vos.io.lost_objects; vos.io.prompts) and the CLI options that make them: each read back in the tool it is
meant for (pycocotools, PIL, PyAV)."""
import json
import logging
import sys

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from seggpt.errors import InputError
from vos.io.alpha import hard_alpha, save_object_png, save_rgba_png, soft_alpha
from vos.io.lost_objects import LostObjectReport, lost_after_for
from vos.io.matte import MatteVideoWriter, read_matte
from vos.io.rle import rle_decode, rle_encode
from vos.io.prompts import fit_mask
from vos.run import build_parser, main
from vos.data.synthetic import make_clip
from seggpt.io import read_label_png as read_index_png, save_index_png, write_mp4


# --------------------------------------------------------------------------- the writers on their own

def test_alpha_mappings():
    labels = np.array([[0, 1], [2, 1]])
    assert hard_alpha(labels, [1, 2]).tolist() == [[[0, 255], [0, 255]], [[0, 0], [255, 0]]]
    m = np.array([-1.0, -0.2, -0.1, -1e-4, 0.0, 1e-4, 0.1, 0.2, 1.0])
    assert soft_alpha(m, 0.2).tolist() == [0, 0, 64, 127, 128, 128, 191, 255, 255]
    assert ((soft_alpha(m, 0.2) >= 128) == (m >= 0)).all()  # thresholding the soft alpha gives the hard mask
    with pytest.raises(InputError, match="soft width must be in"):
        soft_alpha(m, 0.0)


def test_pngs_read_back(tmp_path):
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    save_object_png(tmp_path / "m.png", mask)
    assert np.array_equal(cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED), mask * 255)  # 0/255, not 0/1
    assert Image.open(tmp_path / "m.png").mode == "L"
    frame = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    alpha = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    save_rgba_png(tmp_path / "a.png", frame, alpha)
    im = Image.open(tmp_path / "a.png")
    assert im.mode == "RGBA"
    rgba = np.array(im)
    assert np.array_equal(rgba[..., :3], frame) and np.array_equal(rgba[..., 3], alpha)
    assert not list(tmp_path.glob(".*"))  # atomic: no temporary files left


@pytest.mark.parametrize("suffix, tolerance", [(".mkv", 0), (".mov", 2)])
def test_matte_video_reads_back(tmp_path, suffix, tolerance):
    """FFV1 is lossless (exact); ProRes 4444 keeps the alpha channel within 2 levels of 255."""
    rng = np.random.default_rng(1)
    mattes = [cv2.GaussianBlur((rng.random((48, 80)) > 0.5).astype(np.uint8) * 255, (5, 5), 0) for _ in range(4)]
    w = MatteVideoWriter(tmp_path / f"m{suffix}", 12.5, (48, 80))
    for m in mattes:
        w.write(m)
    w.close()
    with av.open(str(tmp_path / f"m{suffix}")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == ("ffv1" if suffix == ".mkv" else "prores") and float(s.average_rate) == 12.5
    back = read_matte(tmp_path / f"m{suffix}")
    assert back.shape == (4, 48, 80)
    assert np.abs(back.astype(int) - np.stack(mattes).astype(int)).max() <= tolerance
    with pytest.raises(InputError, match=".mkv"):
        MatteVideoWriter(tmp_path / "m.mp4", 12, (48, 80))


def test_rle_round_trip_with_pycocotools():
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils

    m = np.zeros((30, 41), bool)
    m[3:20, 5:9] = True
    m[25, 40] = True
    rle = rle_encode(m)
    assert rle["size"] == [30, 41] and isinstance(rle["counts"], str)
    assert np.array_equal(rle_decode(rle), m)
    assert int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()})) == m.sum()


def test_missing_pycocotools_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    with pytest.raises(InputError, match=r"pip install 'seggpt-vos\[coco\]'"):
        rle_encode(np.zeros((2, 2), bool))


def test_the_lost_threshold_fits_the_clip():
    """min(10, max(2, frames // 8)): a fixed 10 never flagged an object gone for the last 7 of 16 frames."""
    assert [lost_after_for(n) for n in (None, 0, 1, 8, 16, 24, 79, 80, 500)] == [10, 10, 2, 2, 2, 3, 9, 10, 10]
    for after, lost in ((lost_after_for(16), [1]), (10, [])):  # 10: the old fixed default missed it
        gone = LostObjectReport({1: "a"}, {1: [0]}, after=after)
        for t in range(16):
            gone.add(t, np.full((2, 2), 1 if t < 9 else 0), [1])  # present on 0-8, gone on 9-15
        assert [t.obj_id for t in gone.lost()] == lost


def test_lost_object_report():
    r = LostObjectReport({1: "a", 2: "b", 3: "c"}, {1: [0], 2: [0], 3: [2]}, after=3)
    for t in range(10):
        labels = np.zeros((4, 4), np.int32)
        labels[0, 0] = 1
        if t < 2:
            labels[1, 1] = 2
        if t in (2, 3, 9):  # object 3: present on its prompt frame, then empty on 4..8 (5 in a row)
            labels[2, 2] = 3
        r.add(t, labels, [1, 2] + ([3] if t >= 2 else []))
    assert [t.obj_id for t in r.lost()] == [2, 3]
    js = {o["id"]: o for o in r.as_json()}
    assert js[2]["empty_frames"] == [[2, 9]] and js[2]["lost"] and js[1]["empty"] == 0
    assert js[3]["empty_frames"] == [[4, 8]] and js[3]["frames"] == 8 and js[3]["longest_empty_run"] == 5
    assert "object 2 empty on 8 frame(s) (2-9) LOST" in r.summary()
    assert "object 2 (b) is empty on 8 frames in a row (more than 3)" in r.warnings()[0]


def test_fit_mask_rules(caplog):
    m = np.zeros((48, 79), np.int32)
    m[10:20, 70:79] = 2
    with caplog.at_level(logging.WARNING):
        out = fit_mask(m, (48, 80), "m.png")
    assert out.shape == (48, 80) and np.array_equal(out[:, :79], m) and not out[:, 79].any()  # padded, not resized
    assert "padded" in caplog.text
    big = cv2.resize(m, (158, 96), interpolation=cv2.INTER_NEAREST)
    assert fit_mask(big, (48, 79), "big.png").shape == (48, 79)  # same aspect ratio: resized
    with pytest.raises(InputError, match="aspect ratio"):
        fit_mask(np.ones((10, 10), np.int32), (48, 80), "sq.png")


# --------------------------------------------------------------------------- the CLI

@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """8 frames, 2 objects; masks: object 1 on frame 0, object 2 first given on frame 3 (YouTube-VOS style)."""
    root = tmp_path_factory.mktemp("exports")
    frames, labels = make_clip(11, 8, size=(48, 80), num_objects=2)
    write_mp4(root / "clip.mp4", frames, fps=10)
    (root / "masks").mkdir()
    save_index_png(root / "masks" / "00000.png", np.where(labels[0] == 1, 1, 0))
    save_index_png(root / "masks" / "3.png", np.where(labels[3] == 2, 2, 0))
    return root, frames, labels


def test_masks_dir_and_every_output(clip, tiny_weights, tmp_path, capsys):
    pytest.importorskip("pycocotools")
    root, frames, labels = clip
    out = tmp_path / "o"
    assert main([str(root / "clip.mp4"), "--masks", str(root / "masks"), "--weights", tiny_weights, "--out", str(out),
                 "--object-masks", "--alpha", str(tmp_path / "rgba"), "--matte", str(tmp_path / "matte.mkv"),
                 "--rle", str(tmp_path / "rle.json"), "--report", str(tmp_path / "report.json"),
                 "--names", "1=runner,2=ball", "--quiet"]) == 0
    line = capsys.readouterr().out
    assert "8 frames" in line and "objects [1, 2]" in line and "on cpu (auto: no CUDA GPU" in line
    index = [read_index_png(out / f"{t:05d}.png") for t in range(8)]
    assert np.array_equal(index[0] == 1, labels[0] == 1) and np.array_equal(index[3] == 2, labels[3] == 2)
    assert not any((index[t] == 2).any() for t in range(3))  # object 2 is absent before its frame

    doc = json.loads((tmp_path / "rle.json").read_text())
    assert doc["format"] == "seggpt-vos-rle" and (doc["width"], doc["height"], doc["num_frames"]) == (80, 48, 8)
    assert [(o["id"], o["name"], o["prompt_frames"]) for o in doc["objects"]] == [(1, "runner", [0]), (2, "ball", [3])]
    for fr in doc["frames"]:
        t = fr["frame_idx"]
        assert [o["id"] for o in fr["objects"]] == ([1] if t < 3 else [1, 2])  # listed where the object exists
        for o in fr["objects"]:
            m = rle_decode(o["segmentation"])
            assert np.array_equal(m, index[t] == o["id"]) and o["area"] == m.sum()  # exactly the index PNGs
            assert (o["score"] is None) == (o["area"] == 0)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["objects"][1]["prompt_frames"] == [3]
    assert report["lost_after"] == 2  # 8 frames segmented, no --lost-after: the threshold fits the clip

    for o in (1, 2):
        png = np.array(Image.open(out / "objects" / f"{o:03d}" / "00004.png"))
        assert set(np.unique(png)) <= {0, 255} and np.array_equal(png == 255, index[4] == o)
        rgba = np.array(Image.open(tmp_path / "rgba" / f"{o:03d}" / "00004.png"))  # several objects: one folder each
        assert rgba.shape == (48, 80, 4) and np.array_equal(rgba[..., 3] == 255, index[4] == o)
        assert set(np.unique(rgba[..., 3])) <= {0, 255}
    matte = read_matte(tmp_path / "matte.mkv")
    assert matte.shape == (8, 48, 80)
    assert np.array_equal(matte, np.stack([(i > 0) * 255 for i in index]).astype(np.uint8))  # FFV1: exact


def test_soft_alpha_and_backward_frames(clip, tiny_weights, tmp_path):
    """--soft: the alpha at 128 and above is the hard mask; a mask on frame 2 makes frames 0-1 go backwards,
    and the videos still come out in order."""
    root, frames, labels = clip
    save_index_png(tmp_path / "m2.png", np.where(labels[2] == 1, 1, 0))
    assert main([str(root / "clip.mp4"), "--first-mask", str(tmp_path / "m2.png"), "--mask-frame", "2", "--weights",
                 tiny_weights, "--out", str(tmp_path / "o"), "--alpha", str(tmp_path / "rgba"), "--soft", "--matte",
                 str(tmp_path / "m.mkv"), "--overlay", str(tmp_path / "ov.mp4"), "--end", "6", "--quiet"]) == 0
    index = [read_index_png(tmp_path / "o" / f"{t:05d}.png") for t in range(6)]
    matte = read_matte(tmp_path / "m.mkv")
    assert matte.shape == (6, 48, 80)
    for t in range(6):
        a = np.array(Image.open(tmp_path / "rgba" / f"{t:05d}.png"))[..., 3]  # one object: no sub-folder
        assert np.array_equal(a, matte[t])
        assert ((a >= 128) == (index[t] == 1)).mean() > 0.999
    assert np.array_equal(matte[2] == 255, labels[2] == 1)  # the given mask is hard
    with av.open(str(tmp_path / "ov.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6



@pytest.mark.parametrize("guide", ["grey", "colour"])
def test_soft_alpha_is_the_hard_mask_with_edge_aware_refinement(clip, tiny_weights, tmp_path, guide):
    """With engine.refine on (the small weights' default) the labels come from the refined scores: the soft
    alpha must come from the same ones, so that alpha >= 128 is the index PNGs exactly on every frame."""
    root, frames, labels = clip
    save_index_png(tmp_path / "m.png", labels[0])
    assert main([str(root / "clip.mp4"), "--first-mask", str(tmp_path / "m.png"), "--weights", tiny_weights,
                 "--out", str(tmp_path / "o"), "--alpha", str(tmp_path / "rgba"), "--soft", "--end", "6", "--quiet",
                 "--set", "engine.refine.enabled=true", "--set", f"engine.refine.guide={guide}",
                 "--set", "engine.refine.model_pixels=2.5"]) == 0
    soft = 0
    for t in range(6):
        index = read_index_png(tmp_path / "o" / f"{t:05d}.png")
        for o in (1, 2):
            a = np.array(Image.open(tmp_path / "rgba" / f"{o:03d}" / f"{t:05d}.png"))[..., 3]
            assert np.array_equal(a >= 128, index == o), (t, o)
            soft += int(((a > 0) & (a < 255)).sum())
    assert soft  # there are soft edges to get wrong

def test_judo_masks_on_several_frames(shared_data, tiny_weights, tmp_path, caplog):
    """Cutie's judo: one new object per mask (0 = not given); 00005.png is 853 wide against 854: padded with
    'not given' at the right, never rescaled."""
    images = shared_data / "cutie-examples" / "images" / "judo"
    masks = shared_data / "cutie-examples" / "masks" / "judo"
    out = tmp_path / "judo"
    with caplog.at_level(logging.WARNING):
        assert main([str(images), "--masks", str(masks), "--weights", tiny_weights, "--out", str(out), "--memory", "1",
                     "--quiet"]) == 0
    assert "00005.png: mask is 853x480, frames are 854x480: padded" in caplog.text
    result = {t: read_index_png(out / f"{t:05d}.png") for t in range(16)}
    assert set(np.unique(np.concatenate([r.ravel() for r in result.values()]))) <= {0, 1, 2, 3, 4}
    for obj, frame in ((1, 0), (2, 5), (3, 8), (4, 13)):
        given = np.array(Image.open(masks / f"{frame:05d}.png")) == obj
        got = result[frame] == obj
        assert np.array_equal(got[:, :given.shape[1]], given), obj  # equal to its mask on its own frame
        assert not got[:, given.shape[1]:].any()  # the padded column is 'not given'
        assert not any((result[t] == obj).any() for t in range(frame)), obj  # absent before


def test_help_version_fps_and_bad_inputs(clip, tiny_weights, tmp_path, capsys, refused, monkeypatch):
    for action in build_parser()._actions:
        if action.dest not in ("help", "version", "video"):
            assert action.help and "default" in action.help, action.dest
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "seggpt-vos" in capsys.readouterr().out

    root, frames, labels = clip
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames[:4]):
        cv2.imwrite(str(folder / f"f{i}.png"), f[:, :, ::-1])
    save_index_png(tmp_path / "f1.png", np.where(labels[1] == 1, 1, 0))
    masks = tmp_path / "md"
    masks.mkdir()
    save_index_png(masks / "f1.png", np.where(labels[1] == 1, 1, 0))  # named by the frame's file stem
    assert main([str(folder), "--masks", str(masks), "--fps", "7.5", "--weights", tiny_weights, "--out",
                 str(tmp_path / "fo"), "--overlay", str(tmp_path / "fo.mp4"), "--quiet"]) == 0
    with av.open(str(tmp_path / "fo.mp4")) as c:
        assert float(c.streams.video[0].average_rate) == 7.5 and sum(1 for _ in c.decode(video=0)) == 4
    capsys.readouterr()

    base = ["--weights", tiny_weights, "--quiet", "--out", str(tmp_path / "x")]
    video = str(root / "clip.mp4")

    def err(argv):
        return refused(main, argv + base, last=True)

    assert "--fps" in err([video, "--masks", str(root / "masks"), "--fps", "5"])
    bad = tmp_path / "bad"
    bad.mkdir()
    save_index_png(bad / "shot.png", np.ones((48, 80), np.uint8))
    assert "'shot' is neither a frame's file name nor a frame index" in err([video, "--masks", str(bad)])
    (bad / "shot.png").unlink()
    save_index_png(bad / "00001.png", np.zeros((48, 80), np.uint8))
    assert "every mask is empty" in err([video, "--masks", str(bad)])
    assert ".mkv" in err([video, "--masks", str(root / "masks"), "--matte", str(tmp_path / "m.mp4")])
    assert "is not ID=NAME" in err([video, "--masks", str(root / "masks"), "--names", "ball"])
    assert "--mask-frame goes with --first-mask" in err([video, "--masks", str(root / "masks"), "--mask-frame", "0"])
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    assert "seggpt-vos[coco]" in err([video, "--masks", str(root / "masks"), "--rle", str(tmp_path / "r.json")])


def test_device_auto_prefers_mps_where_there_is_no_cuda(monkeypatch):
    """MPS cannot run here: device and dtype selection with the availability checks patched."""
    import torch

    import seggpt.device as device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_mps_available", lambda: True)
    dev = device.resolve_device("auto")
    assert dev.type == "mps" and device.resolve_dtype("auto", dev) == torch.float16
    monkeypatch.setattr(device, "_mps_available", lambda: False)
    assert device.resolve_device(None).type == "cpu" and device.resolve_dtype("auto", torch.device("cpu")) is None
