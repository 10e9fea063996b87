"""`python -m seggpt.run`: every argument checked before any work, one line and exit code 2."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from seggpt.run import main


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 60, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    mask = np.zeros((40, 60), np.uint8)
    mask[5:20, 10:30] = 255
    Image.fromarray(mask).save(tmp_path / "a_target.png")
    (tmp_path / "b").mkdir()
    Image.fromarray((rng.random((40, 60, 3)) * 255).astype(np.uint8)).save(tmp_path / "b" / "a.png")
    return tmp_path


CASES = [  # (extra argv, words of the one-line error)
    (["{t}/a.png", "--batch-size", "0"], "--batch-size 0: expected a positive integer"),
    (["{t}/a.png", "--batch-size", "-1"], "--batch-size -1"),
    (["{t}/a.png", "{t}/b/a.png"], "would both be written as a_mask.png"),
    (["{t}/a.png", "--out", "{t}/a.png"], "is the query image 1"),
    (["{t}/b", "--out", "{t}/o"], "is a folder"),
]


def _argv(images, extra, weights):
    argv = ["--prompt", str(images / "a.png"), str(images / "a_target.png"), "--weights", weights,
            *[e.format(t=images) for e in extra]]
    return argv if "--out" in argv else [*argv, "--out", str(images / "o")]


@pytest.mark.parametrize("extra, words", CASES, ids=[c[1][:30] for c in CASES])
def test_bad_arguments_are_one_line(images, tiny_weights, refused, extra, words):
    assert words in refused(main, _argv(images, extra, tiny_weights))
    assert not (images / "o").exists()  # nothing was written


def test_an_output_never_replaces_a_prompt_mask(images, tiny_weights, refused):
    """`--prompt a.png a_mask.png a.png --out .` would write a_mask.png over the prompt's own mask."""
    (images / "a_target.png").rename(images / "a_mask.png")
    argv = ["--prompt", str(images / "a.png"), str(images / "a_mask.png"), str(images / "a.png"), "--weights",
            tiny_weights, "--out", str(images / "b" / "..")]
    before = (images / "a_mask.png").read_bytes()
    assert "holds the query image 1" in refused(main, argv)
    assert (images / "a_mask.png").read_bytes() == before


def test_decompression_bomb_is_one_line(images, tiny_weights, refused, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 60x40 image is a "bomb" now: both PIL levels
    assert "more pixels than the limit of 1,000" in refused(main, _argv(images, ["{t}/a.png"], tiny_weights))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 2,400 pixels: PIL only warns; we refuse all the same
    assert "limit of 2,000" in refused(main, _argv(images, ["{t}/a.png"], tiny_weights))


@pytest.mark.parametrize("module, argv", [
    ("vos.run", ["clip.mp4", "--memory", "2.5"]),
    ("vos.run", ["--bogus"]),
    ("seggpt.run", ["--weights"]),
    ("seggpt.tune", ["--steps", "x"]),
    ("benchmarks.vos", ["--dataset", "davis2016"]),
    ("benchmarks.evaluate", []),
    ("training", ["--nope"]),
])
def test_a_mistyped_option_is_one_line_and_exit_2(module, argv):
    """A fresh adversarial pass: argparse printed its whole usage block (6-15 lines) before the error."""
    done = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: python -m {module}: "), lines


def test_ctrl_c_while_starting_is_one_line_and_130(tmp_path):
    """A fresh adversarial pass: Ctrl-C during the first seconds (imports) printed a 12-53 line traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "vos.run", str(tmp_path / "v.mp4"), "--first-mask",
                             str(tmp_path / "m.png"), "--out", str(tmp_path / "o")],
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert proc.returncode in (130, 2) and len(lines) == 1 and "Traceback" not in err, lines
