"""Test-time adaptation (OSVOS-style): fine-tune a copy of SegGPT on the annotated frame(s) of one video.

Before a video is propagated, the model learns what this video's objects look like: pairs are made
from the annotated frames alone (``seggpt.pairs.DreamPairs``: prompt = the annotated frame with its
mask painted in the colours inference uses, query = a "dreamed" view of it, the objects moved over
the in-painted background) and a deep copy of the model is trained on them with the model's own
in-context colouring loss (``SegGPT.forward``: smooth L1 on the hidden query half).

* The model passed in is never modified (its parameters stay bit-identical); the copy is returned.
* Adapting an adapted copy continues from it, so a correction on a later frame adds to what
  was learnt before (the optimizer starts afresh; the weights do not).
* Deterministic for a seed (numpy for the pairs, torch's RNG forked for LoRA's init).
* Which parameters learn (`params`): "all"; "decoder" (the final norm and the decoder);
  "last:N" (the last N blocks + the decoder); "lora:R" (rank-R LoRA on every block's attention
  qkv and proj, merged back into the weights at the end so inference costs what it did); joined
  with "+", e.g. "lora:8+decoder" (what suits ViT-L on a GPU).

The engine calls::

    adapted = adapt(model, [frame], [labels], steps=cfg.adapt_steps, lr=cfg.adapt_lr, params=cfg.adapt_params,
                    object_ids=tracker.active, objects=cfg.objects, colors=cfg.colors, seed=0, progress=bar)

with `labels` the (H, W) object ids of the annotated frame; object i of `object_ids` is painted with
colour i+1 of `distinct_colors` (joint mode, as ``vos.engine.segmenter`` paints prompts) or each object alone
white on black (separate mode).
"""
from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .colors import distinct_colors, palette
from .device import autocast
from .errors import Cancelled
from .model import SegGPT
from .pairs import DreamAugment, DreamPairs, build_sample

__all__ = ["adapt", "AdaptProgress", "LoRALinear", "add_lora", "merge_lora", "select_parameters", "parse_params",
           "AdaptSampler", "object_colours", "lr_factor"]


# ----------------------------------------------------------------------------- LoRA


class LoRALinear(nn.Module):
    """y = base(x) + scale * B(A(x)): a low-rank update of a frozen Linear (Hu et al. 2021).

    B starts at zero, so the wrapped layer first computes exactly what `base` did. `merged()` folds
    the update into a plain Linear of the base's shape (W + scale * B A), so a merged model runs at
    the original speed and saves as the original format.
    """

    #: `SegGPT.reduced_precision_copy` casts the LoRA factors with the matrix weights
    matmul_weights = True

    def __init__(self, base: nn.Linear, rank: int, alpha: Optional[float] = None):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        self.rank = int(rank)
        self.scale = float(alpha if alpha is not None else rank) / rank
        w = base.weight
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=w.device, dtype=w.dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=w.device, dtype=w.dtype))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as peft / the LoRA paper's code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        out = copy.deepcopy(self.base)
        out.weight.add_((self.lora_b @ self.lora_a) * self.scale)
        return out


def add_lora(model: SegGPT, rank: int = 4, alpha: Optional[float] = None, blocks: Optional[Sequence[int]] = None,
             targets: Sequence[str] = ("qkv", "proj")) -> List[nn.Parameter]:
    """Wrap the attention `targets` of `blocks` (default: all) in LoRALinear, in place; returns the new
    parameters (the only ones that should learn, besides any the caller adds)."""
    new: List[nn.Parameter] = []
    for i, blk in enumerate(model.blocks):
        if blocks is not None and i not in blocks:
            continue
        for name in targets:
            layer = getattr(blk.attn, name)
            if isinstance(layer, LoRALinear):
                raise ValueError(f"block {i} attn.{name} already has LoRA (merge it first)")
            wrapped = LoRALinear(layer, rank, alpha)
            setattr(blk.attn, name, wrapped)
            new += [wrapped.lora_a, wrapped.lora_b]
    return new


def merge_lora(model: SegGPT) -> SegGPT:
    """Fold every LoRALinear back into a plain Linear, in place (the state dict is the original's again)."""
    for blk in model.blocks:
        for name, child in list(blk.attn.named_children()):
            if isinstance(child, LoRALinear):
                setattr(blk.attn, name, child.merged())
    return model


# ----------------------------------------------------------------------------- which parameters


