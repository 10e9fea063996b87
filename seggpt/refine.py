"""Edge-aware upsampling of per-label score maps: a (fast) guided filter guided by the full-size frame.

SegGPT paints its answer at the model's size (64x64 for our small model, 448x448 for ViT-L); resized
bilinearly to an 854x480 frame, object boundaries are as blurry as one model pixel is wide. The
guided filter (He, Sun and Tang, "Guided Image Filtering", ECCV 2010 / TPAMI 2013) fits, in every
(2r+1)^2 window, the score as a linear function of the frame's intensity, q = a I + b, so where the
frame has an edge the refined scores change across it, and where the frame is flat they are
smoothed. The fast variant (He and Sun, "Fast Guided Filter", 2015) fits a and b on a frame
subsampled by s and only evaluates q = a I + b at full size; scores that came from a 64x64 map lose
nothing by that.

It is linear in the scores, so the decision between labels is the same whatever their scale
(colour distances or probabilities). The engine calls, just before its argmax::

    labels = refine_argmax(scores, frames, radius=cfg.refine_radius, eps=cfg.refine_eps, values=ids)

instead of ``SegGPTPredictor.resize_argmax(scores, size, values=ids)``. Everything is torch, so it
runs where the scores are (CPU or GPU); box filters are cumulative sums (cost independent of r).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["box_filter", "guided_filter", "frames_to_guide", "refine_scores", "refine_argmax", "refine_margins",
           "auto_params"]

Frames = Union[np.ndarray, torch.Tensor, Sequence[np.ndarray]]


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean of x (N, C, H, W) over the (2r+1)x(2r+1) window around each pixel, the window clipped at
    the borders (the mean of the pixels inside the image, as He's reference code divides by N)."""
    if r <= 0:
        return x
    h, w = x.shape[-2:]

    def along(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
        c = torch.cumsum(t, dim=dim)
        c = torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c], dim=dim)  # c[i] = sum of t[:i]
        idx = torch.arange(size, device=t.device)
        hi = (idx + r + 1).clamp(max=size)
        lo = (idx - r).clamp(min=0)
        return c.index_select(dim, hi) - c.index_select(dim, lo)

    dtype = x.dtype
    x = x.double() if x.dtype == torch.float64 else x.float()
    s = along(along(x, -2, h), -1, w)
    ones = torch.ones(1, 1, h, w, device=x.device, dtype=x.dtype)
    n = along(along(ones, -2, h), -1, w)
    return (s / n).to(dtype)


