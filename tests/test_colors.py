"""seggpt.colors (palettes, random colours, normalisation) and the colour decoding of seggpt.predictor."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from seggpt.colors import (IMAGENET_MEAN, IMAGENET_STD, davis_palette, distinct_colors, normalize_image, palette,
                           random_colors)
from seggpt.predictor import decode_colors, denormalize


def _hf_processor():
    try:  # transformers >= 5 without torchvision: the PIL backend is the same palette code
        from transformers.models.seggpt.image_processing_pil_seggpt import SegGptImageProcessorPil

        return SegGptImageProcessorPil()
    except ImportError:
        from transformers import SegGptImageProcessor

        return SegGptImageProcessor()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 26, 27, 63, 64, 65, 100, 124, 125, 200, 255])
def test_palette_equals_transformers(n):
    expected = np.array(_hf_processor().get_palette(n), dtype=np.int64).reshape(-1, 3)
    got = palette(n)
    assert got.dtype == np.uint8 and got.shape == (n + 1, 3)
    np.testing.assert_array_equal(got.astype(np.int64), expected)


def test_palette_hand_values():
    # n = 3: base 2, margin 128 -> white, then the blue and green channels step down.
    np.testing.assert_array_equal(palette(3), [[0, 0, 0], [255, 255, 255], [255, 255, 127], [255, 127, 255]])
    assert len({tuple(c) for c in palette(255)}) == 256


def test_davis_palette_known_entries():
    p = davis_palette()
    assert p.shape == (256, 3) and p.dtype == np.uint8
    np.testing.assert_array_equal(p[:9], [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128],
                                          [128, 0, 128], [0, 128, 128], [128, 128, 128], [64, 0, 0]])
    np.testing.assert_array_equal(p[255], [224, 224, 192])
    assert len({tuple(c) for c in p}) == 256


def test_decode_round_trip_with_noise():
    rng = np.random.default_rng(0)
    n = 20
    colors = palette(n)
    labels = rng.integers(0, n + 1, size=(3, 17, 23))
    rgb = colors[labels].astype(np.float32)  # (B,H,W,3)
    noise = rng.uniform(-15, 15, size=rgb.shape).astype(np.float32)  # palette(20) is 85 apart
    x = torch.from_numpy(rgb + noise).permute(0, 3, 1, 2)
    got, dist = decode_colors(x, torch.from_numpy(colors))
    assert got.dtype == torch.long and got.shape == (3, 17, 23)
    assert dist.dtype == torch.float32 and dist.shape == (3, 17, 23)
    np.testing.assert_array_equal(got.numpy(), labels)
    np.testing.assert_allclose(dist.numpy(), np.linalg.norm(noise, axis=-1), rtol=1e-5, atol=1e-4)


def test_decode_hand_computed_distance_and_tie():
    colors = torch.tensor([[0, 0, 0], [255, 255, 255], [255, 0, 0]])
    x = torch.tensor([[3.0, 4.0, 0.0], [200.0, 10.0, 10.0], [250.0, 250.0, 240.0]]).T.reshape(1, 3, 1, 3)
    labels, dist = decode_colors(x, colors)
    assert labels.tolist() == [[[0, 2, 1]]]
    np.testing.assert_allclose(
        dist[0, 0].numpy(), [5.0, math.sqrt(55**2 + 10**2 + 10**2), math.sqrt(25 + 25 + 225)], rtol=1e-6
    )
    # Exactly half-way between black and white: the lower label wins, like argmin.
    mid = torch.full((1, 3, 1, 1), 127.5)
    assert decode_colors(mid, colors[:2])[0].item() == 0


def test_decode_matches_brute_force_over_many_chunks():
    g = torch.Generator().manual_seed(1)
    colors = torch.randint(0, 256, (70, 3), generator=g)  # several chunks of 16 colours
    x = torch.rand(2, 3, 9, 11, generator=g) * 255
    labels, dist = decode_colors(x, colors)
    d = ((x.permute(0, 2, 3, 1)[..., None, :] - colors.float()) ** 2).sum(-1)  # (B,H,W,L)
    np.testing.assert_array_equal(labels.numpy(), d.argmin(-1).numpy())
    np.testing.assert_allclose(dist.numpy(), d.min(-1).values.sqrt().numpy(), rtol=1e-5, atol=1e-3)


def test_decode_rejects_bad_shapes():
    with pytest.raises(ValueError):
        decode_colors(torch.zeros(3, 4, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError):
        decode_colors(torch.zeros(1, 3, 4, 4), torch.zeros(2, 4))


def test_denormalize_inverts_imagenet_normalisation():
    g = torch.Generator().manual_seed(2)
    img = torch.randint(0, 256, (2, 3, 5, 6), generator=g).float()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    normed = (img / 255 - mean) / std
    torch.testing.assert_close(denormalize(normed), img, atol=1e-3, rtol=0)
    assert denormalize(normed.half()).dtype == torch.float32
    big = torch.full((1, 3, 1, 1), 10.0)
    assert denormalize(big).max().item() == 255.0 and denormalize(-big).min().item() == 0.0


def test_numpy_normalisation_is_the_one_denormalize_inverts():
    rgb = np.random.default_rng(3).integers(0, 256, size=(5, 6, 3)).astype(np.uint8)
    normed = normalize_image(rgb)
    assert normed.shape == (3, 5, 6) and normed.dtype == np.float32
    back = denormalize(torch.from_numpy(normed)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(back, rgb, atol=1e-3)


def _pairwise_min(c: np.ndarray) -> float:
    c = c.astype(np.float64)
    d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1))
    d[np.diag_indices(len(c))] = np.inf
    return float(d.min())


def test_random_colors_properties():
    c = random_colors(8, np.random.default_rng(3), min_distance=90)
    assert c.shape == (9, 3) and c.dtype == np.uint8
    np.testing.assert_array_equal(c[0], [0, 0, 0])
    assert _pairwise_min(c) >= 90  # includes the distance to black
    np.testing.assert_array_equal(c, random_colors(8, np.random.default_rng(3), min_distance=90))
    assert not np.array_equal(c, random_colors(8, np.random.default_rng(4), min_distance=90))


def test_random_colors_relaxes_instead_of_looping():
    # 255 colours 200 apart cannot exist in the RGB cube: it must relax and still end distinct.
    c = random_colors(255, np.random.default_rng(5), min_distance=200)
    assert len({tuple(x) for x in c}) == 256
    assert _pairwise_min(c) >= 1


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_random_colors_decode_to_their_labels(n, seed):
    colors = random_colors(n, np.random.default_rng(seed))
    labels = np.arange(n + 1).reshape(1, -1)
    rgb = torch.from_numpy(colors[labels]).permute(2, 0, 1)[None].float()
    got, dist = decode_colors(rgb, torch.from_numpy(colors))
    np.testing.assert_array_equal(got[0].numpy(), labels)
    assert float(dist.max()) == 0.0


def test_distinct_colors_are_far_apart_and_start_like_the_palette():

    for n in range(0, 8):
        c = distinct_colors(n).astype(float)
        assert c.shape == (n + 1, 3) and (c[0] == 0).all()
        assert all(np.linalg.norm(c[i] - c[j]) >= 255 for i, j in itertools.combinations(range(n + 1), 2))
    assert np.array_equal(distinct_colors(1), palette(1))  # one object: white, as the official demo
    assert np.array_equal(distinct_colors(9), palette(9))  # beyond the cube's corners: the palette
    with pytest.raises(ValueError):
        distinct_colors(-1)