def parse_params(spec: str) -> List[Tuple[str, int]]:
    """"all" | "decoder" | "last:N" | "lora[:R]", joined with "+" -> [(kind, number)]."""
    parts = []
    for token in str(spec).split("+"):
        name, _, arg = token.strip().partition(":")
        if name in ("all", "decoder") and not arg:
            parts.append((name, 0))
        elif name == "last" and arg.isdigit() and int(arg) >= 1:
            parts.append((name, int(arg)))
        elif name == "lora" and (not arg or (arg.isdigit() and int(arg) >= 1)):
            parts.append((name, int(arg) if arg else 4))
        else:
            raise ValueError(f"adapt params {spec!r}: each part must be all, decoder, last:N or lora[:R] "
                             f"(N, R >= 1), joined with '+'; got {token!r}")
    return parts


def select_parameters(model: SegGPT, spec: str) -> List[nn.Parameter]:
    """Set requires_grad on `model` for `spec` (see `parse_params`; LoRA is added here, in place) and
    return the parameters that learn, in a fixed order."""
    parts = parse_params(spec)
    model.requires_grad_(False)
    chosen: Dict[int, nn.Parameter] = {}

    def take(params):
        for p in params:
            chosen.setdefault(id(p), p)

    decoder = [model.norm, model.decoder_embed, model.decoder_pred]
    for kind, n in parts:
        if kind == "all":
            take(model.parameters())
        elif kind == "decoder":
            take(p for m in decoder for p in m.parameters())
        elif kind == "last":
            take(p for blk in model.blocks[-n:] for p in blk.parameters())
            take(p for m in decoder for p in m.parameters())
        elif kind == "lora":
            take(add_lora(model, rank=n))
    params = list(chosen.values())
    for p in params:
        p.requires_grad_(True)
    return params


# ----------------------------------------------------------------------------- pairs -> canvases


def object_colours(num_objects: int, colors: str = "distinct") -> np.ndarray:
    """The colours the engine paints joint-mode prompts with: index 0 black, object i -> row i+1."""
    if colors == "distinct":
        return distinct_colors(num_objects)
    if colors == "palette":
        return palette(num_objects)
    raise ValueError(f"colors must be 'distinct' or 'palette', got {colors!r}")


class AdaptSampler:
    """Batches of canvases for adaptation: `DreamPairs` painted as inference paints its prompts.

    Label maps are re-indexed first (object_ids[i] -> i+1), so any ids (up to 254 objects) work.
    objects="joint": object i in colour i+1 of `object_colours(N, colors)`; "separate": each sample
    shows one random object white on black, the others black (the engine's separate mode).
    """

    def __init__(self, frames: Sequence[np.ndarray], label_maps: Sequence[np.ndarray], size: Tuple[int, int],
                 object_ids: Optional[Sequence[int]] = None, objects: str = "joint", colors: str = "distinct",
                 augment: Optional[DreamAugment] = None, prompt_dream_prob: float = 0.25,
                 object_weight_max: float = 1.0):
        label_maps = [np.asarray(m) for m in label_maps]
        if object_ids is None:
            object_ids = sorted({int(v) for m in label_maps for v in np.unique(m) if v > 0})
        object_ids = [int(o) for o in object_ids]
        if not object_ids:
            raise ValueError("adaptation needs at least one object in the label maps")
        if len(object_ids) > 254:
            raise ValueError(f"adaptation paints at most 254 objects, got {len(object_ids)}")
        if objects not in ("joint", "separate"):
            raise ValueError(f"objects must be 'joint' or 'separate', got {objects!r}")
        top = max(max(object_ids), max(int(m.max()) for m in label_maps)) + 1
        lut = np.zeros(top, np.uint8)
        lut[object_ids] = np.arange(1, len(object_ids) + 1)
        indexed = [lut[m.astype(np.int64)] for m in label_maps]
        self.pairs = DreamPairs(frames, indexed, size, augment, prompt_dream_prob)
        self.object_ids = object_ids
        self.num_objects = len(object_ids)
        self.objects = objects
        self.object_weight_max = float(object_weight_max)
        self.colours = object_colours(self.num_objects, colors) if objects == "joint" else palette(1)
        self.mapping = dict(enumerate(self.colours))  # colour index -> colour (separate: 0 black, 1 white)

    def sample(self, rng: np.random.Generator):
        pair = self.pairs.draw(rng)
        if self.objects == "separate":
            obj = int(rng.integers(1, self.num_objects + 1))
            one = [(lab == obj).astype(np.uint8) for lab in (pair.prompt_labels, pair.query_labels)]
            pair = type(pair)(pair.prompt, one[0], pair.query, one[1])
        return build_sample([pair], self.mapping, self.object_weight_max)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        items = [self.sample(rng) for _ in range(batch_size)]
        return tuple(torch.from_numpy(np.stack([it[k] for it in items])) for k in range(3))


