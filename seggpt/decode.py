"""decode: per-label scores at the model's size -> labels, confidence and margins at a frame's size.

The one post-processing path. The model answers at its own size (64x64 per image for the small model,
448x448 for ViT-L) with a score per label (`SegGPTPredictor.scores`: minus the colour distance, or how
white a pixel is); the caller wants labels at its frame's size. What lies between is here, once, for
the video engine's tracker (its zoom's paste-back too) and the image CLI (`SegGPTPredictor.decode`):

* labels: the best score at frame size, brought there one of three ways (`Decoding`): "smooth"
  resizes the scores bilinearly (computed only where the resize can change the answer,
  `resize_argmax`); "nearest" decides at model size and upsamples, as the official code does;
  refinement fits the scores to the frame's edges (`seggpt.refine`);
* confidence: the normalised gap between the best and the second-best score (`confidence`), at model
  size for the tracker's memory, and resized the same way at frame size;
* margins: per label its score minus the best other one's, normalised the same way, from the very
  frame-size scores the labels are decided from: positive exactly where that label wins.

Labels are made at once; confidence and margins at frame size on first access (`Decoded`): most
callers never look, and each costs a resize. They are made from this frame's own maps in host memory,
taken when its batch is decoded: a lazy map holding a slice of the batch's tensor would keep the whole
batch alive (on a GPU, device memory) for as long as any one frame's result is kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .refine import auto_params, refine_argmax, refine_margins, refine_scores

Frames = Optional[Sequence[np.ndarray]]


def confidence(scores: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Best label (B, H, W) and a confidence in [0, 1] from per-label scores (B, L, H, W).

    Confidence is the normalised gap between the best and the second-best score: 0 where two labels
    tie (an edge, or a colour half-way between two objects), 1 where one label is unambiguous.
    Returns (confidence, best label index).
    """
    if scores.shape[1] == 1:
        return torch.ones_like(scores[:, 0]), torch.zeros_like(scores[:, 0], dtype=torch.long)
    top2 = scores.topk(2, dim=1)
    gap = top2.values[:, 0] - top2.values[:, 1]
    scale = top2.values[:, 0].abs() + top2.values[:, 1].abs()
    return (gap / scale.clamp_min(1e-6)).clamp(0, 1), top2.indices[:, 0]


def score_margins(s: torch.Tensor) -> torch.Tensor:
    """(n, H, W) in [-1, 1] from per-label scores (1+n, H, W), label 0 the background: each object's score
    minus the best other label's, normalised like `confidence`."""
    top2 = s.topk(2, dim=0)
    rows = []
    for j in range(s.shape[0] - 1):
        other = torch.where(top2.indices[0] == j + 1, top2.values[1], top2.values[0])
        rows.append((s[j + 1] - other) / (s[j + 1].abs() + other.abs()).clamp_min(1e-6))
    return torch.stack(rows).clamp(-1, 1)


def resize_scores(maps: torch.Tensor, out_size: Optional[Tuple[int, int]]) -> torch.Tensor:
    """Per-label score or distance maps (B, L, h, w) to out_size, bilinearly (the one policy for them)."""
    if out_size is None or tuple(out_size) == tuple(maps.shape[-2:]):
        return maps
    return F.interpolate(maps, size=tuple(out_size), mode="bilinear", align_corners=False)


