"""Test-time adaptation (seggpt.adapt) and the pair tools it uses (seggpt.pairs), on random-weight
configs of the full architecture ("test-tiny"; one ViT-L-shaped canvas for LoRA)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seggpt import SegGPT
from seggpt.adapt import AdaptSampler, LoRALinear, add_lora, adapt, merge_lora, parse_params, select_parameters
from seggpt.colors import distinct_colors
from seggpt.predictor import denormalize
from seggpt.pairs import DreamAugment, DreamPairs
from helpers import random_inputs


def _scene(h=48, w=80, seed=0):
    """A textured frame with two rectangles (ids 3 and 9: any ids work) and its label map."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(60, 120, (h, w, 3), dtype=np.uint8)
    labels = np.zeros((h, w), np.uint8)
    labels[8:24, 10:30] = 3
    labels[28:44, 45:70] = 9
    frame[labels == 3] = (220, 40, 40)
    frame[labels == 9] = (30, 200, 60)
    return frame, labels


@pytest.fixture
def frame():
    return _scene()[0]


@pytest.fixture
def labels():
    return _scene()[1]


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- pairs


def test_dream_views_keep_labels_with_pixels(frame, labels):
    aug = DreamAugment(jitter=0.0, blur_prob=0.0, hflip_prob=0.0)
    src = aug.prepare(frame, labels, (64, 64))
    assert src.image.shape[:2] == src.labels.shape == src.plate.shape[:2]
    assert not (src.plate[labels == 3] == (220, 40, 40)).all(axis=1).any()  # the objects are in-painted away
    rng = np.random.default_rng(1)
    moved = 0
    for _ in range(20):
        img, lab = aug(src, rng)
        assert img.shape == frame.shape and lab.shape == labels.shape and img.dtype == np.uint8
        assert set(np.unique(lab)) <= {0, 3, 9}
        red = lab == 3
        if red.sum() > 20:  # the object's pixels travel with its label (interior: away from blended edges)
            inner = red & np.roll(red, 2, 0) & np.roll(red, -2, 0) & np.roll(red, 2, 1) & np.roll(red, -2, 1)
            if inner.any():
                assert np.abs(img[inner].astype(int) - (220, 40, 40)).mean() < 30
        moved += not np.array_equal(lab, labels)
    assert moved >= 15


def test_dream_pairs_prompt_is_the_frame_at_model_size(frame, labels):
    pairs = DreamPairs([frame], [labels], (32, 32), prompt_dream_prob=0.0)
    pair = pairs.draw(np.random.default_rng(0))
    assert pair.prompt.shape == (32, 32, 3) and pair.query.shape == (32, 32, 3)
    assert np.array_equal(pair.prompt_labels, pairs.prompts[0][1])
    with pytest.raises(ValueError):
        DreamPairs([frame], [labels[:10]], (32, 32))


def test_sampler_paints_engine_colours(frame, labels):
    sampler = AdaptSampler([frame], [labels], (64, 64), object_ids=[9, 3])  # engine order: 9 first
    imgs, tgts, valid = sampler.batch(np.random.default_rng(0), 2)
    assert imgs.shape == tgts.shape == (2, 3, 128, 64) and valid.shape == (2, 1, 128, 64)
    top = denormalize(tgts[:1, :, :64]).round()[0].permute(1, 2, 0).reshape(-1, 3)
    colours = {tuple(int(v) for v in c) for c in top.unique(dim=0)}
    # object 9 -> colour 1 (white), object 3 -> colour 2 (red): as vos.engine.segmenter paints joint prompts
    assert colours == {tuple(int(v) for v in c) for c in distinct_colors(2)}
    sep = AdaptSampler([frame], [labels], (64, 64), objects="separate")
    _, tgts, _ = sep.batch(np.random.default_rng(0), 2)
    top = denormalize(tgts[:, :, :64]).round().permute(0, 2, 3, 1).reshape(-1, 3)
    assert {tuple(int(v) for v in c) for c in top.unique(dim=0)} == {(0, 0, 0), (255, 255, 255)}


# ----------------------------------------------------------------------------- adapt


def test_adapt_returns_a_copy_and_leaves_the_model_untouched(tiny_model, frame, labels):
    before = _state(tiny_model)
    flags = [p.requires_grad for p in tiny_model.parameters()]
    adapted = adapt(tiny_model, [frame], [labels], steps=3, lr=1e-3, batch_size=2)
    assert _same(before, _state(tiny_model))  # bit-identical
    assert [p.requires_grad for p in tiny_model.parameters()] == flags and not tiny_model.training
    assert adapted is not tiny_model and not adapted.training
    assert not _same(before, _state(adapted))
    assert adapted.state_dict().keys() == tiny_model.state_dict().keys()
    assert [p.requires_grad for p in adapted.parameters()] == flags
    h = adapted.adapt_history[-1]
    assert h["steps"] == 3 and h["seconds"] > 0 and h["seconds_per_step"] > 0
    # inference works and has the model's shape
    q = torch.randn(2, 3, 64, 64)
    p = torch.randn(2, 3, 3, 64, 64)
    assert adapted.infer(q, p, p).shape == (2, 3, 64, 64)


