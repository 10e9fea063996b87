"""Every Python block of README.md runs as it is written (Hub weights swapped for tiny ones), so a broken
snippet fails CI; and the README's two fresh-machine commands keep their shape."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
HUB_LITERAL = re.compile(r"""(["'])BAAI/(?:seggpt-vit-large|SegGPT)\1""")


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tiny_weights, tmp_path, monkeypatch):
    code = HUB_LITERAL.sub(repr(tiny_weights), BLOCKS[index])  # no download in tests: tiny weights instead
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})


PATH_CLAIM = re.compile(r"`((?:OUT|DIR)/[^`\s]+)`")


def test_the_output_paths_the_readme_names_are_the_ones_vos_run_writes(tiny_weights, tmp_path):
    """Adversarial: the README said `OUT/objects/<id>/` while the code writes OUT/objects/001/. Every
    `OUT/...` and `DIR/...` (--alpha) path the README names is looked for after a run with two objects
    (`DIR/<frame>.png`, one object's layout, after a run with one)."""
    import numpy as np

    from seggpt.io import save_index_png, write_mp4
    from vos.run import main
    from vos.data.synthetic import make_clip

    frames, labels = make_clip(11, 3, size=(48, 80), num_objects=2)
    write_mp4(tmp_path / "clip.mp4", frames, fps=10)
    claims = PATH_CLAIM.findall(README.read_text())
    assert "OUT/objects/<id:03d>/<frame>.png" in claims and "DIR/<id:03d>/<frame>.png" in claims
    for ids in ([1], [1, 2]):
        run = tmp_path / f"run{len(ids)}"
        save_index_png(tmp_path / "m.png", np.where(np.isin(labels[0], ids), labels[0], 0))
        assert main([str(tmp_path / "clip.mp4"), "--first-mask", str(tmp_path / "m.png"), "--weights", tiny_weights,
                     "--out", str(run / "OUT"), "--object-masks", "--alpha", str(run / "DIR"), "--quiet"]) == 0
        for claim in claims:
            if claim.startswith("DIR/") and (claim.count("/") == 1) != (len(ids) == 1):
                continue  # --alpha: one object's layout, or several objects'
            path = claim.replace("<id:03d>", "001").replace("<id>", "1").replace("<frame>", "00000")
            assert (run / path).exists(), f"README names {claim}: {path} not written ({len(ids)} object(s))"
