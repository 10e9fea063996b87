"""benchmarks.keeps_object: a mask inside the marked box counts as on the object, one elsewhere does not."""
import numpy as np
import pytest

from benchmarks.keeps_object import BOXES, FRAMES, GROW, SIZE, main, score
from seggpt.io import save_index_png


def _write(folder, mask_of):
    folder.mkdir()
    for t in range(FRAMES):
        save_index_png(folder / f"{t:05d}.png", mask_of(t).astype(np.uint8))


def test_masks_on_the_boxes_elsewhere_and_empty(tmp_path):
    def on(t):
        m = np.zeros(SIZE, bool)
        if t in BOXES:
            y0, y1, x0, x1 = BOXES[t]
            m[y0:y1, x0:x1] = True
        else:
            m[0:5, 0:5] = True
        return m

    _write(tmp_path / "on", on)
    got = score(tmp_path / "on")
    assert got["present"] == FRAMES and got["on_object"] == len(BOXES) == 20 and got["off_object_frames"] == []

    def elsewhere(t):  # the top-left corner, far from every marked box; nothing on frame 5
        m = np.zeros(SIZE, bool)
        m[0:10, 0:10] = t != 5
        return m

    assert all(y0 - GROW > 10 or x0 - GROW > 10 for y0, _, x0, _ in BOXES.values())
    _write(tmp_path / "off", elsewhere)
    got = score(tmp_path / "off")
    assert got["present"] == FRAMES - 1 and got["empty_frames"] == [5] and got["on_object"] == 0


def test_a_folder_of_the_wrong_length_is_one_line(tmp_path, capsys):
    (tmp_path / "few").mkdir()
    save_index_png(tmp_path / "few" / "00000.png", np.zeros(SIZE, np.uint8))
    with pytest.raises(SystemExit, match="1 PNGs, video_3.mp4 has 66 frames"):
        score(tmp_path / "few")
    with pytest.raises(SystemExit) as e:
        main(["--masks", str(tmp_path / "missing")])
    assert e.value.code == 2 and "not a folder" in capsys.readouterr().err