def _grey_coefficients(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float):
    """a, b (box-filtered) for a one-channel guide (N,1,h,w) and sources (N,C,h,w)."""
    c = src.shape[1]
    means = box_filter(torch.cat([guide, guide * guide, src, guide * src], dim=1), r)  # one pass for all
    mean_i, mean_ii, mean_p, mean_ip = means[:, :1], means[:, 1:2], means[:, 2:2 + c], means[:, 2 + c:]
    a = (mean_ip - mean_i * mean_p) / (mean_ii - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    ab = box_filter(torch.cat([a, b], dim=1), r)
    return ab[:, :c], ab[:, c:]


def _colour_coefficients(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float):
    """a (N,C,3,h,w), b (N,C,h,w) for a colour guide (N,3,h,w): a = (Sigma + eps I)^-1 cov(I, p) per pixel."""
    n, c, h, w = src.shape
    mean_i = box_filter(guide, r)  # (N,3,h,w)
    mean_p = box_filter(src, r)  # (N,C,h,w)
    prod = (guide[:, None] * src[:, :, None]).reshape(n, c * 3, h, w)
    cov_ip = box_filter(prod, r).reshape(n, c, 3, h, w) - mean_i[:, None] * mean_p[:, :, None]
    idx = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    second = torch.stack([guide[:, i] * guide[:, j] for i, j in idx], dim=1)
    var = box_filter(second, r) - torch.stack([mean_i[:, i] * mean_i[:, j] for i, j in idx], dim=1)
    rr, rg, rb, gg, gb, bb = (var[:, k] for k in range(6))
    rr, gg, bb = rr + eps, gg + eps, bb + eps
    # inverse of the symmetric 3x3 [[rr rg rb] [rg gg gb] [rb gb bb]] by its adjugate
    i_rr, i_rg, i_rb = gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb
    i_gg, i_gb, i_bb = rr * bb - rb * rb, rb * rg - rr * gb, rr * gg - rg * rg
    det = rr * i_rr + rg * i_rg + rb * i_rb
    inv = torch.stack([torch.stack([i_rr, i_rg, i_rb], 1), torch.stack([i_rg, i_gg, i_gb], 1),
                       torch.stack([i_rb, i_gb, i_bb], 1)], 1) / det[:, None, None]  # (N,3,3,h,w)
    a = torch.einsum("nijhw,ncjhw->ncihw", inv, cov_ip)
    b = mean_p - (a * mean_i[:, None]).sum(2)
    return box_filter(a.reshape(n, c * 3, h, w), r).reshape(n, c, 3, h, w), box_filter(b, r)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float, subsample: int = 1) -> torch.Tensor:
    """The guided filter of `src` (N, C, h, w) by `guide` (N, 1 or 3, H, W) (values ~0..1), at the guide's size.

    `src` of another size is resized bilinearly (antialiased when shrinking). radius is in guide
    pixels; subsample s > 1 is the fast guided filter (a, b fitted at 1/s size with radius r/s,
    then upsampled bilinearly); s = 1 is the exact filter. Returns (N, C, H, W) float32.
    """
    if guide.ndim != 4 or guide.shape[1] not in (1, 3):
        raise ValueError(f"guide must be (N, 1 or 3, H, W), got {tuple(guide.shape)}")
    if src.ndim != 4 or src.shape[0] != guide.shape[0]:
        raise ValueError(f"src must be (N, C, h, w) with the guide's N, got {tuple(src.shape)}")
    if radius < 0 or eps <= 0 or subsample < 1:
        raise ValueError(f"need radius >= 0, eps > 0, subsample >= 1; got {radius}, {eps}, {subsample}")
    guide = guide.float()
    big = tuple(guide.shape[-2:])
    small = (max(1, round(big[0] / subsample)), max(1, round(big[1] / subsample)))
    low_guide = guide if small == big else F.interpolate(guide, size=small, mode="area")
    low_src = src.float()
    if tuple(low_src.shape[-2:]) != small:
        shrink = low_src.shape[-2] > small[0] or low_src.shape[-1] > small[1]
        low_src = F.interpolate(low_src, size=small, mode="bilinear", align_corners=False, antialias=shrink)
    r = max(1, round(radius / subsample)) if radius else 0
    if guide.shape[1] == 1:
        a, b = _grey_coefficients(low_guide, low_src, r, eps)
        if small != big:  # one resize for both
            ab = F.interpolate(torch.cat([a, b], dim=1), size=big, mode="bilinear", align_corners=False)
            a, b = ab[:, :a.shape[1]], ab[:, a.shape[1]:]
        return a * guide + b
    a, b = _colour_coefficients(low_guide, low_src, r, eps)
    n, c = a.shape[:2]
    if small != big:
        a = F.interpolate(a.reshape(n, c * 3, *small), size=big, mode="bilinear", align_corners=False)
        a = a.reshape(n, c, 3, *big)
        b = F.interpolate(b, size=big, mode="bilinear", align_corners=False)
    return (a * guide[:, None]).sum(2) + b


def auto_params(frame_size: Sequence[int], score_size: Sequence[int], model_pixels: float = 1.0):
    """(radius, subsample) for frames of `frame_size` (H, W) and scores of `score_size` (h, w).

    radius = `model_pixels` score pixels in frame pixels (the width of the blur the resize leaves),
    subsample = what keeps the fitted a, b at about twice the scores' resolution (so 64x64 scores on
    an 854x480 frame: radius 13 * model_pixels, subsample 4; 448x448 scores on the same: 2, 1).
    """
    per_pixel = max(frame_size[0] / score_size[0], frame_size[1] / score_size[1])
    radius = max(1, int(round(model_pixels * per_pixel)))
    subsample = max(1, int(round(min(frame_size) / (2 * min(score_size)))))
    return radius, subsample


