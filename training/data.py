"""Training data for in-context colouring: pair sources, augmentation, random colour mapping.

SegGPT learns segmentation as painting: the prompt half of a canvas shows an image and its mask,
the query half an image whose mask is hidden, and the model paints the hidden mask. The colours of
each sample are drawn at random (objects to random, well separated colours, background black), so
the only way to know which colour an object takes is to read it from the prompt: that is what makes
the model an in-context learner instead of a classifier of a fixed label set.

Sources of (prompt image, prompt labels, query image, query labels) pairs:

* :class:`SyntheticPairs` -- the project's one synthetic generator (``vos.synthetic``), infinite;
* :class:`VideoPairs` -- two frames of one video (DAVIS / YouTube-VOS layouts) at a random gap;
* :class:`FolderPairs` -- image + mask folders whose images share classes (few-shot segmentation).

:class:`PairStream` mixes them and yields ready batches. Every batch is drawn from a generator
seeded by ``(seed, rank, micro-step)``, so the stream is the same whatever the number of loader
workers, and a resumed run sees exactly the batches an uninterrupted run would have seen.

Pre-processing matches ``seggpt.predictor``: images bicubic (PIL), masks nearest, ImageNet
normalisation; the whole frame is resized to the model's (square) size, so aspect ratios are
distorted exactly as at inference.
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from PIL import Image

from seggpt.colors import normalize_image, palette, random_colors
from seggpt.io import read_label_png
from vos.datasets import DAVIS, DatasetError, YouTubeVOS, pngs_by_stem
from vos.synthetic import make_pair

__all__ = [
    "TrainDataError",
    "RawPair",
    "SyntheticPairs",
    "VideoPairs",
    "FolderPairs",
    "Augment",
    "colour_mapping",
    "build_sample",
    "CurriculumStream",
    "object_weights",
    "PairStream",
    "batch_rng",
]

VOID = 255


class TrainDataError(ValueError):
    """A training data source cannot be used; the message names the path and the problem."""


@dataclass
class RawPair:
    """Prompt and query at their source size: images (H,W,3) uint8, labels (H,W) uint8 (255 = void)."""

    prompt: np.ndarray
    prompt_labels: np.ndarray
    query: np.ndarray
    query_labels: np.ndarray


def batch_rng(seed: int, rank: int, micro_step: int) -> np.random.Generator:
    """The generator of one micro-batch: a pure function of (seed, rank, step), for exact resume."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(rank), int(micro_step)]))


# ----------------------------------------------------------------------------- sources


class SyntheticPairs:
    """Two frames of one random synthetic scene (``vos.synthetic.make_pair``), on the fly.

    Rendered at `size` (the benchmark clips' 240x432 aspect by default, smaller for speed) so that
    the crop and resize to the model size look like inference on a synthetic clip.
    """

    def __init__(self, size: Tuple[int, int] = (80, 144), objects: Tuple[int, int] = (1, 3), max_gap: int = 16):
        if objects[0] < 1 or objects[1] < objects[0]:
            raise TrainDataError(f"synthetic objects range must be 1 <= low <= high, got {objects}")
        if max_gap < 1:
            raise TrainDataError(f"synthetic max_gap must be >= 1, got {max_gap}")
        self.size = (int(size[0]), int(size[1]))
        self.objects = (int(objects[0]), int(objects[1]))
        self.max_gap = int(max_gap)

    def draw(self, rng: np.random.Generator) -> RawPair:
        count = int(rng.integers(self.objects[0], self.objects[1] + 1))
        p, pl, q, ql = make_pair(rng, self.size, num_objects=count, max_gap=self.max_gap)
        return RawPair(p, pl, q, ql)


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as err:
        raise TrainDataError(f"{path}: cannot read image ({err})") from None


