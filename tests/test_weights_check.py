"""Weights: every file is checked before a model is built from it, with one line naming it.

The cases found in review: a metadata config that is not JSON or names an unknown key, negative or
absurd sizes (``depth: 999`` built the model for 77 s before failing), a config.json holding a list,
all-NaN or integer weights that loaded and ran, ``--weights small`` taken over by a local ``small``,
and a refused pickle that pointed at ``weights_only=False``.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import struct
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from seggpt import SegGPT
from seggpt.config import FIELDS, SegGPTConfig
from seggpt.errors import WeightsError
from seggpt.io import save_index_png, write_mp4
from seggpt.weights_file import FORMAT_TAG, check_weights_file, packaged_weights, read_safetensors_header, resolve
from vos.run import main as vos_run
from vos.data.synthetic import make_clip


@pytest.fixture(scope="module")
def tensors(tiny_model):
    return {k: v.contiguous() for k, v in tiny_model.state_dict().items()}


@pytest.fixture(scope="module")
def config(tiny_model):
    return tiny_model.config


def _save(path: Path, state, config: dict | str) -> Path:
    """Our weights file: the tensors, and the config in the metadata (a dict as JSON, a text as it is)."""
    text = config if isinstance(config, str) else json.dumps(config)
    save_file(state, str(path), metadata={"format": FORMAT_TAG, "config": text})
    return path


BAD_CONFIGS = [  # (metadata config text, words of the one-line error)
    ("{depth: 4", "not JSON"),
    ('{"depht": 4}', "unknown model config key"),
    ('{"depth": -1}', "depth = -1"),
    ('{"depth": 999}', "depth = 999: expected an integer from 1 to 512"),
    ('{"depth": 40}', "depth 40, the file holds 4 blocks"),
    ('{"embed_dim": 2.5}', "embed_dim = 2.5"),
    ('{"image_size": [64]}', "image_size"),
    ('{"mlp_ratio": "4"}', "mlp_ratio"),
    ('[1, 2]', "must be a JSON object"),
    ('{"decoder_dim": 16}', "decoder_embed.weight"),
]


@pytest.mark.parametrize("raw, words", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_metadata_config_is_checked_against_the_header_before_any_model(tmp_path, raw, words, tensors, config):
    if raw.startswith("{") and raw.endswith("}") and "depth: 4" not in raw:  # a change of the real config
        raw = {**config.to_dict(), **json.loads(raw)}
    path = _save(tmp_path / "w.safetensors", tensors, raw)
    start = time.perf_counter()
    with pytest.raises(WeightsError, match="w.safetensors") as info:
        SegGPT.from_pretrained(str(path))
    assert words in str(info.value) and "\n" not in str(info.value)
    assert time.perf_counter() - start < 10  # refused from the header, not after building 999 blocks


def test_the_right_config_loads(tmp_path, tensors, config):
    path = _save(tmp_path / "w.safetensors", tensors, config.to_dict())
    assert check_weights_file(path) == config
    assert SegGPT.from_pretrained(str(path)).config == config


@pytest.mark.parametrize("change, words", [
    (lambda t: {k: torch.full_like(v, float("nan")) for k, v in t.items()}, "NaN or infinite"),
    (lambda t: {**t, "norm.weight": torch.full_like(t["norm.weight"], float("inf"))}, "'norm.weight'"),
    (lambda t: {k: v.to(torch.int32) for k, v in t.items()}, "must be floating point"),
])
def test_nan_and_integer_weights_are_refused(tmp_path, change, words, tensors, config):
    path = _save(tmp_path / "w.safetensors", change(tensors), config.to_dict())
    with pytest.raises(WeightsError, match=words):
        SegGPT.from_pretrained(str(path))


def test_integer_pickle_and_code_pickle(tmp_path, tensors):
    torch.save({"model": {k: v.long() for k, v in tensors.items()}}, tmp_path / "int.pth")
    with pytest.raises(WeightsError, match="must be floating point"):
        SegGPT.from_pretrained(str(tmp_path / "int.pth"))
    torch.save({"model": tensors, "hook": _Evil()}, tmp_path / "code.pth")
    with pytest.raises(WeightsError) as info:
        SegGPT.from_pretrained(str(tmp_path / "code.pth"))
    text = str(info.value)
    assert "Python code" in text and "getpid" in text and "weights_only" not in text and "\n" not in text


class _Evil:
    """Pickles as a call of os.getpid (harmless); not print, which Ray replaces after ray.shutdown()."""

    def __reduce__(self):
        return (os.getpid, ())


def test_config_json_holding_a_list(tmp_path, tensors):
    folder = tmp_path / "hf"
    folder.mkdir()
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(WeightsError, match="config.json: a model config must be a JSON object, got a list"):
        SegGPT.from_pretrained(str(folder))
    (folder / "config.json").write_text('{"num_hidden_layers": -3}')
    with pytest.raises(WeightsError, match="num_hidden_layers = -3"):
        SegGPT.from_pretrained(str(folder))


def test_safetensors_header_is_checked(tmp_path, tensors, config):
    path = _save(tmp_path / "w.safetensors", tensors, config.to_dict())
    header, meta = read_safetensors_header(path)
    assert header["norm.weight"]["shape"] == [32] and meta["format"] == FORMAT_TAG
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="outside the file"):
        read_safetensors_header(tmp_path / "cut.safetensors")
    (tmp_path / "huge.safetensors").write_bytes(struct.pack("<Q", 10 ** 15) + b"{}")
    with pytest.raises(WeightsError, match="header of"):
        read_safetensors_header(tmp_path / "huge.safetensors")
    (tmp_path / "short.safetensors").write_bytes(b"abc")
    with pytest.raises(WeightsError, match="shorter"):
        read_safetensors_header(tmp_path / "short.safetensors")


def test_packaged_name_wins_over_a_local_file(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small").write_text("not weights")
    assert packaged_weights("small") is not None and packaged_weights("./small") is None
    assert resolve("small") == (packaged_weights("small"), None)
    assert "pass ./small" in caplog.text
    assert resolve("./small") == (Path("small"), None)  # the local file
    assert SegGPT.from_pretrained("small").config.embed_dim == 128
    (tmp_path / "small").unlink()
    (tmp_path / "small").mkdir()  # a folder of that name too
    assert SegGPT.from_pretrained("small").config.embed_dim == 128


def test_vos_run_refuses_absurd_weights_in_one_line(tmp_path, capsys, tensors, config):
    path = _save(tmp_path / "w.safetensors", tensors, {**config.to_dict(), "depth": 999})
    frames, labels = make_clip(1, 3, size=(32, 48), num_objects=1)
    write_mp4(tmp_path / "c.mp4", frames, fps=8)
    save_index_png(tmp_path / "m.png", labels[0])
    start = time.perf_counter()
    assert vos_run([str(tmp_path / "c.mp4"), "--first-mask", str(tmp_path / "m.png"), "--weights", str(path),
                    "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "depth = 999" in err[0] and time.perf_counter() - start < 20


def test_every_config_field_has_bounds_and_a_config_checks_them_itself():
    """One validation of the model config, where it is defined: a weights file, a transformers config.json
    and a training setting all meet the same bounds through SegGPTConfig."""
    assert list(FIELDS) == [f.name for f in dataclasses.fields(SegGPTConfig)]
    with pytest.raises(ValueError, match=r"^model config depth = 999: expected an integer from 1 to 512$"):
        SegGPTConfig(depth=999)
    with pytest.raises(ValueError, match=r"model config qkv_bias = 1: expected true or false"):
        SegGPTConfig.from_dict({"qkv_bias": 1})
    with pytest.raises(ValueError, match="unknown model config key"):
        SegGPTConfig.from_dict({"depht": 4})


def test_the_old_checked_loader_still_works_with_a_warning(tiny_weights):
    """seggpt.weights_check (load_checked, WeightsFileError) stays for one release, with a DeprecationWarning."""
    sys.modules.pop("seggpt.weights_check", None)
    with pytest.warns(DeprecationWarning, match="SegGPT.from_pretrained"):
        old = importlib.import_module("seggpt.weights_check")
    assert old.WeightsFileError is WeightsError
    assert old.load_checked(tiny_weights).config == SegGPT.from_pretrained(tiny_weights).config