def _bilinear_taps(size_in: int, size_out: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (i0, i1) and weight of i1 for each output index, as F.interpolate bilinear
    (align_corners=False) computes them: src = (dst + 0.5) * in/out - 0.5, clamped at 0."""
    src = ((torch.arange(size_out, device=device, dtype=torch.float32) + 0.5) * (size_in / size_out) - 0.5).clamp_min(0.0)
    i0 = src.floor().long().clamp_max(size_in - 1)
    i1 = (i0 + 1).clamp_max(size_in - 1)
    return i0, i1, src - i0


def resize_argmax(scores: torch.Tensor, out_size: Tuple[int, int], values: Optional[torch.Tensor] = None
                  ) -> torch.Tensor:
    """The best label (B, H, W) of `scores` (B, L, h, w) resized bilinearly to out_size, computed cheaply.

    With `values` (L,), returns ``values[best label]`` in their dtype (object ids straight away,
    without another pass over the frame-size map).

    Equal to ``resize_scores(scores, out_size).max(dim=1).indices`` but interpolates only where it
    can change the answer: a bilinear value is a convex combination of four neighbouring source
    values, so where those four share their best label, that label stays best. Everywhere else
    (object edges, a few percent of a frame) the four are interpolated exactly as F.interpolate
    does (align_corners=False). Frame-size score maps are never built: at 854x480 this is ~3x
    cheaper than resizing every map, which matters next to a small model's forward. Where more
    than 15% of the cells are mixed (ragged labels), it resizes every map instead.
    """
    b, n, h, w = scores.shape
    H, W = int(out_size[0]), int(out_size[1])
    best = scores.max(dim=1).indices  # (B, h, w)
    small = best if values is None else values[best]
    if (H, W) == (h, w) or n == 1:
        return small if (H, W) == (h, w) else small[:, :1, :1].expand(b, H, W).clone()
    # a source cell = the 2x2 block starting at (i, j), clamped at the last row/column
    down = torch.cat([best[:, 1:], best[:, -1:]], dim=1)
    right = torch.cat([best[:, :, 1:], best[:, :, -1:]], dim=2)
    diag = torch.cat([down[:, :, 1:], down[:, :, -1:]], dim=2)
    mixed_cell = (best != down) | (best != right) | (best != diag)
    if mixed_cell.float().mean().item() > 0.15:  # ragged labels (an untrained model): resizing all maps is cheaper
        idx = resize_scores(scores, (H, W)).max(dim=1).indices
        return idx if values is None else values[idx]
    y0, y1, ly = _bilinear_taps(h, H, scores.device)
    x0, x1, lx = _bilinear_taps(w, W, scores.device)
    labels = small.index_select(1, y0).index_select(2, x0)  # (B, H, W): right wherever the cell is uniform
    flat = mixed_cell.index_select(1, y0).index_select(2, x0).reshape(-1).nonzero().squeeze(1)
    if flat.numel():
        xi, yi, bi = flat % W, (flat // W) % H, flat // (H * W)
        rows0, rows1 = bi * (h * w) + y0[yi] * w, bi * (h * w) + y1[yi] * w
        cols0, cols1 = x0[xi], x1[xi]
        table = scores.permute(0, 2, 3, 1).reshape(-1, n)  # (B*h*w, L)
        wx, wy = lx[xi, None], ly[yi, None]
        top = table[rows0 + cols0] * (1 - wx) + table[rows0 + cols1] * wx
        bottom = table[rows1 + cols0] * (1 - wx) + table[rows1 + cols1] * wx
        idx = (top * (1 - wy) + bottom * wy).max(dim=1).indices
        labels.view(-1)[flat] = idx if values is None else values[idx]
    return labels


def host(t: torch.Tensor) -> torch.Tensor:
    """`t` in host memory holding nothing but itself: a CPU tensor that is the whole of its storage as it is
    (a batch of one frame: no copy), anything else copied (a slice of a batch, a GPU tensor)."""
    if t.device.type == "cpu" and t.untyped_storage().nbytes() == t.numel() * t.element_size():
        return t
    return t.to("cpu", copy=True)


@dataclass(frozen=True)
class Decoding:
    """How scores reach a frame's size: resized ("smooth": bilinear; "nearest": decided at model size, then
    upsampled), or, with `refine_pixels` set and the frames given, refined against the frame (`seggpt.refine`:
    the guided filter's radius in model pixels, converted to frame pixels for each frame size, its
    regularisation `refine_eps` and its guide, the frame in "grey" or "colour")."""

    resize: str = "smooth"
    refine_pixels: Optional[float] = None
    refine_eps: float = 1e-2
    refine_guide: str = "grey"

    def _refined(self, fn: Callable[..., torch.Tensor], scores: torch.Tensor, frames: Sequence[np.ndarray],
                 size: Sequence[int], **kw) -> torch.Tensor:
        """`fn` (refine_scores, refine_argmax or refine_margins) with this refinement's parameters at `size`."""
        radius, subsample = auto_params(size, scores.shape[-2:], self.refine_pixels)
        return fn(scores, frames, radius, self.refine_eps, subsample, self.refine_guide, **kw)

    def resized(self, maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """Maps (B, C, h, w) at `size` in float32, by the resize alone (confidence, unrefined scores)."""
        if self.resize == "nearest":
            return F.interpolate(maps.float(), size=tuple(size), mode="nearest-exact")
        return resize_scores(maps.float(), size)

    def scores_at(self, scores: torch.Tensor, size: Sequence[int], frames: Sequence[np.ndarray]) -> torch.Tensor:
        """Scores (B, L, h, w) at `size`: refined against `frames` (B of them) when set to, else resized."""
        if self.refine_pixels is None:
            return self.resized(scores, size)
        return self._refined(refine_scores, scores, list(frames), size)

    def labels_at(self, scores: torch.Tensor, best: torch.Tensor, values: torch.Tensor, size: Sequence[int],
                  frames: Frames = None) -> torch.Tensor:
        """``values[best label]`` (B, H, W) at `size` of scores (B, L, h, w) whose best labels at model size are
        `best` (B, h, w) (`confidence`)."""
        if self.refine_pixels is not None and frames is not None:  # edge-aware: the scores follow the frame's edges
            # frame by frame: `margins_at` repeats exactly this call, so margins and labels share every bit
            return torch.cat([self._refined(refine_argmax, scores[i:i + 1], frames[i:i + 1], size, values=values)
                              for i in range(scores.shape[0])])
        if self.resize == "nearest":  # the official way: decide at model size, then upsample
            return values[F.interpolate(best[:, None].float(), size=size, mode="nearest-exact")[:, 0].long()]
        return resize_argmax(scores, size, values=values)  # bilinear, only where the resize can change the label

    def margins_at(self, scores: torch.Tensor, size: Sequence[int], frame: Optional[np.ndarray] = None
                   ) -> torch.Tensor:
        """One frame's margins (L-1, H, W) at `size` from its scores (1, L, h, w), from the frame-size scores
        `labels_at` decides its labels from."""
        if self.refine_pixels is not None and frame is not None:
            return self._refined(refine_margins, scores, [frame], size)[0]
        return score_margins(self.resized(scores, size)[0])

    def finish(self, scores: torch.Tensor, conf: torch.Tensor, best: torch.Tensor, values: torch.Tensor,
               size: Sequence[int], frames: Frames = None) -> List["Decoded"]:
        """The frames of a batch at `size` from their scores (B, L, h, w), model-size confidence and best label
        (`confidence`) and the label ids of the scores' columns `values` (L,): labels now, the rest on demand."""
        labels = self.labels_at(scores, best, values, size, frames).cpu().numpy()
        ids = values.tolist()
        return [Decoded(labels[i], host(conf[i]), host(scores[i]), ids, self, None if frames is None else frames[i],
                        scores.device) for i in range(len(labels))]


@dataclass
class Decoded:
    """One frame decoded at its size: its labels, and its confidence and margins made on first access from
    host copies of this frame's maps (module docstring).

    `confidence_map`: the frame-size map, or a host tensor at model size that `decoding` resizes. `scores`:
    the frame's per-label scores (host), at model size or, with no `decoding`, at frame size already (the
    zoom's paste-back); None where there are none (an annotated frame: its margins follow its labels).
    `values`: the label ids of the scores' columns. `device`: where the batch was decoded, so that what is
    made later has the bits it would have had then.
    """

    labels: np.ndarray
    confidence_map: Union[np.ndarray, torch.Tensor] = field(repr=False)
    scores: Optional[torch.Tensor] = field(default=None, repr=False)
    values: Sequence[int] = (0,)
    decoding: Optional[Decoding] = None
    frame: Optional[np.ndarray] = field(default=None, repr=False)
    device: Union[str, torch.device] = "cpu"

    @property
    def confidence(self) -> np.ndarray:
        """(H, W) float32 in [0, 1] (`confidence`)."""
        if isinstance(self.confidence_map, torch.Tensor):
            small = self.confidence_map.to(self.device)[None, None]
            self.confidence_map = self.decoding.resized(small, self.labels.shape)[0, 0].cpu().numpy()
        return self.confidence_map

    def margins(self, ids: Sequence[int]) -> Optional[np.ndarray]:
        """(len(ids), H, W) float32 margins of the labels `ids` (-1 for an id the scores do not have); None
        without scores."""
        if self.scores is None:
            return None
        ids = list(ids)
        out = np.full((len(ids),) + self.labels.shape, -1.0, np.float32)
        if len(self.values) < 2:
            return out
        s = self.scores.to(self.device)
        size = self.labels.shape
        m = score_margins(s.float()) if self.decoding is None else self.decoding.margins_at(s[None], size, self.frame)
        for j, v in enumerate(self.values[1:]):
            if v in ids:
                out[ids.index(v)] = m[j].cpu().numpy()
        return out


__all__ = ["confidence", "score_margins", "resize_scores", "resize_argmax", "host", "Decoding", "Decoded"]