class VideoPairs:
    """Prompt = one annotated frame of a video, query = another annotated frame at a random gap.

    `roots` are DAVIS roots (``kind="davis"``, split/year/resolution as in ``vos.datasets.DAVIS``)
    or YouTube-VOS roots (``kind="ytvos"``: every annotation PNG of a training video holds all its
    objects). Only frames with a mask take part; a prompt whose mask is empty is redrawn.
    """

    def __init__(self, roots: Sequence[str], kind: str = "davis", split: str = "train", year: int = 2016,
                 resolution: str = "480p", max_gap: int = 10):
        if kind not in ("davis", "ytvos"):
            raise TrainDataError(f"video source kind must be 'davis' or 'ytvos', got {kind!r}")
        if max_gap < 1:
            raise TrainDataError(f"video max_gap must be >= 1, got {max_gap}")
        self.max_gap = int(max_gap)
        #: per video: (frame paths, mask paths) of the frames that have a mask, in order
        self.videos: List[Tuple[List[Path], List[Path]]] = []
        self.binary: List[bool] = []
        for root in roots:
            try:
                if kind == "davis":
                    reader = DAVIS(root, year=year, split=split, resolution=resolution)
                else:
                    reader = YouTubeVOS(root, split=split)
                for seq in reader:
                    masks = seq.ground_truth or pngs_by_stem(reader.masks_root / seq.name)
                    frames = [(p, masks[n]) for p, n in zip(seq.frame_paths, seq.frame_names) if n in masks]
                    if len(frames) >= 2:
                        self.videos.append(([f for f, _ in frames], [m for _, m in frames]))
                        self.binary.append(seq.binary_masks)
            except DatasetError as err:
                raise TrainDataError(str(err)) from None
        if not self.videos:
            raise TrainDataError(f"{', '.join(map(str, roots))}: no video with two annotated frames")

    def with_max_gap(self, max_gap: int) -> "VideoPairs":
        """The same videos (the scanned index is shared, not re-read) at another largest frame gap."""
        if max_gap < 1:
            raise TrainDataError(f"video max_gap must be >= 1, got {max_gap}")
        other = copy.copy(self)
        other.max_gap = int(max_gap)
        return other

    def __len__(self) -> int:
        return len(self.videos)

    def draw(self, rng: np.random.Generator) -> RawPair:
        for _ in range(20):
            v = int(rng.integers(len(self.videos)))
            frames, masks = self.videos[v]
            i = int(rng.integers(len(frames)))
            prompt_labels = read_label_png(masks[i], binary=self.binary[v])
            if not np.any((prompt_labels > 0) & (prompt_labels != VOID)):
                continue  # the object is out of view: nothing to show in the prompt
            gap = int(rng.integers(1, self.max_gap + 1)) * (1 if rng.random() < 0.5 else -1)
            j = int(np.clip(i + gap, 0, len(frames) - 1))
            if j == i:
                j = i + 1 if i + 1 < len(frames) else i - 1
            return RawPair(_read_rgb(frames[i]), prompt_labels, _read_rgb(frames[j]),
                           read_label_png(masks[j], binary=self.binary[v]))
        raise TrainDataError(f"{self.videos[0][1][0].parent.parent}: could not find a frame with a visible object")


class FolderPairs:
    """Few-shot segmentation pairs from ``<root>/images/*.jpg|png`` and ``<root>/masks/<stem>.png``.

    Label ids are classes shared by all images of a root (0 background, 255 void), so the prompt
    and the query are any two images that have at least one class in common.
    """

    def __init__(self, roots: Sequence[str]):
        self.items: List[Tuple[Path, Path]] = []
        self.classes: List[frozenset] = []
        for root in roots:
            base = Path(root)
            images, masks = base / "images", base / "masks"
            if not images.is_dir() or not masks.is_dir():
                raise TrainDataError(f"{base}: an image+mask folder needs images/ and masks/ sub-folders")
            found = 0
            for img in sorted(images.iterdir()):
                if img.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                    continue
                mask = masks / f"{img.stem}.png"
                if not mask.is_file():
                    raise TrainDataError(f"{mask}: mask of {img.name} not found")
                ids = np.unique(read_label_png(mask))
                self.items.append((img, mask))
                self.classes.append(frozenset(int(i) for i in ids if i not in (0, VOID)))
                found += 1
            if found < 2:
                raise TrainDataError(f"{images}: at least two images are needed")

    def draw(self, rng: np.random.Generator) -> RawPair:
        for _ in range(50):
            i, j = (int(k) for k in rng.choice(len(self.items), size=2, replace=False))
            if self.classes[i] & self.classes[j]:
                (pi, pm), (qi, qm) = self.items[i], self.items[j]
                return RawPair(_read_rgb(pi), read_label_png(pm), _read_rgb(qi), read_label_png(qm))
        raise TrainDataError(f"{self.items[0][0].parent}: no two images share a class")


