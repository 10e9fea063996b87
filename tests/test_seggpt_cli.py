"""`python -m seggpt.run` on the official example images (random small weights) and bad files."""
import logging
import signal
import sys

import numpy as np
from PIL import Image

from seggpt import cli
from seggpt.errors import WeightsError
from seggpt.io import read_label_png
from seggpt.run import build_parser, main
from seggpt.weights_file import OFFICIAL_WEIGHTS, default_weights_note


def test_official_examples(shared_data, tiny_weights, tmp_path):
    ex = shared_data / "seggpt-examples"
    assert main(["--prompt", str(ex / "hmbb_1.jpg"), str(ex / "hmbb_1_target.png"),
                 "--prompt", str(ex / "hmbb_2.jpg"), str(ex / "hmbb_2_target.png"),
                 str(ex / "hmbb_3.jpg"), str(ex / "hmbb_2.jpg"), "--weights", tiny_weights,
                 "--out", str(tmp_path)]) == 0
    for stem in ("hmbb_3", "hmbb_2"):
        labels = read_label_png(tmp_path / f"{stem}_mask.png")
        size = Image.open(ex / f"{stem}.jpg").size
        assert labels.shape == (size[1], size[0])
        assert set(np.unique(labels)) <= {0, 1}
        assert Image.open(tmp_path / f"{stem}_overlay.png").size == size


def _image_and_mask(folder, seed, h, w):
    """a.png (random colours, h x w) and a_mask.png (255 on a rectangle) in `folder`; returns the mask."""
    Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)).save(folder / "a.png")
    mask = np.zeros((h, w), np.uint8)
    mask[h // 8:h // 2, w // 6:w // 2] = 255
    Image.fromarray(mask).save(folder / "a_mask.png")
    return mask


def test_semantic_type_and_bad_files(tiny_weights, tmp_path, refused):
    mask = _image_and_mask(tmp_path, 0, 40, 60)
    a, out = str(tmp_path / "a.png"), ["--out", str(tmp_path / "o")]
    ok = ["--prompt", a, str(tmp_path / "a_mask.png"), "--weights", tiny_weights]
    assert main(ok + [a, "--type", "semantic", *out]) == 0
    (tmp_path / "bad.jpg").write_text("not an image")
    assert "bad.jpg: not a readable image" in refused(main, ok + [str(tmp_path / "bad.jpg"), *out])
    Image.fromarray(mask[:20]).save(tmp_path / "small_mask.png")
    assert "small_mask.png: mask is 60x20" in refused(main, ["--prompt", a, str(tmp_path / "small_mask.png"),
                                                             "--weights", tiny_weights, a, *out, "--overwrite"])
    # our own earlier run, unchanged: a rerun replaces it
    assert main(ok + [a, *out]) == 0
    # a fresh adversarial pass: a user's a_mask.png in --out was replaced without a word; now a mask a
    # person edited after our run is never replaced, whatever --overwrite says
    Image.fromarray(mask).save(tmp_path / "o" / "a_mask.png")
    before = (tmp_path / "o" / "a_mask.png").read_bytes()
    for extra in ([], ["--overwrite"]):
        assert "a_mask.png" in refused(main, ok + [a, *out, *extra])
    assert (tmp_path / "o" / "a_mask.png").read_bytes() == before
    (tmp_path / "o" / "a_mask.png").unlink()
    assert "missing.png: no such file" in refused(main, ok + [str(tmp_path / "missing.png"), *out])


def test_the_weights_note_says_which_why_and_the_other_choice():
    """One wording for every command: a default is named with its reason and how to choose the
    other; weights a user chose are named with who chose them, nothing more."""
    cli = default_weights_note(OFFICIAL_WEIGHTS)
    assert cli.startswith("weights BAAI/seggpt-vit-large (the default of this command: the official model")
    assert "about 1.5 GB" in cli and "--weights small runs the packaged small model offline" in cli
    app = default_weights_note("small", None, "the app")
    assert app == ("weights small (the default of the app: the packaged small model, so the app starts offline and "
                   "answers fast on a CPU; --weights BAAI/seggpt-vit-large for the official model)")
    assert default_weights_note(OFFICIAL_WEIGHTS, "--weights") == "weights BAAI/seggpt-vit-large (--weights)"
    assert default_weights_note("x.pt", "--config run.yaml") == "weights x.pt (--config run.yaml)"
    assert default_weights_note("x.pt") == "weights x.pt (the default of this command)"


def test_seggpt_run_names_its_weights_and_why(tiny_weights, tmp_path, caplog, capsys, monkeypatch):
    """The default (official) weights with the reason, before they load (no download here: the loader is
    stopped); --weights named as chosen; --help says the default and why."""
    _image_and_mask(tmp_path, 1, 32, 48)
    args = ["--prompt", str(tmp_path / "a.png"), str(tmp_path / "a_mask.png"), str(tmp_path / "a.png")]
    caplog.set_level(logging.INFO, logger="seggpt.run")

    def offline(name, **kwargs):
        raise WeightsError(f"{name}: offline in this test")

    monkeypatch.setattr("seggpt.weights.load_model", offline)
    assert main(args + ["--out", str(tmp_path / "o")]) == 2
    assert "BAAI/seggpt-vit-large: offline in this test" in capsys.readouterr().err  # the default was loaded
    assert "weights BAAI/seggpt-vit-large (the default of this command: the official model" in caplog.text
    monkeypatch.undo()
    caplog.clear()
    assert main(args + ["--weights", tiny_weights, "--out", str(tmp_path / "o2")]) == 0
    assert f"weights {tiny_weights} (--weights)" in caplog.text and "the default" not in caplog.text
    help_text = " ".join(build_parser().format_help().split())
    assert "(default: BAAI/seggpt-vit-large: the best masks; a 1.5 GB download the first time)" in help_text


def test_a_console_script_starts_quiet_then_gives_ctrl_c_back(tmp_path, monkeypatch):
    """A console script imports its CLI module normally (its `if __name__ == "__main__": quiet_start()`
    never runs): `run_module` quiet-starts before the import (Ctrl-C there: one line, exit 130), then
    main() gets Python's own Ctrl-C back."""
    (tmp_path / "fake_cli_for_run_module.py").write_text(
        "import signal\nfrom seggpt import cli\n"
        "AT_IMPORT = signal.getsignal(signal.SIGINT) is cli._stop_while_starting\n"
        "def main():\n    return 7 if signal.getsignal(signal.SIGINT) is signal.default_int_handler else 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = signal.getsignal(signal.SIGINT)
    try:
        assert cli.run_module("fake_cli_for_run_module") == 7
        assert sys.modules["fake_cli_for_run_module"].AT_IMPORT
    finally:
        signal.signal(signal.SIGINT, before)
        sys.modules.pop("fake_cli_for_run_module", None)
