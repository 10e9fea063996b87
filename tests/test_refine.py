"""Edge-aware upsampling (seggpt.refine): the guided filter against a slow reference, edges, shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seggpt.decode import resize_argmax
from seggpt.refine import auto_params, box_filter, guided_filter, refine_argmax, refine_scores


def _naive_box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window clipped to the image, one pixel at a time."""
    h, w = x.shape
    out = np.empty_like(x, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            out[i, j] = x[max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].mean()
    return out


def _naive_guided(i: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s Algorithm 1, written out with the slow box filter."""
    mean_i, mean_p = _naive_box(i, r), _naive_box(p, r)
    corr_i, corr_ip = _naive_box(i * i, r), _naive_box(i * p, r)
    a = (corr_ip - mean_i * mean_p) / (corr_i - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    return _naive_box(a, r) * i + _naive_box(b, r)


def _naive_guided_colour(img: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """The colour-guide version (He et al. eq. 14), per pixel with numpy's inverse."""
    h, w, _ = img.shape
    mean_i = np.stack([_naive_box(img[..., c], r) for c in range(3)], -1)
    mean_p = _naive_box(p, r)
    cov_ip = np.stack([_naive_box(img[..., c] * p, r) for c in range(3)], -1) - mean_i * mean_p[..., None]
    sigma = np.empty((h, w, 3, 3))
    for c in range(3):
        for d in range(3):
            sigma[..., c, d] = _naive_box(img[..., c] * img[..., d], r) - mean_i[..., c] * mean_i[..., d]
    a = np.linalg.solve(sigma + eps * np.eye(3), cov_ip[..., None])[..., 0]
    b = mean_p - (a * mean_i).sum(-1)
    mean_a = np.stack([_naive_box(a[..., c], r) for c in range(3)], -1)
    return (mean_a * img).sum(-1) + _naive_box(b, r)


@pytest.mark.parametrize("r", [0, 1, 3, 7])
def test_box_filter_is_the_clipped_window_mean(r):
    x = np.random.default_rng(r).random((13, 17))
    got = box_filter(torch.from_numpy(x)[None, None], r)[0, 0].numpy()
    want = x if r == 0 else _naive_box(x, r)
    assert np.abs(got - want).max() < 1e-5


@pytest.mark.parametrize("r,eps", [(1, 1e-3), (2, 1e-2), (4, 1e-1)])
def test_guided_filter_matches_the_reference(r, eps):
    rng = np.random.default_rng(1)
    i = rng.random((19, 23))
    p = rng.random((19, 23))
    got = guided_filter(torch.from_numpy(i).float()[None, None], torch.from_numpy(p).float()[None, None], r, eps)
    assert got.shape == (1, 1, 19, 23)
    assert np.abs(got[0, 0].numpy() - _naive_guided(i, p, r, eps)).max() < 1e-4


def test_colour_guided_filter_matches_the_reference():
    rng = np.random.default_rng(2)
    img = rng.random((15, 18, 3))
    p = rng.random((15, 18))
    g = torch.from_numpy(img).float().permute(2, 0, 1)[None]
    src = torch.from_numpy(np.stack([p, 1 - p])).float()[None]  # two channels at once
    got = guided_filter(g, src, 2, 1e-2)
    assert got.shape == (1, 2, 15, 18)
    assert np.abs(got[0, 0].numpy() - _naive_guided_colour(img, p, 2, 1e-2)).max() < 1e-3
    assert np.abs(got[0, 1].numpy() - _naive_guided_colour(img, 1 - p, 2, 1e-2)).max() < 1e-3


def _step_frame(h=96, w=160, edge=90):
    """A frame with a vertical intensity step at column `edge`, and low-res scores whose edge is blurred
    and misplaced (as a 16x16 prediction of it would be)."""
    frame = np.full((h, w, 3), 40, np.uint8)
    frame[:, edge:] = 200
    x = (np.arange(16) + 0.5) * w / 16
    obj = 1 / (1 + np.exp(-(x - (edge - 12)) / 10.0))  # soft, centred 12 px left of the true edge
    scores = torch.from_numpy(np.stack([np.tile(1 - obj, (16, 1)), np.tile(obj, (16, 1))])).float()[None]
    return frame, scores


@pytest.mark.parametrize("guide", ["grey", "colour"])
@pytest.mark.parametrize("subsample", [1, 2])
def test_refinement_snaps_the_boundary_to_the_image_edge(guide, subsample):
    frame, scores = _step_frame()
    gt = np.zeros(frame.shape[:2], np.int64)
    gt[:, 90:] = 1
    plain = resize_argmax(scores, frame.shape[:2])[0].numpy()
    refined = refine_argmax(scores, frame[None], radius=32, eps=1e-3, subsample=subsample, guide=guide)[0].numpy()
    # the window must reach past the misplacement (radius ~2-3x it): 16 px moves a 12 px error only halfway
    err_plain, err_refined = (plain != gt).mean(), (refined != gt).mean()
    assert err_plain > 0.05  # the plain resize puts the edge ~12 px off
    assert err_refined < 0.2 * err_plain


def test_flat_frame_refinement_is_a_smoothing_and_keeps_clear_labels():
    frame = np.full((64, 96, 3), 128, np.uint8)
    scores = torch.zeros(1, 3, 8, 8)
    scores[0, 1, :, :4] = 5.0
    scores[0, 2, :, 4:] = 5.0
    labels = refine_argmax(scores, frame[None], radius=4, eps=1e-2, subsample=1,
                           values=torch.tensor([0, 7, 9], dtype=torch.int32))
    assert labels.dtype == torch.int32 and labels.shape == (1, 64, 96)
    assert (labels[0, :, :40] == 7).all() and (labels[0, :, 56:] == 9).all()


@pytest.mark.parametrize("score_size,frame_size", [((64, 64), (240, 427)), ((448, 448), (480, 854))])
def test_shapes_for_small_and_vit_large_scores(score_size, frame_size):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (2,) + frame_size + (3,), dtype=np.uint8)
    scores = torch.randn(2, 3, *score_size)
    radius, sub = auto_params(frame_size, score_size)
    assert radius >= 1 and sub >= 1
    refined = refine_scores(scores, frames, radius, 1e-2, sub)
    assert refined.shape == (2, 3) + frame_size
    labels = refine_argmax(scores, list(frames), radius, 1e-2, sub, values=torch.tensor([0, 4, 5]))
    assert labels.shape == (2,) + frame_size
    assert set(labels.unique().tolist()) <= {0, 4, 5}
    # argmax on L-1 differences equals argmax of the refined scores (the filter is linear)
    best = refined.max(dim=1).indices
    assert (torch.tensor([0, 4, 5])[best] == labels).float().mean() > 0.999


def test_auto_params():
    assert auto_params((480, 854), (64, 64)) == (13, 4)
    assert auto_params((480, 854), (448, 448)) == (2, 1)


def test_bad_inputs():
    with pytest.raises(ValueError):
        guided_filter(torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 8, 8), 1, 1e-2)
    with pytest.raises(ValueError):
        guided_filter(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), 1, 0.0)
    with pytest.raises(ValueError):
        refine_argmax(torch.zeros(2, 2, 8, 8), np.zeros((1, 8, 8, 3), np.uint8))