# ----------------------------------------------------------------------------- augmentation


@dataclass
class Augment:
    """Random resized crop, colour jitter and flips, applied to a pair.

    The crop is a fraction of the frame (area in `crop_scale`, aspect change in `crop_ratio`)
    resized to the model size; prompt and query get the same crop with `same_crop_prob` (video
    tracking: objects stay near where they were) and independent crops otherwise (the model must
    match appearance, not position). Flips are shared, so the pair stays one consistent scene.
    """

    size: Tuple[int, int]
    crop_scale: Tuple[float, float] = (0.5, 1.0)
    crop_ratio: Tuple[float, float] = (0.75, 1.333)
    same_crop_prob: float = 0.5
    hflip_prob: float = 0.5
    vflip_prob: float = 0.0
    jitter: float = 0.3

    def _crop_box(self, rng: np.random.Generator, h: int, w: int) -> Tuple[int, int, int, int]:
        scale = rng.uniform(*self.crop_scale)
        ratio = math.exp(rng.uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])))
        fw, fh = min(1.0, math.sqrt(scale * ratio)), min(1.0, math.sqrt(scale / ratio))
        cw, ch = max(1, int(round(fw * w))), max(1, int(round(fh * h)))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return x0, y0, x0 + cw, y0 + ch

    def _resize(self, image: np.ndarray, labels: np.ndarray, box, size) -> Tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = box
        h, w = size
        img = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1])).resize((w, h), Image.BICUBIC)
        lab = Image.fromarray(np.ascontiguousarray(labels[y0:y1, x0:x1])).resize((w, h), Image.NEAREST)
        return np.asarray(img), np.asarray(lab)

    def _jitter(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        if self.jitter <= 0:
            return image
        x = image.astype(np.float32)
        a = self.jitter
        brightness, contrast, saturation = (rng.uniform(1 - a, 1 + a) for _ in range(3))
        x = x * brightness
        mean = x.mean()
        x = (x - mean) * contrast + mean
        grey = x.mean(axis=2, keepdims=True)
        x = (x - grey) * saturation + grey
        return np.clip(x + 0.5, 0, 255).astype(np.uint8)

    def __call__(self, pair: RawPair, rng: np.random.Generator, size: Optional[Tuple[int, int]] = None) -> RawPair:
        size = size or self.size
        h, w = pair.prompt.shape[:2]
        box_p = self._crop_box(rng, h, w)
        qh, qw = pair.query.shape[:2]
        box_q = box_p if (rng.random() < self.same_crop_prob and (qh, qw) == (h, w)) else self._crop_box(rng, qh, qw)
        p, pl = self._resize(pair.prompt, pair.prompt_labels, box_p, size)
        q, ql = self._resize(pair.query, pair.query_labels, box_q, size)
        p, q = self._jitter(rng, p), self._jitter(rng, q)
        if rng.random() < self.hflip_prob:
            p, pl, q, ql = p[:, ::-1], pl[:, ::-1], q[:, ::-1], ql[:, ::-1]
        if rng.random() < self.vflip_prob:
            p, pl, q, ql = p[::-1], pl[::-1], q[::-1], ql[::-1]
        return RawPair(*(np.ascontiguousarray(a) for a in (p, pl, q, ql)))


# ----------------------------------------------------------------------------- colours and canvases


def colour_mapping(prompt_labels: Sequence[np.ndarray], rng: np.random.Generator, min_distance: float = 80.0,
                   palette_prob: float = 0.0) -> Dict[int, np.ndarray]:
    """One random colour per object id seen in the prompts: {id: (3,) uint8}; 0 is black.

    Fresh colours per sample force in-context reading. With `palette_prob` the fixed inference
    palette is used instead (the colours ``SegGPTPredictor`` paints prompts with), so the model
    also sees exactly the colours of inference.
    """
    ids = sorted({int(i) for lab in prompt_labels for i in np.unique(lab) if i not in (0, VOID)})
    if palette_prob > 0 and rng.random() < palette_prob:
        colours = palette(len(ids))
    else:
        colours = random_colors(len(ids), rng, min_distance)
    mapping = {0: colours[0]}
    mapping.update({obj: colours[k + 1] for k, obj in enumerate(ids)})
    return mapping


def _paint(labels: np.ndarray, mapping: Dict[int, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Labels -> (RGB (H,W,3) uint8, valid (H,W) bool). Ids the prompt never showed are background
    (the model cannot know their colour); void pixels are left out of the loss."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    for obj, colour in mapping.items():
        lut[obj] = colour
    return lut[labels], labels != VOID


def object_weights(labels: np.ndarray, mapping: Dict[int, np.ndarray], max_weight: float) -> np.ndarray:
    """Per-pixel loss weights (H,W) float32 that give small objects a say: 1 on the background
    (unpainted ids included), and on each painted object the weight that makes the object as heavy
    as the background divided by the number of objects, between 1 and `max_weight`.

    The official loss is a plain mean; on masks that are mostly black it is smallest for "all
    black", which a model trained from scratch predicts for a long time, and it barely notices
    a missed small object. `max_weight` 1 is the plain mean.
    """
    weights = np.ones(labels.shape, dtype=np.float32)
    if max_weight <= 1.0:
        return weights
    painted = [obj for obj in mapping if obj != 0]
    areas = {obj: int(np.count_nonzero(labels == obj)) for obj in painted}
    present = [obj for obj, area in areas.items() if area > 0]
    if not present:
        return weights
    background = int(np.count_nonzero(~np.isin(labels, present + [VOID])))
    for obj in present:
        scale = background / (len(present) * areas[obj])
        weights[labels == obj] = float(np.clip(scale, 1.0, max_weight))
    return weights


def build_sample(pairs: Sequence[RawPair], mapping: Dict[int, np.ndarray],
                 object_weight_max: float = 1.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stitch pairs side by side (mix-context; one pair is the usual case) into canvases.

    Returns (image canvas (3,2H,W), mask canvas (3,2H,W), valid (1,2H,W)) with the prompt on top;
    `valid` is the per-pixel loss weight: 0 on void pixels, else 1 (or `object_weights` with
    `object_weight_max` > 1).
    """
    prompt = np.concatenate([p.prompt for p in pairs], axis=1)
    query = np.concatenate([p.query for p in pairs], axis=1)
    labels = np.concatenate([np.concatenate([p.prompt_labels for p in pairs], axis=1),
                             np.concatenate([p.query_labels for p in pairs], axis=1)], axis=0)
    rgb, valid = _paint(labels, mapping)
    image = normalize_image(np.concatenate([prompt, query], axis=0))
    target = normalize_image(rgb)
    weight = valid.astype(np.float32)
    if object_weight_max > 1.0:
        half = prompt.shape[0]  # each half is balanced on its own (the query half is what is scored)
        weight[:half] *= object_weights(labels[:half], mapping, object_weight_max)
        weight[half:] *= object_weights(labels[half:], mapping, object_weight_max)
    return image, target, weight[None]


# ----------------------------------------------------------------------------- the stream


class PairStream(torch.utils.data.IterableDataset):
    """Infinite stream of micro-batches starting at micro-step `start`.

    Each is {"imgs", "tgts", "valid"} (N,.,2H,W) and "mask" (N, L) bool: the hidden, scored patches.

    Sources are drawn with probabilities proportional to `weights`. With several loader workers,
    worker w produces micro-steps w, w+W, ... and the DataLoader interleaves them in order.
    """

    def __init__(self, sources: Sequence, weights: Sequence[float], augment: Augment, batch_size: int,
                 seed: int = 0, rank: int = 0, start: int = 0, min_color_distance: float = 80.0,
                 palette_prob: float = 0.0, mix_context_prob: float = 0.0, mix_context_n: int = 2,
                 patch_size: int = 8, random_mask_prob: float = 0.0, random_mask_ratio: float = 0.75,
                 object_weight_max: float = 1.0):
        super().__init__()
        if not sources or len(sources) != len(weights):
            raise TrainDataError("give at least one data source, with one weight per source")
        w = np.asarray(weights, dtype=np.float64)
        if np.any(w < 0) or w.sum() <= 0:
            raise TrainDataError(f"source weights must be >= 0 and not all zero, got {list(weights)}")
        if mix_context_n < 1 or augment.size[1] % mix_context_n:
            raise TrainDataError(f"mix_context_n must be >= 1 and divide the image width {augment.size[1]}")
        self.sources = list(sources)
        self.probs = w / w.sum()
        self.augment = augment
        self.batch_size = int(batch_size)
        self.seed, self.rank, self.start = int(seed), int(rank), int(start)
        self.min_color_distance = float(min_color_distance)
        self.palette_prob = float(palette_prob)
        self.mix_context_prob = float(mix_context_prob)
        self.mix_context_n = int(mix_context_n)
        h, w = augment.size
        if h % patch_size or w % patch_size:
            raise TrainDataError(f"image size {augment.size} is not a multiple of the patch size {patch_size}")
        self.grid = (2 * h // patch_size, w // patch_size)
        if not 0.0 < random_mask_ratio < 1.0:
            raise TrainDataError(f"random_mask_ratio must be in (0, 1), got {random_mask_ratio}")
        self.random_mask_prob = float(random_mask_prob)
        self.random_mask_ratio = float(random_mask_ratio)
        self.object_weight_max = float(object_weight_max)

    def token_mask(self, rng: np.random.Generator) -> np.ndarray:
        """Which mask-canvas patches are hidden and scored: (2Hp*Wp,) bool.

        Usually the query half (what inference asks for). With `random_mask_prob` a random
        `random_mask_ratio` of all patches instead, as the official training mixes in: in-painting
        a mask from its visible neighbours is an easy task that teaches the model to read colours
        from the mask canvas, which the query-half task alone learns slowly from scratch.
        """
        rows, cols = self.grid
        mask = np.zeros(rows * cols, dtype=bool)
        if self.random_mask_prob > 0 and rng.random() < self.random_mask_prob:
            hidden = max(1, int(round(self.random_mask_ratio * rows * cols)))
            mask[rng.choice(rows * cols, size=hidden, replace=False)] = True
        else:
            mask[(rows // 2) * cols:] = True
        return mask

    def sample(self, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One canvas triple; mix-context stitches several pairs (each 1/n wide) with one mapping."""
        n = self.mix_context_n if (self.mix_context_n > 1 and rng.random() < self.mix_context_prob) else 1
        h, w = self.augment.size
        pairs = []
        for _ in range(n):
            source = self.sources[int(rng.choice(len(self.sources), p=self.probs))]
            pairs.append(self.augment(source.draw(rng), rng, (h, w // n)))
        mapping = colour_mapping([p.prompt_labels for p in pairs], rng, self.min_color_distance, self.palette_prob)
        return build_sample(pairs, mapping, self.object_weight_max)

    def batch(self, micro_step: int) -> Dict[str, torch.Tensor]:
        rng = batch_rng(self.seed, self.rank, micro_step)
        items = [self.sample(rng) + (self.token_mask(rng),) for _ in range(self.batch_size)]
        return {key: torch.from_numpy(np.stack([it[k] for it in items]))
                for k, key in enumerate(("imgs", "tgts", "valid", "mask"))}

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        step = self.start + worker
        while True:
            yield self.batch(step)
            step += workers


class CurriculumStream(torch.utils.data.IterableDataset):
    """A stream whose pairs change at given micro-steps: stage k's `PairStream` makes micro-steps
    from its first up to the next stage's. The data of a step still depends on the step alone
    (resume-exact), and one loader serves the whole run (no worker restarts mid-run)."""

    def __init__(self, stages: Sequence[Tuple[int, PairStream]], start: int = 0):
        super().__init__()
        firsts = [first for first, _ in stages]
        if not stages or firsts[0] != 0 or firsts != sorted(set(firsts)):
            raise TrainDataError("curriculum stages must start at micro-step 0 and increase")
        self.stages = list(stages)
        self.start = int(start)

    def batch(self, micro_step: int) -> Dict[str, torch.Tensor]:
        stream = next(stream for first, stream in reversed(self.stages) if micro_step >= first)
        return stream.batch(micro_step)

    __iter__ = PairStream.__iter__


def worker_init(_: int) -> None:
    """Loader workers use one thread each: the 2 cores belong to the training step."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
