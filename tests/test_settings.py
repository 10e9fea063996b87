"""The one configuration loader (seggpt/settings.py) and its precedence:
dataclass defaults < the weights' recommended settings < a config file < the command line."""
import dataclasses

import pytest
import torch
from hypothesis import given, settings as hsettings, strategies as st

from seggpt import SegGPT
from seggpt.settings import ConfigError, build, config_path, parse_assignments, read_yaml
from vos import VideoSegmenter
from vos.engine.config import EngineConfig, RunConfig, load_run_config


@pytest.mark.parametrize("layer, message", [
    ({"memory": "abc"}, "memory must be an integer, got 'abc'"),
    ({"memory": 2.7}, "memory must be an integer"),
    ({"memory": -1}, "memory must be >= 0"),
    ({"batch_frames": "4"}, "batch_frames must be an integer"),
    ({"confidence_gate": "high"}, "confidence_gate must be a number"),
    ({"confidence_gate": 1.5}, "confidence_gate must be <= 1.0"),
    ({"exact_resize": "no"}, "exact_resize must be true or false"),
    ({"objects": "both"}, "objects must be one of 'joint', 'separate'"),
    ({"memroy": 3}, "unknown setting 'memroy'"),
    ({"max_annotated": 0}, "max_annotated must be >= 1"),
])
def test_every_engine_value_is_checked_where_it_is_read(layer, message):
    with pytest.raises(ConfigError, match=message) as err:
        build(EngineConfig, [(layer, "my.yaml")])
    assert str(err.value).startswith("my.yaml: ")  # the source is named


def test_settings_made_in_code_are_checked_too():
    with pytest.raises(ConfigError, match="EngineConfig: memory must be >= 0"):
        EngineConfig(memory=-1)


def test_yaml_reads_booleans_as_yaml_1_2(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("engine:\n  exact_resize: no\n  objects: joint\n")
    assert read_yaml(path)["engine"]["exact_resize"] == "no"  # not False: refused where a bool goes
    with pytest.raises(ConfigError, match=f"{path}: engine.exact_resize must be true or false, got 'no'"):
        load_run_config(RunConfig, str(path), [])
    path.write_text("engine:\n  exact_resize: true\n")
    assert load_run_config(RunConfig, str(path), []).engine.exact_resize is True


def test_config_files_are_checked_and_named(tmp_path):
    (tmp_path / "list.yaml").write_text("[1, 2]\n")
    (tmp_path / "bad.yaml").write_text("engine: [1, 2]\n")
    for call, match in [(lambda: read_yaml(tmp_path), "is a folder, not a config file"),
                        (lambda: read_yaml(tmp_path / "nope.yaml"), "config file not found"),
                        (lambda: read_yaml(tmp_path / "list.yaml"), "expected a mapping of settings at the top level"),
                        (lambda: load_run_config(RunConfig, str(tmp_path / "bad.yaml"), []),
                         "bad.yaml: engine must be a mapping of settings")]:
        with pytest.raises(ConfigError, match=match):
            call()
    assert config_path("benchmark_davis").name == "benchmark_davis.yaml"  # packaged configs by name


def test_command_line_overrides_are_named_in_errors():
    with pytest.raises(ConfigError, match=r"^--set engine.memory=abc: engine.memory must be an integer"):
        build(RunConfig, parse_assignments(["engine.memory=abc"]))
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_assignments(["memory"])
    assert build(RunConfig, parse_assignments(["engine.memory=3", "dtype=bf16"])).engine.memory == 3


def test_precedence_defaults_weights_file_command_line(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "w.safetensors"
    SegGPT("test-tiny").save_pretrained(str(weights), recommended={"engine": {"memory": 5, "max_annotated": 2,
                                                                              "objects": "separate"}})
    config = tmp_path / "c.yaml"
    config.write_text(f"weights: {weights}\nengine:\n  memory: 3\n")
    cfg = load_run_config(RunConfig, str(config), parse_assignments(["engine.objects=joint"]))
    assert (cfg.engine.memory, cfg.engine.max_annotated, cfg.engine.objects) == (3, 2, "joint")
    assert cfg.engine.batch_frames == EngineConfig().batch_frames  # untouched: the default
    # the library: the weights' recommendations under the caller's config
    seg = VideoSegmenter(str(weights), config={"memory": 1})
    assert (seg.config.memory, seg.config.max_annotated, seg.config.objects) == (1, 2, "separate")
    assert VideoSegmenter(str(weights), config=EngineConfig()).config == EngineConfig()  # taken as it is


def test_unknown_recommended_settings_are_refused(tmp_path):
    weights = tmp_path / "w.safetensors"
    SegGPT("test-tiny").save_pretrained(str(weights), recommended={"engine": {"memroy": 5}})
    with pytest.raises(ConfigError, match=r"\(recommended settings\): unknown setting 'engine.memroy'"):
        load_run_config(RunConfig, None, [({"weights": str(weights)}, "--weights")])


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.integers(), max_size=3))


@hsettings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(EngineConfig)] + ["junk"]), _values,
                       max_size=4))
def test_any_mapping_gives_settings_or_one_config_error(layer):
    try:
        cfg = build(EngineConfig, [(layer, "gen.yaml")])
    except ConfigError as e:
        assert str(e).startswith("gen.yaml: ") and "\n" not in str(e)
    else:
        assert isinstance(cfg, EngineConfig)


def test_a_huge_integer_is_refused_where_it_is_read():
    """A fresh adversarial pass: memory 10**23 passed the loader and crashed in the memory (OverflowError)."""
    with pytest.raises(ConfigError, match="memory must be an integer of at most 2147483647"):
        EngineConfig.load({"memory": 10 ** 23})
    assert EngineConfig.load({"memory": 2 ** 31 - 1}).memory == 2 ** 31 - 1
