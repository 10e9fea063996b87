"""In-context pairs at the model level: augmentations, colours and canvases, shared by every learner.

SegGPT learns (and is adapted, and tuned) by painting: the prompt half of a canvas shows an image and
its mask, the query half an image whose mask is hidden, and the model's loss (`SegGPT.forward`) is
the colouring error on that hidden half. Training, test-time adaptation (`seggpt.adapt`) and
in-context tuning all make their canvases here, so a pair is augmented, painted and normalised in
exactly one way:

* :class:`RawPair` -- prompt and query images with their label maps (255 = void);
* :class:`Augment` -- training's random resized crop, colour jitter and flips of a pair;
* :class:`DreamAugment` -- new views of ONE annotated frame for test-time adaptation ("lucid data
  dreaming", Khoreva et al. 2017): a random affine of the whole frame, or the objects cut out and
  moved over the frame's in-painted background (``cv2.inpaint``), with colour jitter and blur;
* :func:`colour_mapping` (random colours per sample), :func:`build_sample` (pairs -> normalised
  image and mask canvases + loss weights), :func:`object_weights`.

Pre-processing matches ``seggpt.predictor``: images bicubic (PIL), masks nearest, ImageNet
normalisation; the whole frame is resized to the model's (square) size, so aspect ratios are
distorted exactly as at inference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from .colors import normalize_image, palette, random_colors

__all__ = [
    "VOID",
    "RawPair",
    "Augment",
    "DreamAugment",
    "DreamSource",
    "DreamPairs",
    "colour_jitter",
    "resize_pair",
    "colour_mapping",
    "object_weights",
    "build_sample",
]

VOID = 255


@dataclass
class RawPair:
    """Prompt and query at their source size: images (H,W,3) uint8, labels (H,W) uint8 (255 = void)."""

    prompt: np.ndarray
    prompt_labels: np.ndarray
    query: np.ndarray
    query_labels: np.ndarray


def resize_pair(image: np.ndarray, labels: np.ndarray, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """An image (bicubic, PIL: antialiased when shrinking, as the predictor) and its labels (nearest, PIL's
    pixel-centre rule) to `size` (H, W)."""
    h, w = size
    img = Image.fromarray(np.ascontiguousarray(image)).resize((w, h), Image.BICUBIC)
    lab = Image.fromarray(np.ascontiguousarray(labels)).resize((w, h), Image.NEAREST)
    return np.asarray(img), np.asarray(lab)


def colour_jitter(rng: np.random.Generator, image: np.ndarray, amount: float) -> np.ndarray:
    """Random brightness, contrast and saturation, each a factor in [1 - amount, 1 + amount]."""
    if amount <= 0:
        return image
    x = image.astype(np.float32)
    brightness, contrast, saturation = (rng.uniform(1 - amount, 1 + amount) for _ in range(3))
    x = x * brightness
    mean = x.mean()
    x = (x - mean) * contrast + mean
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * saturation + grey
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- augmentation


@dataclass
class Augment:
    """Random resized crop, colour jitter and flips, applied to a pair.

    The crop is a fraction of the frame (area in `crop_scale`, aspect change in `crop_ratio`)
    resized to the model size; prompt and query get the same crop with `same_crop_prob` (video
    tracking: objects stay near where they were) and independent crops otherwise (the model must
    match appearance, not position). Flips are shared, so the pair stays one consistent scene.

    With `object_crop_prob` the crop is instead a box around the prompt's objects (their bounding box
    grown 1.3-3x, the frame's aspect ratio jittered by `crop_ratio`), so that objects cover a real share
    of the pixels: at 64x64 a whole-frame crop leaves small objects a few pixels, and a loss that is
    mostly background rewards painting everything black.
    """

    size: Tuple[int, int]
    crop_scale: Tuple[float, float] = (0.5, 1.0)
    crop_ratio: Tuple[float, float] = (0.75, 1.333)
    same_crop_prob: float = 0.5
    hflip_prob: float = 0.5
    vflip_prob: float = 0.0
    jitter: float = 0.3
    object_crop_prob: float = 0.0

    def _object_box(self, rng: np.random.Generator, labels: np.ndarray) -> Optional[Tuple[int, int, int, int]]:
        """A box around the objects of `labels` (None if there are none): see the class docstring."""
        ys, xs = np.nonzero((labels > 0) & (labels != VOID))
        if not len(ys):
            return None
        h, w = labels.shape
        bx0, bx1, by0, by1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        grow = rng.uniform(1.3, 3.0)
        ratio = math.exp(rng.uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]))) * w / h
        cw = max((bx1 - bx0) * grow, (by1 - by0) * grow * ratio, 8.0)
        ch = cw / ratio
        cw, ch = int(round(min(cw, w))), int(round(min(ch, h)))
        cx = (bx0 + bx1) / 2 + rng.uniform(-0.5, 0.5) * max(0.0, cw - (bx1 - bx0))
        cy = (by0 + by1) / 2 + rng.uniform(-0.5, 0.5) * max(0.0, ch - (by1 - by0))
        x0 = int(np.clip(round(cx - cw / 2), 0, w - cw))
        y0 = int(np.clip(round(cy - ch / 2), 0, h - ch))
        return x0, y0, x0 + cw, y0 + ch

    def _crop_box(self, rng: np.random.Generator, h: int, w: int) -> Tuple[int, int, int, int]:
        scale = rng.uniform(*self.crop_scale)
        ratio = math.exp(rng.uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])))
        fw, fh = min(1.0, math.sqrt(scale * ratio)), min(1.0, math.sqrt(scale / ratio))
        cw, ch = max(1, int(round(fw * w))), max(1, int(round(fh * h)))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return x0, y0, x0 + cw, y0 + ch

    def _resize(self, image: np.ndarray, labels: np.ndarray, box, size) -> Tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = box
        return resize_pair(image[y0:y1, x0:x1], labels[y0:y1, x0:x1], size)

    def __call__(self, pair: RawPair, rng: np.random.Generator, size: Optional[Tuple[int, int]] = None) -> RawPair:
        size = size or self.size
        h, w = pair.prompt.shape[:2]
        qh, qw = pair.query.shape[:2]
        around = self.object_crop_prob > 0 and rng.random() < self.object_crop_prob
        box_p = (around and self._object_box(rng, pair.prompt_labels)) or self._crop_box(rng, h, w)
        if rng.random() < self.same_crop_prob and (qh, qw) == (h, w):
            box_q = box_p
        else:
            box_q = (around and self._object_box(rng, pair.query_labels)) or self._crop_box(rng, qh, qw)
        p, pl = self._resize(pair.prompt, pair.prompt_labels, box_p, size)
        q, ql = self._resize(pair.query, pair.query_labels, box_q, size)
        p, q = colour_jitter(rng, p, self.jitter), colour_jitter(rng, q, self.jitter)
        if rng.random() < self.hflip_prob:
            p, pl, q, ql = p[:, ::-1], pl[:, ::-1], q[:, ::-1], ql[:, ::-1]
        if rng.random() < self.vflip_prob:
            p, pl, q, ql = p[::-1], pl[::-1], q[::-1], ql[::-1]
        return RawPair(*(np.ascontiguousarray(a) for a in (p, pl, q, ql)))


# ----------------------------------------------------------------------------- test-time views of one frame


@dataclass
class DreamSource:
    """One annotated frame prepared for dreaming, at the working size: the image, its labels and the
    'clean plate' (the image with every object in-painted away)."""

    image: np.ndarray  # (h, w, 3) uint8
    labels: np.ndarray  # (h, w) uint8, 0 = background
    plate: np.ndarray  # (h, w, 3) uint8


def _affine(center: Tuple[float, float], angle: float, scale: float, shift: Tuple[float, float]) -> np.ndarray:
    """3x3 matrix: rotate by `angle` degrees and scale about `center`, then translate by `shift` (x, y)."""
    m = np.eye(3)
    m[:2] = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), float(angle), float(scale))
    m[:2, 2] += shift
    return m


@dataclass
class DreamAugment:
    """New views of one annotated frame with their labels ("lucid data dreaming", Khoreva et al. 2017).

    A view is either the whole frame under a random affine (scale, rotation, shift; reflected
    borders, labelled like the image) or, with `move_prob`, the objects cut out and each moved on
    its own (shift, scale, rotation about its centre, in a random depth order, so one may hide
    another or leave the frame) over the in-painted background, which itself moves a little. Then
    a horizontal flip, colour jitter and, with `blur_prob`, a Gaussian blur. Views are made at a
    working size (`work_scale` x the model's short side, never above the frame's own size), so
    augmenting a 4K frame costs what a small one does.
    """

    scale: Tuple[float, float] = (0.8, 1.25)
    rotate: float = 10.0
    shift: float = 0.1
    move_prob: float = 0.5
    move_shift: float = 0.25
    move_scale: Tuple[float, float] = (0.8, 1.2)
    move_rotate: float = 20.0
    hflip_prob: float = 0.5
    jitter: float = 0.2
    blur_prob: float = 0.2
    work_scale: float = 2.0
    inpaint_radius: int = 5

    def prepare(self, image: np.ndarray, labels: np.ndarray, model_size: Tuple[int, int]) -> DreamSource:
        """Downscale to the working size and in-paint the objects away (once per annotated frame)."""
        h, w = labels.shape
        factor = min(1.0, self.work_scale * min(model_size) / min(h, w))
        size = (max(1, int(round(h * factor))), max(1, int(round(w * factor))))
        img, lab = resize_pair(image, labels, size) if size != (h, w) else (image, labels)
        hole = cv2.dilate((lab > 0).astype(np.uint8), np.ones((5, 5), np.uint8))
        plate = cv2.inpaint(np.ascontiguousarray(img), hole, self.inpaint_radius, cv2.INPAINT_TELEA) if hole.any() else img
        return DreamSource(np.ascontiguousarray(img), np.ascontiguousarray(lab), plate)

    def _global(self, rng: np.random.Generator, h: int, w: int, strength: float = 1.0) -> np.ndarray:
        lo, hi = self.scale
        scale = math.exp(rng.uniform(math.log(lo), math.log(hi)) * strength)
        angle = rng.uniform(-self.rotate, self.rotate) * strength
        shift = (rng.uniform(-self.shift, self.shift) * w * strength, rng.uniform(-self.shift, self.shift) * h * strength)
        return _affine((w / 2, h / 2), angle, scale, shift)

    def __call__(self, source: DreamSource, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """One view: (image (h, w, 3) uint8, labels (h, w) uint8) at the working size."""
        img, lab = source.image, source.labels
        h, w = lab.shape
        ids = [int(i) for i in np.unique(lab) if i not in (0, VOID)]
        if ids and rng.random() < self.move_prob:
            m = self._global(rng, h, w, strength=0.5)
            out = cv2.warpAffine(source.plate, m[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            out_lab = np.zeros((h, w), np.uint8)
            out_f = out.astype(np.float32)
            for obj in rng.permutation(ids):
                mask = lab == obj
                ys, xs = np.nonzero(mask)
                lo, hi = self.move_scale
                local = _affine((xs.mean(), ys.mean()), rng.uniform(-self.move_rotate, self.move_rotate),
                                math.exp(rng.uniform(math.log(lo), math.log(hi))),
                                (rng.uniform(-self.move_shift, self.move_shift) * w,
                                 rng.uniform(-self.move_shift, self.move_shift) * h))
                full = (m @ local)[:2]
                alpha = cv2.warpAffine(mask.astype(np.float32), full, (w, h), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT)
                pixels = cv2.warpAffine(img, full, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
                out_f = out_f * (1 - alpha[..., None]) + pixels.astype(np.float32) * alpha[..., None]
                out_lab[alpha >= 0.5] = obj
            out = np.clip(out_f + 0.5, 0, 255).astype(np.uint8)
        else:
            m = self._global(rng, h, w)
            out = cv2.warpAffine(img, m[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            out_lab = cv2.warpAffine(lab, m[:2], (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
        if rng.random() < self.hflip_prob:
            out, out_lab = out[:, ::-1], out_lab[:, ::-1]
        out = colour_jitter(rng, np.ascontiguousarray(out), self.jitter)
        if rng.random() < self.blur_prob:
            out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
        return np.ascontiguousarray(out), np.ascontiguousarray(out_lab)


class DreamPairs:
    """Pairs made from annotated frames alone (test-time adaptation), with the sources' `draw(rng)`.

    The prompt is an annotated frame resized to the model size exactly as inference shows it (or,
    with `prompt_dream_prob`, a dreamed view of it: at inference the other prompts are earlier
    predictions, not the annotated frame); the query is a dreamed view of an annotated frame (with
    several frames, another one half the time, so real motion between them is seen too).
    Labels are (H, W) ids, 0 = background, 255 = void.
    """

    def __init__(self, frames: Sequence[np.ndarray], label_maps: Sequence[np.ndarray], size: Tuple[int, int],
                 augment: Optional[DreamAugment] = None, prompt_dream_prob: float = 0.25):
        if not frames or len(frames) != len(label_maps):
            raise ValueError("give at least one frame and one label map per frame")
        self.size = (int(size[0]), int(size[1]))
        self.augment = augment or DreamAugment()
        self.prompt_dream_prob = float(prompt_dream_prob)
        self.prompts: List[Tuple[np.ndarray, np.ndarray]] = []
        self.sources: List[DreamSource] = []
        for frame, labels in zip(frames, label_maps):
            frame, labels = np.asarray(frame), np.asarray(labels)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or labels.shape != frame.shape[:2]:
                raise ValueError(f"a frame must be (H, W, 3) uint8 with an (H, W) label map, got {frame.dtype} "
                                 f"{frame.shape} and {labels.shape}")
            labels = labels.astype(np.uint8)
            self.prompts.append(resize_pair(frame, labels, self.size))
            self.sources.append(self.augment.prepare(frame, labels, self.size))

    def draw(self, rng: np.random.Generator) -> RawPair:
        i = int(rng.integers(len(self.sources)))
        j = i if len(self.sources) == 1 or rng.random() < 0.5 else int(rng.integers(len(self.sources)))
        if rng.random() < self.prompt_dream_prob:
            prompt, prompt_labels = resize_pair(*self.augment(self.sources[i], rng), self.size)
        else:
            prompt, prompt_labels = self.prompts[i]
        query, query_labels = resize_pair(*self.augment(self.sources[j], rng), self.size)
        return RawPair(prompt, prompt_labels, query, query_labels)


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
    return {0: colours[0], **{obj: colours[k + 1] for k, obj in enumerate(ids)}}


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


