"""Training settings on the one loader (training/config.py): every value checked where it is read, the
file or the key=value named, curriculum stages checked when read, the pair settings built in one place."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from seggpt.pairs import Augment
from seggpt.settings import ConfigError
from training.config import CurriculumStage, TrainConfig, data_config, load_config
from training.data import PairSettings

ROOT = Path(__file__).resolve().parents[1]


def _load(tmp_path: Path, text: str, *overrides: str) -> TrainConfig:
    """load_config of a run.yaml in tmp_path that holds `text`, and the overrides."""
    (tmp_path / "run.yaml").write_text(text)
    return load_config(str(tmp_path / "run.yaml"), list(overrides))


@pytest.mark.parametrize("override, message", [
    ("batch_size=[1,2]", r"batch_size must be an integer, got \[1, 2\]"),
    ("steps=2.5", "steps must be an integer, got 2.5"),  # it trained 3 steps
    ("steps=0", "steps must be >= 1"),
    ("accum_steps=0", "accum_steps must be >= 1"),
    ("lr=-1", "lr must be > 0"),
    ("lr=0", "lr must be > 0"),
    ("crop_scale=[1.5, 0.2]", "crop_scale must be <= 1"),
    ("crop_scale=[0.8, 0.2]", "crop_scale must be two values with low <= high"),
    ("crop_scale=[0, 1]", "crop_scale must be > 0"),
    ("crop_ratio=[2, 0.5]", "crop_ratio must be two values with low <= high"),
    ("crop_scale=[0.5]", "crop_scale must be a list of 2 values"),
    ("synthetic_size=[0, 0]", "synthetic_size must be >= 16"),
    ("synthetic_size=[64.5, 64]", r"synthetic_size\[0\] must be an integer"),
    ("synthetic_objects=[3, 1]", "synthetic_objects must be two values with low <= high"),
    ("eval_clip_frames=2", "eval_clip_frames must be >= 3"),
    ("eval_clip_size=[8, 8]", "eval_clip_size must be >= 16"),
    ("amp=fast", "amp must be one of 'auto', 'bf16', 'fp16', 'off'"),
    ("amp=false", "amp must be text, got False"),
    ("device=tpu", "device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    ("device=cuda:x", "device must be auto, cpu, cuda, cuda:N or mps"),
    ("model=smal", "model must be a preset name .*unknown SegGPT preset 'smal'"),
    ("model={depth: 2}", "model must be a preset name .*feature_layers"),
    ("model={depth: 999}", "model must be a preset name .*model config depth = 999: expected an integer from 1 to 512"),
    ("model=[1, 2]", "model must be a preset name"),
    ("embedding_type=panoptic", "embedding_type must be one of 'instance', 'semantic'"),
    ("same_crop_prob=1.5", "same_crop_prob must be <= 1"),
    ("betas=[0.9, 1.0]", r"betas must be two numbers in \[0, 1\)"),
    ("random_mask_ratio=1", "random_mask_ratio must be < 1"),
    ("object_weight_max=0.5", "object_weight_max must be >= 1"),
    ("threads=0", "threads must be >= 1"),
    ("num_workers=-1", "num_workers must be >= 0"),
    ("max_minutes=0", "max_minutes must be > 0"),
    ("davis_year=2018", "davis_year must be one of 2016, 2017"),
    ("davis_roots=path/to/DAVIS", "davis_roots must be a list"),
    ("out_dir=", "out_dir must be text, got None"),
    ("progress=no", "progress must be true or false, got 'no'"),
    ("seed=-1", "seed must be >= 0"),
    ("learning_rate=0.1", "unknown setting 'learning_rate'"),
])
def test_every_training_value_is_checked_and_its_override_named(override, message):
    with pytest.raises(ConfigError, match=f"^command line {override.split('=')[0]}=.*: {message}"):
        load_config(None, [override])


def test_a_config_file_is_named_in_its_errors(tmp_path):
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'run.yaml'}: lr must be > 0, got -1"):
        _load(tmp_path, "model: test-tiny\nlr: -1\n")
    # an override is blamed on itself, not on the file it overrides
    with pytest.raises(ConfigError, match="^command line steps=abc: steps must be an integer"):
        _load(tmp_path, "model: test-tiny\n", "steps=abc")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(str(tmp_path))
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(str(tmp_path / "run.yaml"), ["steps"])


def test_yaml_1_2_values(tmp_path):
    cfg = _load(tmp_path, "amp: off\nlr: 1e-3\nmin_lr_ratio: 2E-2\nweight_decay: 0\nsteps: 10\n")
    assert cfg.amp == "off"  # YAML 1.1 read a bare off as false (the old loader patched it back)
    assert cfg.lr == 1e-3 and isinstance(cfg.lr, float)  # YAML 1.1 read 1e-3 as the text "1e-3"
    assert cfg.min_lr_ratio == 0.02 and cfg.weight_decay == 0.0 and isinstance(cfg.weight_decay, float)
    with pytest.raises(ConfigError, match="hflip_prob must be a number, got 'yes'"):
        _load(tmp_path, "hflip_prob: yes\n")


def test_curriculum_stages_are_checked_when_read_not_when_reached(tmp_path):
    path = tmp_path / "run.yaml"
    with pytest.raises(ConfigError, match=rf"^{path}: curriculum\[0\].crop_scale must be two values with low <= high"):
        _load(tmp_path, "steps: 100000\ncurriculum:\n  - at_step: 90000\n    crop_scale: [0.9, 0.1]\n")
    for stages, message in [
        ("[{at_step: 5, jitter: high}]", r"curriculum\[0\].jitter must be a number, got 'high'"),
        ("[{at_step: 5, synthetic_max_gap: 2.5}]", r"curriculum\[0\].synthetic_max_gap must be an integer"),
        ("[{at_step: 5, same_crop_prob: 2}]", r"curriculum\[0\].same_crop_prob must be <= 1"),
        ("[{jitter: 0.1}]", r"curriculum\[0\].at_step is required"),
        ("[{at_step: 0, jitter: 0.1}]", r"curriculum\[0\].at_step must be >= 1"),
        ("[{at_step: 2.5, jitter: 0.1}]", r"curriculum\[0\].at_step must be an integer"),
        ("[{at_step: 5, model: small}]", r"unknown setting 'curriculum\[0\].model'"),
        ("[5]", r"curriculum\[0\] must be a mapping of settings"),
        ("{at_step: 5}", "curriculum must be a list"),
        ("[{at_step: 6}, {at_step: 5}]", "curriculum must be stages whose at_step increase"),
    ]:
        with pytest.raises(ConfigError, match=f"^command line curriculum=.*: {message}"):
            load_config(None, [f"curriculum={stages}"])
    cfg = load_config(None, ["curriculum=[{at_step: 5, crop_scale: [0.3, 0.6], synthetic_objects: [2, 4]}]"])
    (stage,) = cfg.curriculum
    assert isinstance(stage, CurriculumStage) and stage.changes() == {"crop_scale": (0.3, 0.6), "synthetic_objects": (2, 4)}
    assert data_config(cfg, 4) is cfg and data_config(cfg, 5).crop_scale == (0.3, 0.6)
    assert cfg.to_dict()["curriculum"][0]["crop_scale"] == [0.3, 0.6]  # plain data for the log and checkpoint


def test_settings_made_in_code_are_checked_too():
    with pytest.raises(ConfigError, match="TrainConfig: lr must be > 0"):
        TrainConfig(lr=-1)
    with pytest.raises(ConfigError, match="batch_size must be an integer"):
        dataclasses.replace(TrainConfig(), batch_size=[1, 2])
    assert TrainConfig(crop_scale=[0.2, 0.4]).crop_scale == (0.2, 0.4)  # lists become tuples


def test_pair_settings_are_built_from_the_flat_keys_in_one_place():
    cfg = load_config(None, ["min_color_distance=60", "palette_prob=0.3", "mix_context_prob=0.2", "mix_context_n=4",
                             "random_mask_prob=0.1", "random_mask_ratio=0.5", "object_weight_max=3",
                             "crop_scale=[0.4, 0.9]", "crop_ratio=[0.5, 2]", "same_crop_prob=0.7", "hflip_prob=0.1",
                             "vflip_prob=0.2", "jitter=0.25"])
    assert cfg.pair_settings() == PairSettings(min_color_distance=60.0, palette_prob=0.3, mix_context_prob=0.2,
                                               mix_context_n=4, random_mask_prob=0.1, random_mask_ratio=0.5,
                                               object_weight_max=3.0)
    assert cfg.augment((32, 48)) == Augment(size=(32, 48), crop_scale=(0.4, 0.9), crop_ratio=(0.5, 2.0),
                                            same_crop_prob=0.7, hflip_prob=0.1, vflip_prob=0.2, jitter=0.25)
    # every PairSettings field is a TrainConfig key of the same name (so the YAML keys stay flat)
    keys = {f.name for f in dataclasses.fields(TrainConfig)}
    assert {f.name for f in dataclasses.fields(PairSettings)} <= keys
    assert {f.name for f in dataclasses.fields(Augment)} - {"size"} <= keys


from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.one_of(st.integers(-100, 100), st.floats(-2, 2), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.sampled_from(["at_step", "jitter", "depth", "x"]), st.integers(-3, 30), max_size=3),
)
_KEYS = st.sampled_from(sorted(f.name for f in dataclasses.fields(TrainConfig)) + ["unknown_key"])


@hsettings(max_examples=300, deadline=None)
@given(layer=st.dictionaries(_KEYS, _VALUES, max_size=4))
def test_any_settings_give_a_config_or_our_one_line_error(layer):
    """Property: whatever a file holds, the loader gives a checked TrainConfig or a ConfigError naming it."""
    from seggpt.settings import build

    try:
        cfg = build(TrainConfig, [(layer, "f.yaml")])
    except ConfigError as err:
        assert str(err).startswith("f.yaml: ") and "\n" not in str(err)
        return
    assert cfg.steps >= 1 and cfg.batch_size >= 1 and cfg.lr > 0 and cfg.eval_clip_frames >= 3
    assert 0 < cfg.crop_scale[0] <= cfg.crop_scale[1] <= 1
    cfg.pair_settings(), cfg.augment((64, 64))  # the pair makers' settings build from any accepted config


def test_shipped_training_configs_load():
    """Every configs/train_*.yaml the README and the model card name parses, curriculum included."""
    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("train_*.yaml"))
    assert {p.name for p in configs} >= {"train_small.yaml", "train_small_stage2.yaml", "train_finetune.yaml"}
    for path in configs:
        cfg = load_config(str(path))
        assert cfg.steps >= 1, path
    stage2 = load_config(str(configs[[p.name for p in configs].index("train_small_stage2.yaml")]))
    assert stage2.init_from and stage2.curriculum[0].at_step == 2000


def test_training_configs_hold_no_paths_outside_the_repository():
    """Data roots and out_dir come from the command line; the shipped files work in any clone."""
    for path in sorted((ROOT / "configs").glob("train_*.yaml")):
        text = path.read_text()
        assert "../" not in text and "/shared/" not in text, path
        cfg = load_config(str(path))
        assert cfg.davis_roots == cfg.ytvos_roots == cfg.folder_roots == [], path
        assert cfg.out_dir == TrainConfig.out_dir, path  # the default, inside the working folder
        assert not cfg.init_from or not cfg.init_from.startswith(("/", "..")), path
    readme = (ROOT / "README.md").read_text()
    training = readme[readme.index("## Training"):readme.index("## Benchmarks")]
    commands = [line for line in training.splitlines() if " -m training" in line]
    assert len(commands) >= 4 and not any("../" in line for line in commands)
    assert all("out_dir=" in line for line in commands)
