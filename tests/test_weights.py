"""Loading round trips (transformers folders, official state dicts, our format) and damaged files."""
import argparse

import pytest
import torch

from benchmarks.reference import transformers_twin
from seggpt import SegGPT, get_config
from seggpt.weights import WeightsError, infer_config, read_checkpoint, to_transformers_keys
from helpers import random_inputs


@pytest.fixture(scope="module")
def inputs(tiny_model):
    return random_inputs(1, 2, tiny_model.config, seed=1)


def _same(a: SegGPT, b: SegGPT, inputs):
    assert a.config == b.config
    assert torch.equal(a.infer(*inputs), b.infer(*inputs))


def test_our_format_round_trip(tiny_model, inputs, tmp_path):
    path = tiny_model.save_pretrained(tmp_path / "tiny.safetensors")
    _same(tiny_model, SegGPT.from_pretrained(str(path)), inputs)
    # a folder holding it works too
    _same(tiny_model, SegGPT.from_pretrained(str(tmp_path)), inputs)


def test_transformers_save_pretrained_folder(tiny_model, inputs, tmp_path):
    pytest.importorskip("transformers")
    hf = transformers_twin(tiny_model)
    hf.save_pretrained(tmp_path / "hf")
    assert (tmp_path / "hf" / "config.json").exists()
    _same(tiny_model, SegGPT.from_pretrained(str(tmp_path / "hf")), inputs)
    # the weights file alone (no config.json): config inferred from shapes and the layer rule
    _same(tiny_model, SegGPT.from_pretrained(str(tmp_path / "hf" / "model.safetensors"), config="test-tiny"), inputs)


def test_transformers_bin_without_model_prefix(tiny_model, inputs, tmp_path):
    sd = {k[len("model."):] if k.startswith("model.") else k: v for k, v in to_transformers_keys(tiny_model.state_dict()).items()}
    torch.save(sd, tmp_path / "pytorch_model.bin")
    _same(tiny_model, SegGPT.from_pretrained(str(tmp_path / "pytorch_model.bin"), config="test-tiny"), inputs)


def test_official_pth_forms(tiny_model, inputs, tmp_path):
    sd = tiny_model.state_dict()
    # {"model": ...} with MAE-style extras: an argparse Namespace, optimizer state, epoch
    torch.save({"model": sd, "args": argparse.Namespace(lr=1e-4), "optimizer": {"state": {}}, "epoch": 3},
               tmp_path / "ckpt.pth")
    _same(tiny_model, SegGPT.from_pretrained(str(tmp_path / "ckpt.pth"), config="test-tiny"), inputs)
    torch.save(sd, tmp_path / "bare.pth")
    _same(tiny_model, SegGPT.from_pretrained(str(tmp_path / "bare.pth"), config="test-tiny"), inputs)


class _NoInit(SegGPT):
    def reset_parameters(self, seed=None):  # meta tensors hold no data to initialise
        pass


def test_config_inferred_from_official_shapes():
    """The official .pth carries no config: it is read off the tensor shapes (on the meta device: no 1.5 GB)."""
    cfg = get_config("vit-large")
    with torch.device("meta"):
        meta = _NoInit(cfg)
    assert infer_config(meta.state_dict()) == cfg
    assert sum(p.numel() for p in meta.parameters()) == 370_723_203  # the official ViT-L checkpoint's parameter count


def test_damaged_files_give_clear_errors(tiny_model, tmp_path):
    good = tiny_model.save_pretrained(tmp_path / "good.safetensors")
    (tmp_path / "truncated.safetensors").write_bytes(good.read_bytes()[:1000])
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    sd = dict(tiny_model.state_dict())
    del sd["blocks.1.attn.qkv.weight"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save({"model": sd}, tmp_path / "partial.pth")
    torch.save({"model": {"foo": torch.zeros(1)}}, tmp_path / "other.pth")
    for name, config, words in [
        ("truncated.safetensors", None, "truncated.safetensors"), ("junk.pth", None, "junk.pth: cannot read"),
        ("partial.pth", "test-tiny", r"missing keys: blocks\.1\.attn\.qkv\.weight; unexpected keys: extra\.weight"),
        ("good.safetensors", get_config("test-tiny").replace(mlp_ratio=2.0), "shape mismatch"),
        ("other.pth", None, "not a SegGPT checkpoint"), ("missing.pth", None, "no such file"),
    ]:
        with pytest.raises(WeightsError, match=words):
            SegGPT.from_pretrained(str(tmp_path / name), config=config)


def test_pickled_code_is_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="evil.pth"):
        read_checkpoint(tmp_path / "evil.pth")


def test_hub_id_offline_error_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsError, match=r"BAAI/seggpt-vit-large: cannot fetch .*--weights"):
        SegGPT.from_pretrained("BAAI/seggpt-vit-large")


def test_hub_cache_is_used(tiny_model, inputs, tmp_path, monkeypatch):
    """A Hub id resolves through huggingface_hub's cache (filled here by hand, as a download would)."""
    pytest.importorskip("transformers")
    import huggingface_hub

    hf = transformers_twin(tiny_model)
    hf.save_pretrained(tmp_path / "snap")
    calls = []

    def fake_download(repo_id, filename, **kw):
        calls.append((repo_id, filename))
        return str(tmp_path / "snap" / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    _same(tiny_model, SegGPT.from_pretrained("someone/seggpt-tiny"), inputs)
    assert calls == [("someone/seggpt-tiny", "model.safetensors"), ("someone/seggpt-tiny", "config.json")]


def test_feature_layers_inferred_evenly_spaced_to_the_last_block():
    for preset, layers in (("vit-large", (5, 11, 17, 23)), ("small", (2, 4, 6))):
        cfg = get_config(preset)
        with torch.device("meta"):
            meta = _NoInit(cfg)
        assert infer_config(meta.state_dict()).feature_layers == layers