def test_adapt_is_deterministic_with_a_seed(tiny_model, frame, labels):
    a = adapt(tiny_model, [frame], [labels], steps=3, lr=1e-3, batch_size=2, seed=5)
    b = adapt(tiny_model, [frame], [labels], steps=3, lr=1e-3, batch_size=2, seed=5)
    c = adapt(tiny_model, [frame], [labels], steps=3, lr=1e-3, batch_size=2, seed=6)
    assert _same(_state(a), _state(b))
    assert not _same(_state(a), _state(c))


def test_adapt_continues_from_an_adapted_copy(tiny_model, frame, labels):
    first = adapt(tiny_model, [frame], [labels], steps=2, lr=1e-3, batch_size=2)
    snapshot = _state(first)
    second = adapt(first, [frame, _scene(seed=1)[0]], [labels, labels], steps=2, lr=1e-3, batch_size=2)
    assert _same(snapshot, _state(first))  # the first copy is untouched too
    assert len(second.adapt_history) == 2 and second.adapt_history[1]["frames"] == 2
    # it starts from the first copy's weights: closer to them than to the shared model's
    def dist(x, y):
        return sum((x[k] - y[k]).pow(2).sum().item() for k in x)
    assert dist(_state(second), snapshot) < dist(_state(second), _state(tiny_model))
    assert adapt(first, [frame], [labels], steps=0).adapt_history[-1]["steps"] == 0
    assert _same(_state(adapt(first, [frame], [labels], steps=0)), snapshot)


def test_adapt_loss_decreases_on_a_toy_pair(tiny_model, frame, labels):
    losses = []
    adapt(tiny_model, [frame], [labels], steps=40, lr=3e-3, batch_size=4, seed=0, warmup=2,
          progress=lambda p: losses.append(p.loss))
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:4])


@pytest.mark.parametrize("params", ["decoder", "last:1", "lora:2", "lora:2+decoder"])
def test_adapt_param_choices_train_only_those(tiny_model, params, frame, labels):
    before = _state(tiny_model)
    adapted = adapt(tiny_model, [frame], [labels], steps=2, lr=1e-2, batch_size=2, params=params)
    after = _state(adapted)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed
    assert not any(isinstance(m, LoRALinear) for m in adapted.modules())  # merged back
    if params == "decoder":
        assert all(k.startswith(("decoder_", "norm.")) for k in changed)
    elif params == "last:1":
        last = f"blocks.{len(tiny_model.blocks) - 1}."
        assert all(k.startswith((last, "decoder_", "norm.")) for k in changed)
    elif params == "lora:2":
        assert all(".attn.qkv.weight" in k or ".attn.proj.weight" in k for k in changed)
    else:
        assert any(k.startswith("decoder_") for k in changed) and any(".attn.qkv.weight" in k for k in changed)


def test_params_spec_errors(frame, labels):
    assert parse_params("lora:8+decoder") == [("lora", 8), ("decoder", 0)]
    assert parse_params("lora") == [("lora", 4)]
    for bad in ("last", "last:0", "lora:x", "encoder", "all:3"):
        with pytest.raises(ValueError, match="adapt params"):
            parse_params(bad)
    with pytest.raises(ValueError):
        adapt(SegGPT("test-tiny"), [frame], [np.zeros_like(labels)], steps=1)  # no object


@pytest.mark.parametrize("config", ["test-tiny", "test-canvas"])
def test_lora_merge_equals_unmerged(config):
    torch.manual_seed(0)
    model = SegGPT(config).eval()
    trainable = select_parameters(model, "lora:4")
    assert trainable and all(p.requires_grad for p in trainable)
    with torch.no_grad():  # a non-zero update (B starts at zero)
        for p in trainable:
            p.add_(torch.randn_like(p) * 0.05)
    q, pi, pm = random_inputs(1, 2, model.config, seed=1)
    unmerged = model.infer(q, pi, pm)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    merged = model.infer(q, pi, pm)
    assert (merged - unmerged).abs().max().item() <= 1e-4
    assert model.state_dict().keys() == SegGPT(config).state_dict().keys()


def test_add_lora_twice_is_refused():
    model = SegGPT("test-tiny")
    add_lora(model, 2)
    with pytest.raises(ValueError, match="already has LoRA"):
        add_lora(model, 2)
