"""Tests for seggpt.io: real PNGs read back with PIL, real mp4s decoded with PyAV."""

from __future__ import annotations

import os
import stat
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import seggpt.io
from seggpt.colors import davis_palette
from seggpt.io import (Mp4Writer, OutputError, atomic_path, atomic_write_text, ensure_output_dir, overlay,
                       read_label_png, save_index_png, save_object_pngs, write_mp4)
from seggpt.errors import InputError


def leftovers(folder: Path) -> list[str]:
    """Temporary files a writer could have left behind."""
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name or p.name.startswith("."))


def decode(path: Path) -> tuple[list[np.ndarray], tuple[Fraction, int, int], str]:
    """Frames, (average rate, height, width) and codec name of a video, read with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, (stream.average_rate, stream.codec_context.height, stream.codec_context.width), \
            stream.codec_context.name


def labels_example(h: int = 33, w: int = 47) -> np.ndarray:
    lab = np.zeros((h, w), np.uint8)
    lab[4:20, 3:21] = 1
    lab[12:30, 24:44] = 2
    lab[0:3, 40:47] = 255
    return lab


# --------------------------------------------------------------------------- palette and PNGs


@pytest.mark.parametrize("lab, pal", [
    (labels_example(), None),
    ((np.arange(12).reshape(3, 4) % 3).astype(np.int64), np.array([[0, 0, 0], [10, 20, 30], [200, 100, 50]], np.uint8)),
], ids=["the DAVIS palette", "a custom palette and int labels"])
def test_index_png_round_trip_keeps_palette(tmp_path, lab, pal):
    save_index_png(tmp_path / "00000.png", lab, pal)
    expected = davis_palette() if pal is None else pal
    with Image.open(tmp_path / "00000.png") as image:
        assert image.mode == "P" and image.getpalette()[:expected.size] == expected.reshape(-1).tolist()
        assert np.array_equal(np.array(image.convert("RGB")), expected[lab])
    assert np.array_equal(read_label_png(tmp_path / "00000.png"), lab)
    assert leftovers(tmp_path) == []


def test_index_png_rejects_bad_labels(tmp_path):
    with pytest.raises(ValueError, match=r"bad\.png: label values must be in 0\.\.255, got 0\.\.300"):
        save_index_png(tmp_path / "bad.png", np.array([[0, 300]]))
    with pytest.raises(ValueError, match="must be an \\(H, W\\) array"):
        save_index_png(tmp_path / "bad.png", np.zeros((2, 2, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_read_label_png_rejects_rgb(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match=r"rgb\.png: not an index PNG \(mode RGB"):
        read_label_png(tmp_path / "rgb.png")


def test_read_label_png_binary_missing_and_wide_ids(tmp_path):
    lab = labels_example()
    save_index_png(tmp_path / "a.png", lab)
    np.testing.assert_array_equal(read_label_png(tmp_path / "a.png", binary=True), (lab > 0).astype(np.uint8))
    Image.fromarray(np.array([[0, 3], [7, 0]], np.uint8), mode="L").save(tmp_path / "gray.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "gray.png"), [[0, 3], [7, 0]])
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(tmp_path / "wide.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    for name, match in [("missing", "annotation file not found"), ("wide", r"label 300 does not fit in 0\.\.255"),
                        ("junk", "cannot read image")]:
        with pytest.raises(InputError, match=rf"{name}\.png: {match}"):
            read_label_png(tmp_path / f"{name}.png")


def test_object_pngs_are_binary_palette_pngs(tmp_path):
    lab = labels_example()
    paths = save_object_pngs(tmp_path / "objects", "00007", lab, [1, 2, 9])
    assert paths == [tmp_path / "objects" / f"{i:03d}" / "00007.png" for i in (1, 2, 9)]
    for obj, path in zip((1, 2, 9), paths):
        with Image.open(path) as image:
            assert image.mode == "P" and image.getpalette()[:6] == [0, 0, 0, 255, 255, 255]
        np.testing.assert_array_equal(read_label_png(path), (lab == obj).astype(np.uint8))
    assert leftovers(tmp_path / "objects" / "001") == []


def test_save_index_png_missing_folder(tmp_path):
    with pytest.raises(OutputError, match=r"no_dir.*does not exist"):
        save_index_png(tmp_path / "no_dir" / "0.png", np.zeros((2, 2), np.uint8))


# --------------------------------------------------------------------------- atomic_path


def test_atomic_path_final_name_appears_only_on_success(tmp_path):
    final = tmp_path / "result.txt"
    with atomic_path(final) as tmp:
        assert tmp.parent == tmp_path and tmp != final
        assert tmp.suffix == ".txt"
        tmp.write_text("complete")
        assert not final.exists()
    assert final.read_text() == "complete"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("old, error", [(None, RuntimeError("killed")), ("old", KeyboardInterrupt())],
                         ids=["an exception leaves nothing", "Ctrl-C keeps the previous file"])
def test_atomic_path_failure_leaves_the_final_name_as_it_was(tmp_path, old, error):
    final = tmp_path / "result.txt"
    if old is not None:
        final.write_text(old)
    with pytest.raises(type(error)) as raised:
        with atomic_path(final) as tmp:
            tmp.write_text("new but incomplete")
            raise error
    assert raised.value is error
    assert [p.name for p in tmp_path.iterdir()] == ([] if old is None else ["result.txt"])
    assert old is None or final.read_text() == old


def test_atomic_path_nothing_written(tmp_path):
    with pytest.raises(OutputError, match=r"out\.bin: nothing was written"):
        with atomic_path(tmp_path / "out.bin"):
            pass


def test_atomic_path_onto_a_folder(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputError, match="taken: cannot move the finished file into place"):
        with atomic_path(tmp_path / "taken") as tmp:
            tmp.write_text("x")
    assert leftovers(tmp_path) == []


def test_atomic_write_text_cleans_up_on_any_failure(tmp_path, monkeypatch):
    assert atomic_write_text(tmp_path / "a.txt", "x\r\ny\n", fsync=True).read_bytes() == b"x\r\ny\n"
    (tmp_path / "taken.txt").mkdir()
    with pytest.raises(OutputError, match="taken.txt: cannot move"):
        atomic_write_text(tmp_path / "taken.txt", "z")

    real_open = open

    def interrupted_open(path, *args, **kwargs):  # Ctrl-C after half the text is on disk
        handle = real_open(path, *args, **kwargs)
        write = handle.write

        def half_then_ctrl_c(text):
            write(text[: len(text) // 2])
            handle.flush()
            raise KeyboardInterrupt

        handle.write = half_then_ctrl_c
        return handle

    monkeypatch.setattr(seggpt.io, "open", interrupted_open, raising=False)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "b.txt", "complete text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "taken.txt"]


# --------------------------------------------------------------------------- overlay


def test_overlay_blend_and_contour():
    lab = labels_example()
    frame = np.full((*lab.shape, 3), 100, np.uint8)
    pal = davis_palette()
    out = overlay(frame, lab, pal, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == frame.shape
    assert (out[lab == 0] == 100).all()  # background untouched
    assert out[10, 10].tolist() == [114, 50, 50]  # interior of object 1: (100 + 128) / 2, 100 / 2
    assert out[20, 30].tolist() == [50, 114, 50]  # interior of object 2
    assert out[4, 10].tolist() == [128, 0, 0]  # top edge of object 1: full colour contour
    assert out[29, 30].tolist() == [0, 128, 0]  # bottom edge of object 2
    assert (frame == 100).all()  # input not modified
    plain = overlay(frame, lab, pal, alpha=0.5, contour=False)
    assert plain[4, 10].tolist() == [114, 50, 50]
    assert np.array_equal(overlay(frame, lab, pal, alpha=0.0, contour=False), frame)


def test_overlay_errors():
    frame = np.zeros((4, 4, 3), np.uint8)
    for args, match in [((frame, np.zeros((4, 5), np.uint8)), "differ in size"),
                        ((frame, np.full((4, 4), 3), np.zeros((3, 3), np.uint8)), "label values must be in 0..2"),
                        ((frame.astype(np.float32), np.zeros((4, 4), np.uint8)), "HxWx3 uint8")]:
        with pytest.raises(ValueError, match=match):
            overlay(*args)


# --------------------------------------------------------------------------- mp4


def frames_for(n: int, h: int, w: int) -> list[np.ndarray]:
    return [np.full((h, w, 3), 10 + 12 * i, np.uint8) for i in range(n)]


@pytest.mark.parametrize("fps, rate", [(12.5, Fraction(25, 2)), (30000 / 1001, Fraction(30000, 1001))],
                         ids=["12.5", "NTSC"])
def test_mp4_decodable_with_count_and_fps(tmp_path, fps, rate):
    path = tmp_path / "overlay.mp4"
    with Mp4Writer(path, fps=fps, size=(48, 64)) as writer:
        for frame in frames_for(15, 48, 64):
            writer.write(frame)
            assert not path.exists()  # nothing under the final name while writing
    assert writer.codec == "libx264" and writer.frames_written == 15
    frames, (average_rate, h, w), codec = decode(path)
    assert codec == "h264"
    assert len(frames) == 15
    assert average_rate == rate
    assert (h, w) == (48, 64)
    for i, frame in enumerate(frames):
        assert abs(float(frame.mean()) - (10 + 12 * i)) < 2.5
    assert leftovers(tmp_path) == []


def test_mp4_odd_size_is_padded(tmp_path):
    path = tmp_path / "odd.mp4"
    frame = np.zeros((33, 47, 3), np.uint8)
    frame[:, -1] = 200  # last column and row: replicated into the padding
    frame[-1, :] = 200
    with Mp4Writer(path, fps=10, size=(33, 47)) as writer:
        assert writer.output_size == (34, 48)
        for _ in range(4):
            writer.write(frame)
    frames, (_, h, w), _ = decode(path)
    assert (h, w) == (34, 48) and len(frames) == 4
    assert frames[0][:30, -2:].mean() > 180 and frames[0][-2:, :40].mean() > 180
    assert frames[0][:28, :40].mean() < 10


def test_mp4_abort_and_exception_leave_nothing(tmp_path):
    writer = Mp4Writer(tmp_path / "a.mp4", fps=10, size=(32, 32))
    for frame in frames_for(5, 32, 32):
        writer.write(frame)
    assert not (tmp_path / "a.mp4").exists()
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="model crashed"):
        with Mp4Writer(tmp_path / "b.mp4", fps=10, size=(32, 32)) as writer:
            writer.write(frames_for(1, 32, 32)[0])
            raise RuntimeError("model crashed")
    assert list(tmp_path.iterdir()) == []


def test_mp4_wrong_frame_and_fallback_codec(tmp_path, caplog):
    with Mp4Writer(tmp_path / "m.mp4", fps=8, size=(32, 48), codec="no-such-encoder") as writer:
        assert writer.codec == "mpeg4"
        with pytest.raises(ValueError, match=r"expected a 32x48x3 uint8 frame"):
            writer.write(np.zeros((48, 32, 3), np.uint8))
        for frame in frames_for(7, 32, 48):
            writer.write(frame)
    assert "writing MPEG-4 Part 2 instead" in caplog.text
    frames, (rate, _, _), codec = decode(tmp_path / "m.mp4")
    assert codec == "mpeg4" and len(frames) == 7 and rate == 8
    for i, frame in enumerate(frames):
        assert abs(float(frame.mean()) - (10 + 12 * i)) < 3


def test_write_mp4_pads_odd_sizes_like_the_stream_writer(tmp_path):
    """One mp4 rule: odd sizes are padded by replicating the edge (write_mp4 used to refuse them)."""
    frame = np.full((63, 95, 3), 40, np.uint8)
    frame[:, -1] = 220
    path = write_mp4(tmp_path / "sub" / "odd.mp4", [frame] * 3, fps=6)
    frames, (rate, h, w), _ = decode(path)
    assert (h, w) == (64, 96) and len(frames) == 3 and rate == 6
    assert frames[0][:60, -2:].mean() > 200 and frames[0][:60, :80].mean() < 60
    with pytest.raises(ValueError, match="no frames"):
        write_mp4(tmp_path / "empty.mp4", [])
    with pytest.raises(ValueError, match="expected a 63x95x3 uint8 frame"):
        write_mp4(tmp_path / "mixed.mp4", [frame, frame[:32]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]
    assert leftovers(tmp_path / "sub") == []


def test_mp4_unwritable_destination(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        Mp4Writer(tmp_path / "missing" / "o.mp4", fps=10, size=(32, 32))


# --------------------------------------------------------------------------- ensure_output_dir


def test_ensure_output_dir_creates_nested(tmp_path):
    out = ensure_output_dir(tmp_path / "a" / "b")
    assert out == tmp_path / "a" / "b" and out.is_dir()
    assert list(out.iterdir()) == []  # the probe file is gone
    assert ensure_output_dir(out) == out  # existing folder is fine


def test_ensure_output_dir_on_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"file: exists and is not a folder"):
        ensure_output_dir(tmp_path / "file")
    with pytest.raises(OutputError, match=r"cannot create the folder"):
        ensure_output_dir(tmp_path / "file" / "sub")


def test_ensure_output_dir_read_only(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("chmod does not restrict this user (root)")
        with pytest.raises(OutputError, match=r"ro: the folder is not writable"):
            ensure_output_dir(folder)
        with pytest.raises(OutputError, match=r"cannot create the folder"):
            ensure_output_dir(folder / "sub")
    finally:
        folder.chmod(stat.S_IRWXU)