# ----------------------------------------------------------------------------- the loop


@dataclass
class AdaptProgress:
    """What the `progress` callback receives after every step. `model` is the copy being trained
    (LoRA not merged yet): read it, or deep-copy it to keep a snapshot; do not modify it."""

    step: int
    steps: int
    loss: float
    seconds: float
    model: SegGPT = field(repr=False)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float, time_fraction: float = 0.0) -> float:
    """Linear warm-up to 1, then cosine decay to `min_ratio` at `total` optimizer steps (the one schedule of
    training and adaptation; `min_ratio` 1 is a constant 1 after the warm-up).

    `time_fraction` (elapsed / allowed wall time) moves the decay on when the machine is slower
    than `total` assumed, so that a run stopped by its time limit still ends annealed.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_fraction))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def adapt(
    model: SegGPT,
    frames: Sequence[np.ndarray],
    label_maps: Sequence[np.ndarray],
    steps: int = 100,
    lr: float = 1e-4,
    params: str = "all",
    *,
    object_ids: Optional[Sequence[int]] = None,
    objects: str = "joint",
    colors: str = "distinct",
    embedding_type: str = "instance",
    batch_size: int = 8,
    seed: int = 0,
    weight_decay: float = 0.0,
    schedule: str = "constant",
    warmup: int = 5,
    grad_clip: float = 1.0,
    augment: Optional[DreamAugment] = None,
    prompt_dream_prob: float = 0.25,
    object_weight_max: float = 1.0,
    progress: Optional[Callable[[AdaptProgress], None]] = None,
    amp_dtype: Optional[torch.dtype] = None,
    cancel: Optional[threading.Event] = None,
) -> SegGPT:
    """A copy of `model` fine-tuned on pairs made from `frames` (H, W, 3) uint8 and their `label_maps`
    (H, W) object ids; `model` itself is left exactly as it was (see the module docstring).

    steps 0 returns a plain copy. lr is AdamW's (constant after `warmup` steps, or "cosine" to 10%).
    The copy comes back in eval mode with every parameter's requires_grad as in `model`; its
    `adapt_history` lists each adaptation it went through (settings, seconds, losses).
    `cancel` (a threading.Event, set from another thread: an app's cancel button) is read before
    every step; once set, `seggpt.errors.Cancelled` is raised: `model` is untouched and no copy is kept.
    """
    if steps < 0:
        raise ValueError(f"adapt steps must be >= 0, got {steps}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    parse_params(params)  # a bad spec fails before any work
    start = time.perf_counter()
    sampler = AdaptSampler(frames, label_maps, model.config.image_size, object_ids, objects, colors, augment,
                           prompt_dream_prob, object_weight_max) if steps else None
    grad_flags = [p.requires_grad for p in model.parameters()]
    work = copy.deepcopy(model)
    for key in ("_infer", "_pos_cache"):  # a compiled _infer is bound to the ORIGINAL model's weights
        work.__dict__.pop(key, None)
    for blk in work.blocks:
        blk.attn.__dict__.pop("_rel_cache", None)
    history = list(getattr(model, "adapt_history", []))
    losses: List[float] = []
    if steps:
        device = next(work.parameters()).device
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5E66]))
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            trainable = select_parameters(work, params)
            opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
            work.train()
            for step in range(steps):
                if cancel is not None and cancel.is_set():
                    raise Cancelled(f"adaptation cancelled after {step} of {steps} steps")
                for group in opt.param_groups:
                    group["lr"] = lr * lr_factor(step, warmup, steps, 0.1 if schedule == "cosine" else 1.0)
                imgs, tgts, valid = (t.to(device, non_blocking=True) for t in sampler.batch(rng, batch_size))
                with autocast(device, amp_dtype):
                    loss, _ = work(imgs, tgts, embedding_type=embedding_type, valid=valid)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
                opt.step()
                losses.append(float(loss.detach()))
                if progress is not None:
                    progress(AdaptProgress(step + 1, steps, losses[-1], time.perf_counter() - start, work))
        merge_lora(work)
    work.eval()
    for p, flag in zip(work.parameters(), grad_flags):
        p.requires_grad_(flag)
    seconds = time.perf_counter() - start
    history.append({"steps": steps, "lr": lr, "params": params, "batch_size": batch_size, "seed": seed,
                    "objects": objects, "frames": len(frames), "seconds": round(seconds, 3),
                    "seconds_per_step": round(seconds / steps, 4) if steps else None,
                    "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None})
    work.adapt_history = history
    return work
