"""Tests for the training package (data, trainer): colour mapping, loss, training, resume, fine-tuning (the
command line: tests/test_train_cli.py; the settings and shipped configs: tests/test_train_config.py).

All runs use the "test-tiny" preset, batches of 2-4 canvases and no loader worker, so the file runs
in well under a minute on 2 CPU cores.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from seggpt.colors import palette
from seggpt.config import get_config
from seggpt.errors import InputError
from seggpt.model import SegGPT
from seggpt.predictor import denormalize
from seggpt.settings import ConfigError
from training.config import TrainConfig, data_config, load_config
from training.data import (
    Augment, CurriculumStream, FlowPairs, FolderPairs, PairStream, RawPair, SyntheticPairs, VideoPairs, build_sample,
    colour_mapping, object_weights,
)
from training.trainer import Trainer, build_stream, lr_factor
from vos.data.synthetic import write_davis2017
from helpers import DATA, require, tiny_train

#: the stream settings of a run with the default TrainConfig (built where a run builds them)
SETTINGS = TrainConfig().pair_settings()


def _tiny_config(out_dir: Path, **settings) -> TrainConfig:
    return load_config(None, tiny_train(out_dir, **{"steps": 4, "warmup_steps": 2, "lr": 2e-3, **settings}))


def _canvas_rgb(t: torch.Tensor) -> np.ndarray:
    """(3, 2H, W) normalised -> (2H, W, 3) uint8 (exact for the painted colours up to rounding)."""
    return denormalize(t[None])[0].round().byte().permute(1, 2, 0).numpy()


# ----------------------------------------------------------------------------- colour mapping


def _hand_pair() -> RawPair:
    prompt_labels = np.zeros((16, 16), np.uint8)
    prompt_labels[2:6, 2:6] = 1
    prompt_labels[8:12, 8:14] = 2
    query_labels = np.zeros((16, 16), np.uint8)
    query_labels[3:7, 3:7] = 1
    query_labels[9:13, 6:12] = 2
    query_labels[0:2, 12:16] = 3  # an object the prompt never shows
    query_labels[14:16, 0:3] = 255  # void
    image = np.full((16, 16, 3), 100, np.uint8)
    return RawPair(image, prompt_labels, image.copy(), query_labels)


def test_colour_mapping_consistent_within_a_sample():
    pair = _hand_pair()
    mapping = colour_mapping([pair.prompt_labels], np.random.default_rng(3))
    assert sorted(mapping) == [0, 1, 2]
    assert mapping[0].tolist() == [0, 0, 0]
    c1, c2 = mapping[1].astype(int), mapping[2].astype(int)
    assert np.linalg.norm(c1 - c2) >= 80 and np.linalg.norm(c1) >= 80 and np.linalg.norm(c2) >= 80

    _, target, valid = build_sample([pair], mapping)
    rgb = _canvas_rgb(torch.from_numpy(target))
    top, bottom = rgb[:16], rgb[16:]
    # the same object has the same colour in the prompt and in the query, every pixel
    for obj, colour in ((1, c1), (2, c2), (0, np.zeros(3, int))):
        assert np.abs(top[pair.prompt_labels == obj].astype(int) - colour).max() <= 1
    for obj, colour in ((1, c1), (2, c2)):
        assert np.abs(bottom[pair.query_labels == obj].astype(int) - colour).max() <= 1
    # an object missing from the prompt is background (its colour cannot be known); void is not scored
    assert bottom[pair.query_labels == 3].max() <= 1
    assert valid.shape == (1, 32, 16)
    assert (valid[0, 16:][pair.query_labels == 255] == 0).all()
    assert valid[0, 16:][pair.query_labels != 255].min() == 1 and valid[0, :16].min() == 1


def test_colour_mapping_random_per_sample():
    pair = _hand_pair()
    colours = [tuple(colour_mapping([pair.prompt_labels], np.random.default_rng(s))[1]) for s in range(20)]
    assert len(set(colours)) >= 18  # fresh colours for every sample
    # through the stream: the samples of one batch have different colours for their objects
    stream = PairStream([SyntheticPairs((48, 64), (1, 2), 4)], [1.0], Augment((32, 32)), batch_size=4,
                        settings=SETTINGS, seed=5)
    batch = stream.batch(0)
    firsts = set()
    for tgt in batch["tgts"]:
        rgb = _canvas_rgb(tgt)
        top, bottom = rgb[:32].reshape(-1, 3), rgb[32:].reshape(-1, 3)
        top_colours = {tuple(c) for c in np.unique(top, axis=0)}
        # query colours come from the prompt (up to bicubic-free nearest painting: exact)
        assert {tuple(c) for c in np.unique(bottom, axis=0)} <= top_colours | {(0, 0, 0)}
        firsts |= top_colours - {(0, 0, 0)}
    assert len(firsts) >= 4
    # a micro-batch is a pure function of (seed, rank, step): resume sees the same data
    again = stream.batch(0)
    assert torch.equal(batch["imgs"], again["imgs"]) and torch.equal(batch["tgts"], again["tgts"])
    assert not torch.equal(batch["imgs"], stream.batch(1)["imgs"])


def test_palette_prob_uses_inference_palette():
    pair = _hand_pair()
    mapping = colour_mapping([pair.prompt_labels], np.random.default_rng(0), palette_prob=1.0)
    assert np.array_equal(np.stack([mapping[i] for i in (0, 1, 2)]), palette(2))


# ----------------------------------------------------------------------------- loss


def test_loss_ignores_prompt_half():
    torch.manual_seed(0)
    model = SegGPT("test-tiny")
    h, w = model.config.image_size
    imgs, tgts = torch.randn(2, 3, 2 * h, w), torch.randn(2, 3, 2 * h, w)
    mask = model.bottom_half_mask(2)
    loss, pred = model(imgs, tgts, mask)
    # hand-computed: smooth L1 (beta 0.01) averaged over the query half only
    expected = F.smooth_l1_loss(pred[:, :, h:], tgts[:, :, h:], beta=0.01)
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-6)
    # changing the prediction or the target on the prompt half leaves the loss unchanged
    pred2, tgts2 = pred.detach().clone(), tgts.clone()
    pred2[:, :, :h] += 5.0
    tgts2[:, :, :h] -= 3.0
    token_mask = mask.reshape(2, 2 * model.config.grid_size[0], model.config.grid_size[1], 1)
    assert torch.allclose(model.loss(pred2, tgts2, token_mask), model.loss(pred.detach(), tgts, token_mask))
    # and no gradient reaches the prompt half of the prediction
    p = pred.detach().clone().requires_grad_(True)
    model.loss(p, tgts, token_mask).backward()
    assert p.grad[:, :, :h].abs().max() == 0 and p.grad[:, :, h:].abs().max() > 0


# ----------------------------------------------------------------------------- training


def test_few_steps_reduce_loss(tmp_path):
    cfg = _tiny_config(tmp_path / "run", steps=30, batch_size=4, lr=3e-3)
    trainer = Trainer(cfg)
    held_out = build_stream(cfg, trainer.model.config, start=10**6).batch(10**6)  # never a training batch

    def held_out_loss() -> float:
        with torch.no_grad():
            mask = trainer.model.bottom_half_mask(4)
            return float(trainer.model(held_out["imgs"], held_out["tgts"], mask, "instance", held_out["valid"])[0])

    before = held_out_loss()
    losses = trainer.run()["losses"]
    assert len(losses) == 30 and all(np.isfinite(losses))
    after = held_out_loss()
    assert after < 0.92 * before, (before, after)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert (tmp_path / "run" / "final.safetensors").is_file()


def test_resume_reproduces_uninterrupted_run(tmp_path):
    straight = _tiny_config(tmp_path / "a", steps=6)
    trainer = Trainer(straight)
    full = trainer.run()["losses"]
    full_state = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    paused = _tiny_config(tmp_path / "b", steps=6)
    first = Trainer(paused).run(until=3)["losses"]
    assert (tmp_path / "b" / "last.pt").is_file()
    resumed = Trainer(paused, resume="auto")
    assert resumed.step == 3
    rest = resumed.run()["losses"]
    assert first + rest == pytest.approx(full, rel=1e-6, abs=1e-7)
    for k, v in resumed.model.state_dict().items():
        assert torch.allclose(v, full_state[k], rtol=1e-5, atol=1e-7), k
    assert resumed.scheduler.last_epoch == trainer.scheduler.last_epoch == 6


def test_finetune_starts_from_loaded_checkpoint(tmp_path):
    source = SegGPT("test-tiny")
    source.reset_parameters(seed=123)
    path = source.save_pretrained(tmp_path / "init.safetensors")
    trainer = Trainer(_tiny_config(tmp_path / "ft", steps=2, init_from=str(path)))
    for k, v in source.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[k], v), k
    trainer.run()
    assert not torch.equal(trainer.model.decoder_embed.weight, source.decoder_embed.weight)  # it trained
    # a training checkpoint (last.pt) is a valid init_from as well, with its stored config even where
    # the tensors alone would suggest other decoder feature layers (depth 7, 3 feature layers)
    odd = {"image_size": [32, 32], "patch_size": 8, "embed_dim": 32, "depth": 7, "num_heads": 2,
           "merge_index": 1, "feature_layers": [3, 5, 6], "decoder_dim": 8, "pretrain_image_size": 32}
    first = Trainer(_tiny_config(tmp_path / "odd", steps=1, model=odd, ckpt_every=1))
    first.run()
    again = Trainer(_tiny_config(tmp_path / "ft2", init_from=str(tmp_path / "odd" / "last.pt")))
    assert again.model.config == first.model.config
    for k, v in first.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[k], v), k


# ----------------------------------------------------------------------------- data sources


def test_video_pairs_from_davis_train():
    source = VideoPairs([str(require(DATA / "davis2016-train-240p"))], "davis", "train", 2016, "240p", max_gap=3)
    assert len(source) == 30
    rng = np.random.default_rng(0)
    for _ in range(3):
        pair = source.draw(rng)
        assert pair.prompt.shape == (240, 427, 3) and pair.query_labels.shape == (240, 427)
        assert pair.prompt_labels.max() == 1  # a visible object in every prompt
        assert set(np.unique(pair.query_labels)) <= {0, 1}


def _textured_clip(folder: Path, shift=(3, 5), frames: int = 3, size=(96, 160)) -> list:
    """PNG frames of one smooth random texture moving by `shift` (dy, dx) pixels per frame."""
    rng = np.random.default_rng(1)
    h, w = size
    big = rng.integers(0, 256, (h // 8 + 8, w // 8 + 8, 3)).astype(np.uint8)
    texture = cv2.resize(big, ((w // 8 + 8) * 8, (h // 8 + 8) * 8), interpolation=cv2.INTER_CUBIC)
    folder.mkdir(parents=True)
    for t in range(frames):
        y, x = 20 - shift[0] * t, 20 - shift[1] * t  # the scene moves by +shift
        Image.fromarray(np.ascontiguousarray(texture[y:y + h, x:x + w])).save(folder / f"{t:05d}.png")
    return sorted(folder.glob("*.png"))


def test_flow_pairs_carry_pseudo_objects_with_the_motion(tmp_path):
    """Regions of frame i, carried to frame j by DIS flow, sit where the texture moved (by hand: a pure
    translation of 3 rows and 5 columns per frame), and untrusted pixels are void, never mislabelled."""
    paths = _textured_clip(tmp_path / "clip")
    source = FlowPairs([paths], max_gap=1, objects=(2, 2))
    rng = np.random.default_rng(0)
    for _ in range(4):
        pair = source.draw(rng)
        assert pair.prompt.shape == (96, 160, 3) and pair.query_labels.shape == (96, 160)
        objects = set(np.unique(pair.prompt_labels)) - {0}
        assert objects == {1, 2}  # two pseudo-objects, as asked
        frames = [np.asarray(Image.open(path)) for path in paths]
        i = next(k for k, f in enumerate(frames) if np.array_equal(f, pair.prompt))
        j = next(k for k, f in enumerate(frames) if np.array_equal(f, pair.query))
        dy, dx = 3 * (j - i), 5 * (j - i)  # the scene moved by +shift per frame from prompt to query
        assert (dy, dx) in ((3, 5), (-3, -5))
        expected = np.full_like(pair.prompt_labels, 254)  # 254: came from outside the prompt frame
        expected[max(dy, 0):96 + min(dy, 0), max(dx, 0):160 + min(dx, 0)] = \
            pair.prompt_labels[max(-dy, 0):96 + min(-dy, 0), max(-dx, 0):160 + min(-dx, 0)]
        trusted = pair.query_labels != 255
        assert trusted.mean() > 0.5
        agree = np.mean(pair.query_labels[trusted] == expected[trusted])
        assert agree > 0.97, agree
    with pytest.raises(InputError, match="max_gap must be >= 1"):
        source.with_max_gap(0)
    with pytest.raises(InputError, match="two frames"):
        FlowPairs([paths[:1]])


def test_object_crops_make_objects_cover_a_share_of_the_pixels():
    """A 6x6 object in a 240x400 frame covers 0.04% of a random crop's pixels; cropped around it, it
    covers a real share (the box grows its bounding box 1.3-3x), in both halves with a shared crop."""
    labels = np.zeros((240, 400), np.uint8)
    labels[100:106, 300:306] = 1
    image = np.random.default_rng(0).integers(0, 256, (240, 400, 3)).astype(np.uint8)
    pair = RawPair(image, labels, image, labels)
    around = Augment(size=(64, 64), object_crop_prob=1.0, same_crop_prob=1.0, jitter=0.0)
    plain = Augment(size=(64, 64), crop_scale=(0.9, 1.0), same_crop_prob=1.0, jitter=0.0)
    rng = np.random.default_rng(0)
    for _ in range(10):
        out = around(pair, rng)
        share = np.mean(out.prompt_labels == 1)
        assert 0.02 < share < 0.7, share
        assert np.array_equal(out.prompt_labels, out.query_labels)
        assert np.mean(plain(pair, rng).prompt_labels == 1) < 0.002
    empty = RawPair(image, np.zeros_like(labels), image, np.zeros_like(labels))
    assert around(empty, rng).prompt.shape == (64, 64, 3)  # no object: a random crop


def test_flow_pairs_join_the_stream_from_the_video_roots(tmp_path):
    write_davis2017(tmp_path / "davis", 2, seed=3, num_frames=6, size=(48, 64), split="train")
    cfg = _tiny_config(tmp_path / "run", synthetic_weight=0, video_weight=0, flow_weight=1, flow_max_gap=2,
                       davis_roots=f"[{tmp_path / 'davis'}]", davis_year=2017, davis_resolution="480p",
                       object_crop_prob=0.5)
    stream = build_stream(cfg, get_config("test-tiny"))
    (flow,) = stream.sources
    assert isinstance(flow, FlowPairs) and len(flow.videos) == 2 and flow.max_gap == 2
    assert stream.augment.object_crop_prob == 0.5
    batch = stream.batch(0)
    assert batch["imgs"].shape[0] == 2 and torch.isfinite(batch["tgts"]).all()
    with pytest.raises(ConfigError, match="flow_weight"):
        _tiny_config(tmp_path / "run", flow_weight=-1)

    with pytest.raises(InputError, match="davis_roots or ytvos_roots"):
        build_stream(_tiny_config(tmp_path / "run", flow_weight=1), get_config("test-tiny"))


def test_folder_pairs_share_a_class(tmp_path):

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i, cls in enumerate([1, 1, 2]):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
        mask = np.zeros((20, 24), np.uint8)
        mask[5:10, 5:12] = cls
        Image.fromarray(mask).save(tmp_path / "masks" / f"{i}.png")
    source = FolderPairs([str(tmp_path)])
    for _ in range(5):
        pair = source.draw(rng)
        assert pair.prompt_labels.max() == pair.query_labels.max() == 1  # only the two class-1 images pair


# ----------------------------------------------------------------------------- schedule


def test_schedule_warmup_cosine_and_time():
    assert lr_factor(0, 10, 110, 0.0) == pytest.approx(0.1)
    assert lr_factor(9, 10, 110, 0.0) == pytest.approx(1.0)
    assert lr_factor(60, 10, 110, 0.0) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(110, 10, 110, 0.02) == pytest.approx(0.02)
    # a slow machine: half the time gone at step 20 -> the cosine is half-way too
    assert lr_factor(20, 10, 110, 0.0, time_fraction=0.5) == pytest.approx(0.5)
    assert lr_factor(20, 10, 110, 0.0, time_fraction=2.0) == pytest.approx(0.0)


def test_token_masks_query_half_or_random():
    stream = PairStream([SyntheticPairs((48, 64), (1, 2), 2)], [1.0], Augment((32, 32)), batch_size=3,
                        settings=SETTINGS, seed=1)
    mask = stream.batch(0)["mask"]
    assert mask.shape == (3, 8 * 4) and mask.dtype == torch.bool
    assert (mask[:, 16:]).all() and not mask[:, :16].any()  # the query half only, by default
    mixed = PairStream([SyntheticPairs((48, 64), (1, 2), 2)], [1.0], Augment((32, 32)), batch_size=3, seed=1,
                       patch_size=8, settings=dataclasses.replace(SETTINGS, random_mask_prob=1.0, random_mask_ratio=0.75))
    rand = mixed.batch(0)["mask"]
    assert (rand.sum(dim=1) == 24).all()  # 75% of the 32 patches, anywhere on the canvas
    assert rand[:, :16].any()


# ----------------------------------------------------------------------------- object weights, curriculum, CPU bf16


def test_object_weights_balance_small_objects_by_hand():
    labels = np.zeros((10, 10), np.uint8)
    labels[0:2, 0:2] = 1  # 4 pixels
    labels[5:10, 5:10] = 2  # 25 pixels
    labels[9, 0] = 7  # an id the prompt never showed: background
    labels[0, 9] = 255  # void: neither object nor background
    mapping = {0: np.zeros(3), 1: np.ones(3), 2: np.ones(3)}
    background = 100 - 4 - 25 - 1  # 70 pixels (the unknown id included)
    weights = object_weights(labels, mapping, max_weight=10.0)
    assert weights[labels == 1] == pytest.approx(np.full(4, background / (2 * 4)))  # 8.75
    assert weights[labels == 2] == pytest.approx(np.full(25, background / (2 * 25)))  # 1.4
    assert (object_weights(labels, mapping, max_weight=5.0)[labels == 1] == 5.0).all()  # capped
    assert (weights[labels == 0] == 1).all() and weights[labels == 7] == 1
    assert object_weights(labels, mapping, max_weight=1.0).tolist() == np.ones((10, 10)).tolist()

    # through build_sample: the weights multiply the void mask, per half
    pair = _hand_pair()
    mapping = colour_mapping([pair.prompt_labels], np.random.default_rng(0))
    _, _, plain = build_sample([pair], mapping)
    _, _, weighted = build_sample([pair], mapping, object_weight_max=4.0)
    query = weighted[0, 16:]
    assert (query[pair.query_labels == 255] == 0).all()
    assert (query[pair.query_labels == 1] == 4.0).all()  # 210 background px / (2 objects * 16 px) = 6.6 -> 4
    assert (query[(pair.query_labels == 0) | (pair.query_labels == 3)] == 1).all()
    assert (weighted >= plain).all() and (weighted > plain).any()


def test_curriculum_changes_the_pairs_at_its_step_and_resumes_exactly(tmp_path):
    stages = "[{at_step: 2, same_crop_prob: 0.0, synthetic_max_gap: 9, object_weight_max: 3}]"
    cfg = _tiny_config(tmp_path / "c", steps=4, curriculum=stages, accum_steps=2)
    assert data_config(cfg, 1).same_crop_prob == cfg.same_crop_prob
    late = data_config(cfg, 2)
    assert (late.same_crop_prob, late.synthetic_max_gap, late.object_weight_max) == (0.0, 9, 3.0)
    model_cfg = get_config("test-tiny")
    stream = build_stream(cfg, model_cfg)
    assert isinstance(stream, CurriculumStream)
    early_only = build_stream(dataclasses.replace(cfg, curriculum=[]), model_cfg)
    late_only = build_stream(dataclasses.replace(late, curriculum=[]), model_cfg)
    for micro_step, expected in ((3, early_only), (4, late_only), (7, late_only)):  # step 2 = micro-step 4
        got, want = stream.batch(micro_step), expected.batch(micro_step)
        assert all(torch.equal(got[k], want[k]) for k in want), micro_step
    assert not torch.equal(stream.batch(4)["imgs"], early_only.batch(4)["imgs"])
    # a loader started mid-run (resume) yields the same micro-batches as the whole run's
    resumed = iter(build_stream(cfg, model_cfg, start=3))
    for micro_step in (3, 4, 5):
        assert torch.equal(next(resumed)["imgs"], stream.batch(micro_step)["imgs"])

    with pytest.raises(ConfigError, match=r"unknown setting 'curriculum\[0\].lr'"):  # the optimiser is not data
        load_config(None, ["curriculum=[{at_step: 5, lr: 0.1}]"])
    with pytest.raises(ConfigError, match="curriculum must be stages whose at_step increase"):
        load_config(None, ["curriculum=[{at_step: 5, jitter: 0.1}, {at_step: 5, jitter: 0.2}]"])


def test_bf16_autocast_trains_on_cpu(tmp_path):
    trainer = Trainer(_tiny_config(tmp_path / "bf16", steps=12, batch_size=4, lr=3e-3, amp="bf16"))
    assert trainer.amp_dtype == torch.bfloat16 and trainer.device.type == "cpu"
    losses = trainer.run()["losses"]
    assert all(np.isfinite(losses)) and np.mean(losses[-3:]) < np.mean(losses[:3])
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # fp32 master weights
    fp32 = Trainer(_tiny_config(tmp_path / "fp32", steps=1, amp="auto"))
    assert fp32.amp_dtype is None  # auto stays fp32 on a CPU


def test_curriculum_stages_share_the_video_index(tmp_path):
    """A stage that only changes the frame gap reuses the scanned dataset instead of reading it again."""
    write_davis2017(tmp_path / "davis", 2, seed=3, num_frames=6, size=(48, 64), split="train")
    cfg = _tiny_config(tmp_path / "run", synthetic_weight=0, davis_roots=f"[{tmp_path / 'davis'}]", davis_year=2017,
                       davis_resolution="480p", video_max_gap=2, curriculum="[{at_step: 1, video_max_gap: 5}]")
    stream = build_stream(cfg, get_config("test-tiny"))
    (_, early), (_, late) = stream.stages
    early_videos, late_videos = early.sources[0], late.sources[0]
    assert (early_videos.max_gap, late_videos.max_gap) == (2, 5)
    assert late_videos.videos is early_videos.videos and len(early_videos) == 2
    with pytest.raises(InputError, match="max_gap must be >= 1"):
        early_videos.with_max_gap(0)