def frames_to_guide(frames: Frames, guide: str = "grey", device: Optional[torch.device] = None) -> torch.Tensor:
    """RGB frames ((B,H,W,3) uint8 array or tensor, or a list of (H,W,3)) -> (B, 1 or 3, H, W) float in 0..1."""
    x = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(
        np.ascontiguousarray(np.stack([np.asarray(f) for f in frames])))
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be (B, H, W, 3) RGB, got {tuple(x.shape)}")
    x = x.to(device)
    if guide == "grey":  # (B,H,W,3) @ (3,): one pass over the frame
        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device) / 255.0
        return torch.matmul(x.float(), weights)[:, None]
    if guide == "colour":
        return x.permute(0, 3, 1, 2).float().div_(255.0)
    raise ValueError(f"guide must be 'grey' or 'colour', got {guide!r}")


def refine_scores(scores: torch.Tensor, frames: Frames, radius: int = 8, eps: float = 1e-2, subsample: int = 4,
                  guide: str = "grey") -> torch.Tensor:
    """Per-label scores (B, L, h, w) (higher = more likely) -> (B, L, H, W) at the frames' size, edge-aware."""
    return guided_filter(frames_to_guide(frames, guide, scores.device), scores, radius, eps, subsample)


def _refined_differences(scores: torch.Tensor, g: torch.Tensor, radius: int, eps: float, subsample: int
                         ) -> torch.Tensor:
    """(B, L-1, H, W): each label's refined score minus label 0's, the one map `refine_argmax` decides from
    and `refine_margins` measures (the filter is linear: one map fewer than refining every score)."""
    if g.shape[0] != scores.shape[0]:
        raise ValueError(f"{g.shape[0]} frames for {scores.shape[0]} score maps")
    return guided_filter(g, scores[:, 1:].float() - scores[:, :1].float(), radius, eps, subsample)


def refine_argmax(scores: torch.Tensor, frames: Frames, radius: int = 8, eps: float = 1e-2, subsample: int = 4,
                  guide: str = "grey", values: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The best label (B, H, W) of the refined scores; with `values` (L,), ``values[best]`` (object ids).

    The filter is linear, so it runs on the L-1 differences to label 0 (one map fewer; with one
    object, a single map whose sign decides).
    """
    b, n = scores.shape[:2]
    g = frames_to_guide(frames, guide, scores.device)
    if n == 1:
        if g.shape[0] != b:
            raise ValueError(f"{g.shape[0]} frames for {b} score maps")
        idx = torch.zeros((b,) + tuple(g.shape[-2:]), dtype=torch.long, device=scores.device)
    else:
        best_val, best = _refined_differences(scores, g, radius, eps, subsample).max(dim=1)
        idx = torch.where(best_val > 0, best + 1, torch.zeros_like(best))
    return idx if values is None else values[idx]


def refine_margins(scores: torch.Tensor, frames: Frames, radius: int = 8, eps: float = 1e-2, subsample: int = 4,
                   guide: str = "grey") -> torch.Tensor:
    """(B, L-1, H, W) in [-1, 1], per label k >= 1: its refined score minus the best other label's, normalised
    like `SegGPTPredictor.confidence` ((a - b) / (|a| + |b|)).

    Why not the margins of `refine_scores`: labels are decided by `refine_argmax` from the refined
    differences to label 0, and the difference of two refined scores is not bitwise that refined
    difference, so near an edge the two disagree on the sign. Here the sign comes from the very
    differences `refine_argmax` decides from (the same call on the same inputs gives the same bits):
    positive exactly where it picks k (ties aside); only the scale |a| + |b| needs label 0's refined score.
    """
    b, n = scores.shape[:2]
    g = frames_to_guide(frames, guide, scores.device)
    if n == 1:
        return torch.zeros((b, 0) + tuple(g.shape[-2:]), device=scores.device)
    diff = _refined_differences(scores, g, radius, eps, subsample)  # (B, L-1, H, W)
    base = guided_filter(g, scores[:, :1].float(), radius, eps, subsample)  # label 0's refined score
    # the best other label of k: label 0 (difference 0) or the best other object
    others = torch.cat([torch.zeros_like(diff[:, :1]), diff], dim=1)  # (B, L, H, W), label 0 first
    top2 = others.topk(2, dim=1)
    out = torch.empty_like(diff)
    for k in range(n - 1):
        other = torch.where(top2.indices[:, 0] == k + 1, top2.values[:, 1], top2.values[:, 0])
        scale = (base[:, 0] + diff[:, k]).abs() + (base[:, 0] + other).abs()
        out[:, k] = ((diff[:, k] - other) / scale.clamp_min(1e-6)).clamp(-1, 1)
    return out
