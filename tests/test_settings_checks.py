"""Small generic parts of the one settings loader (seggpt/settings.py) that the training settings use:
YAML 1.2 floats, a field's own `check`, required fields, and the source of a list item's error."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import pytest

from benchmarks.evaluate import main as evaluate_main
from seggpt.errors import InputError
from seggpt.settings import ConfigError, build, parse_assignments, parse_value, read_yaml, setting, validate
from vos.run import _names


@pytest.mark.parametrize("text, value", [
    ("1e-3", 1e-3), ("1E3", 1000.0), ("-2.5e+2", -250.0), ("+1e2", 100.0), (".5e1", 5.0), ("1.0e-5", 1e-5),
    ("3.", 3.0), ("1.5", 1.5), ("10", 10), ("-3", -3),
    ("1e", "1e"), ("e3", "e3"), ("1e-", "1e-"), ("off", "off"), ("no", "no"), ("true", True),
])
def test_values_read_as_yaml_1_2(text, value):
    got = parse_value(text)
    assert got == value and type(got) is type(value)


def test_yaml_files_read_exponents_as_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-4\nbetas: [9e-1, 0.999]\nname: 1e-4x\n")
    assert read_yaml(path) == {"lr": 1e-4, "betas": [0.9, 0.999], "name": "1e-4x"}


def _ordered(value: Tuple[int, int]) -> Optional[str]:
    return "two values with low <= high" if value[0] > value[1] else None


def _known(value: Any) -> Optional[str]:
    return None if value in ("a", "b") or isinstance(value, dict) else "a or b, or a mapping"


class _Checked:
    """A settings dataclass checked where it is made, as the loader's own are."""

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class Item(_Checked):
    at: int = setting(min=1)  # required
    width: Optional[int] = setting(None, min=1)


@dataclass
class Demo(_Checked):
    span: Tuple[int, int] = setting((1, 2), min=0, check=_ordered)
    kind: Any = setting("a", check=_known)
    items: List[Item] = setting(default_factory=list)


def test_a_fields_own_check_names_its_source():
    with pytest.raises(ConfigError, match=r"^--set span=\[3, 1\]: span must be two values with low <= high, got \[3, 1\]"):
        build(Demo, parse_assignments(["span=[3, 1]"]))
    with pytest.raises(ConfigError, match="^f.yaml: kind must be a or b, or a mapping, got 'c'"):
        build(Demo, [({"kind": "c"}, "f.yaml")])
    assert build(Demo, [({"kind": {"x": 1}, "span": [0, 0]}, "f.yaml")]).span == (0, 0)
    with pytest.raises(ConfigError, match="^Demo: span must be two values"):
        Demo(span=(2, 1))  # made in code: the same check


def test_list_items_required_fields_and_their_source():
    with pytest.raises(ConfigError, match=r"^f.yaml: items\[1\].at is required"):
        build(Demo, [({"items": [{"at": 1}, {"width": 3}]}, "f.yaml")])
    with pytest.raises(ConfigError, match=r"^--set items=\[\{at: 0\}\]: items\[0\].at must be >= 1"):
        build(Demo, parse_assignments(["items=[{at: 0}]"]))
    # a later layer's list replaces the earlier one, and its items are blamed on it
    with pytest.raises(ConfigError, match=r"^g.yaml: items\[0\].width must be >= 1"):
        build(Demo, [({"items": [{"at": 1}]}, "f.yaml"), ({"items": [{"at": 2, "width": 0}]}, "g.yaml")])
    assert build(Demo, [({"items": [{"at": 2, "width": 5}]}, "f.yaml")]).items == [Item(at=2, width=5)]


def test_a_key_given_twice_in_a_config_file_is_refused(tmp_path):
    """PyYAML kept the last of two `memory:` keys (or two `engine:` sections) silently."""
    for text in ("engine:\n  memory: 2\n  memory: 3\n", "engine: {memory: 2}\nengine: {objects: separate}\n"):
        path = tmp_path / "dup.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match="given twice"):
            read_yaml(path)
    path.write_text("engine:\n  memory: 2\n  adapt: {steps: 1}\n")
    assert read_yaml(path) == {"engine": {"memory": 2, "adapt": {"steps": 1}}}


def test_names_twice_and_negative_processes_are_one_line(tmp_path, capsys):
    with pytest.raises(InputError, match="named twice"):
        _names("1=a,1=b", [1, 2])
    assert _names("1=a,2=b", [1, 2]) == {1: "a", 2: "b"}
    with pytest.raises(SystemExit) as info:
        evaluate_main(["--dataset", "davis2016", "--root", str(tmp_path), "--results", str(tmp_path / "r"),
                       "--processes", "-1"])
    assert info.value.code == 2 and "--processes" in capsys.readouterr().err
