"""In-context tuning (seggpt.tune): a learnt prompt with the model frozen, saved with its weights' sha256."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from seggpt import SegGPT
from seggpt.errors import InputError
from seggpt.tune import TunedPrompt, main, tune_prompt, weights_sha256


def _example(seed=0, h=40, w=56):
    rng = np.random.default_rng(seed)
    image = rng.integers(40, 120, (h, w, 3), dtype=np.uint8)
    labels = np.zeros((h, w), np.uint8)
    y, x = 5 + seed * 3, 8 + seed * 5
    labels[y:y + 14, x:x + 18] = 1
    image[labels == 1] = (230, 200, 30)
    return image, labels


@pytest.fixture
def tune_argv(tiny_weights, tmp_path):
    """The first example saved as a.png and a_mask.png in tmp_path: the command line up to its options."""
    image, labels = _example(0)
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(labels * 255).save(tmp_path / "a_mask.png")
    return ["--weights", tiny_weights, "--example", str(tmp_path / "a.png"), str(tmp_path / "a_mask.png")]


def test_tune_shapes_model_untouched_and_deterministic(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    flags = [p.requires_grad for p in tiny_model.parameters()]
    images, labels = map(list, zip(_example(0), _example(1)))
    a = tune_prompt(tiny_model, images, labels, steps=3, batch_size=2, seed=1)
    b = tune_prompt(tiny_model, images, labels, steps=3, batch_size=2, seed=1)
    assert a.image.shape == a.mask.shape == (3, 64, 64) and a.labels.shape == (64, 64)
    assert torch.equal(a.image, b.image)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    assert [p.requires_grad for p in tiny_model.parameters()] == flags and not tiny_model.training
    assert a.weights_sha256 == weights_sha256(tiny_model) and a.object_ids == [1]
    assert not a.image.requires_grad
    # learn="image": the mask is the first example's labels painted, unchanged
    mask_only = tune_prompt(tiny_model, images, labels, steps=2, batch_size=2, learn="image")
    both = tune_prompt(tiny_model, images, labels, steps=2, batch_size=2, learn="image+mask")
    assert torch.equal(mask_only.mask, tune_prompt(tiny_model, images, labels, steps=0).mask)
    assert not torch.equal(both.mask, mask_only.mask)
    out = tiny_model.infer(torch.randn(2, 3, 64, 64), a.image[None, None].expand(2, 1, -1, -1, -1),
                     a.mask[None, None].expand(2, 1, -1, -1, -1))
    assert out.shape == (2, 3, 64, 64)


def test_tune_loss_decreases(tiny_model):
    image, labels = _example(0)
    losses = []
    tune_prompt(tiny_model, [image], [labels], steps=25, lr=0.05, batch_size=4, progress=lambda s, n, l: losses.append(l))
    assert np.mean(losses[-5:]) < np.mean(losses[:3])


def test_save_load_and_refusal_for_other_weights(tiny_model, tmp_path):
    image, labels = _example(0)
    prompt = tune_prompt(tiny_model, [image], [labels], steps=1, batch_size=2)
    path = prompt.save(tmp_path / "p.safetensors")
    back = TunedPrompt.load(path, tiny_model)
    assert torch.equal(back.image, prompt.image) and torch.equal(back.mask, prompt.mask)
    assert np.array_equal(back.colours, prompt.colours) and back.meta["steps"] == 1
    other = SegGPT("test-tiny")  # same shapes, other random weights
    with pytest.raises(InputError, match="tuned for weights sha256") as err:
        TunedPrompt.load(path, other)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="missing.safetensors: no such file"):
        TunedPrompt.load(tmp_path / "missing.safetensors")


def test_cli(tune_argv, tiny_weights, tmp_path, capsys):
    out = tmp_path / "prompt.safetensors"
    code = main([*tune_argv, "--steps", "2", "--batch-size", "2", "--out", str(out)])
    assert code == 0 and out.is_file()
    assert "tuned prompt for weights sha256" in capsys.readouterr().out
    assert TunedPrompt.load(out, SegGPT.from_pretrained(tiny_weights)).meta["weights"] == tiny_weights
    code = main(["--weights", tiny_weights, "--example", str(tmp_path / "a.png"), str(tmp_path / "missing.png"),
                 "--out", str(out)])
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1


BAD_OPTIONS = [  # a fresh adversarial pass: --out replaced its own example image; bad numbers gave tracebacks
    (["--out", "{a}"], "is the example image 1"),
    (["--out", "{mine}"], "exists and was not written by a run of ours"),
    (["--out", "{tmp}"], "is a folder"),
    (["--out", "{tmp}/x.pt"], "a .safetensors file"),
    (["--out", "{tmp}/x.safetensors", "--steps", "-3"], "--steps must be >= 1"),
    (["--out", "{tmp}/x.safetensors", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["--out", "{tmp}/x.safetensors", "--lr", "nan"], "--lr must be a positive number"),
    (["--out", "{tmp}/x.safetensors", "--seed", "-1"], "--seed must be >= 0"),
]


@pytest.mark.parametrize("extra, words", BAD_OPTIONS)
def test_cli_refuses_bad_options_before_any_work(tune_argv, tmp_path, capsys, extra, words):
    (tmp_path / "mine.safetensors").write_text("mine")
    before = (tmp_path / "a.png").read_bytes()
    fill = dict(a=tmp_path / "a.png", mine=tmp_path / "mine.safetensors", tmp=tmp_path)
    code = main([*tune_argv, *[e.format(**fill) for e in extra]])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1
    assert (tmp_path / "a.png").read_bytes() == before and (tmp_path / "mine.safetensors").read_text() == "mine"


def test_run_takes_a_prompt_file_for_its_weights_only(tune_argv, tiny_weights, tmp_path, capsys):
    from seggpt.run import main as run_main

    Image.fromarray(_example(1)[0]).save(tmp_path / "q.png")
    prompt = tmp_path / "prompt.safetensors"
    assert main([*tune_argv, "--steps", "1", "--batch-size", "2", "--out", str(prompt)]) == 0
    out = tmp_path / "out"
    assert run_main(["--prompt-file", str(prompt), str(tmp_path / "q.png"), "--weights", tiny_weights,
                     "--out", str(out), "--device", "cpu"]) == 0
    mask = np.asarray(Image.open(out / "q_mask.png"))
    assert mask.shape == (40, 56) and set(np.unique(mask)) <= {0, 1}
    other = tmp_path / "other.safetensors"
    SegGPT("test-tiny").save_pretrained(str(other))
    capsys.readouterr()
    assert run_main(["--prompt-file", str(prompt), str(tmp_path / "q.png"), "--weights", str(other),
                     "--out", str(out), "--device", "cpu", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "tuned for weights sha256" in err and err.count("\n") == 1
    assert run_main([str(tmp_path / "q.png"), "--weights", tiny_weights, "--out", str(out), "--overwrite"]) == 2
