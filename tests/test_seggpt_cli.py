"""`python -m seggpt.run` on the official example images (random small weights) and bad files."""
import numpy as np
from PIL import Image

from seggpt.io import read_label_png
from seggpt.run import main


def test_official_examples(shared_data, tiny_weights, tmp_path):
    ex = shared_data / "seggpt-examples"
    rc = main(["--prompt", str(ex / "hmbb_1.jpg"), str(ex / "hmbb_1_target.png"),
               "--prompt", str(ex / "hmbb_2.jpg"), str(ex / "hmbb_2_target.png"),
               str(ex / "hmbb_3.jpg"), str(ex / "hmbb_2.jpg"), "--weights", tiny_weights, "--out", str(tmp_path)])
    assert rc == 0
    for stem in ("hmbb_3", "hmbb_2"):
        labels = read_label_png(tmp_path / f"{stem}_mask.png")
        size = Image.open(ex / f"{stem}.jpg").size
        assert labels.shape == (size[1], size[0])
        assert set(np.unique(labels)) <= {0, 1}
        assert Image.open(tmp_path / f"{stem}_overlay.png").size == size


def test_semantic_type_and_bad_files(tiny_weights, tmp_path, capsys):
    img = (np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    mask = np.zeros((40, 60), np.uint8)
    mask[5:20, 10:30] = 255
    Image.fromarray(mask).save(tmp_path / "a_mask.png")
    ok = ["--prompt", str(tmp_path / "a.png"), str(tmp_path / "a_mask.png"), "--weights", tiny_weights]
    assert main(ok + [str(tmp_path / "a.png"), "--type", "semantic", "--out", str(tmp_path / "o")]) == 0
    (tmp_path / "bad.jpg").write_text("not an image")
    assert main(ok + [str(tmp_path / "bad.jpg"), "--out", str(tmp_path / "o")]) == 2
    assert "bad.jpg: not a readable image" in capsys.readouterr().err
    Image.fromarray(mask[:20]).save(tmp_path / "small_mask.png")
    assert main(["--prompt", str(tmp_path / "a.png"), str(tmp_path / "small_mask.png"), "--weights", tiny_weights,
                 str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--overwrite"]) == 2
    assert "small_mask.png: mask is 60x20" in capsys.readouterr().err
    # our own earlier run, unchanged: a rerun replaces it
    assert main(ok + [str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]) == 0
    # a fresh adversarial pass: a user's a_mask.png in --out was replaced without a word; now a mask a
    # person edited after our run is never replaced, whatever --overwrite says
    Image.fromarray(mask).save(tmp_path / "o" / "a_mask.png")
    before = (tmp_path / "o" / "a_mask.png").read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main(ok + [str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), *extra]) == 2
        assert "a_mask.png" in capsys.readouterr().err
    assert (tmp_path / "o" / "a_mask.png").read_bytes() == before
    (tmp_path / "o" / "a_mask.png").unlink()
    assert main(ok + [str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.png: no such file" in capsys.readouterr().err
