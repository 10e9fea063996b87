"""Training data for in-context colouring: pair sources and the batch stream.

The pairs themselves (augmentation, random colour mapping, canvases, loss weights) are made by
``seggpt.pairs``, the one implementation that test-time adaptation and in-context tuning share.

SegGPT learns segmentation as painting: the prompt half of a canvas shows an image and its mask,
the query half an image whose mask is hidden, and the model paints the hidden mask. The colours of
each sample are drawn at random (objects to random, well separated colours, background black), so
the only way to know which colour an object takes is to read it from the prompt: that is what makes
the model an in-context learner instead of a classifier of a fixed label set.

Sources of (prompt image, prompt labels, query image, query labels) pairs:

* :class:`SyntheticPairs` -- the project's one synthetic generator (``vos.data.synthetic``), infinite;
* :class:`VideoPairs` -- two frames of one video (DAVIS / YouTube-VOS layouts) at a random gap;
* :class:`FlowPairs` -- pseudo-objects (colour regions) of unlabelled video frames carried to another
  frame by optical flow: real motion without labels;
* :class:`FolderPairs` -- image + mask folders whose images share classes (few-shot segmentation).

:class:`PairStream` mixes them and yields ready batches. Every batch is drawn from a generator
seeded by ``(seed, rank, micro-step)``, so the stream is the same whatever the number of loader
workers, and a resumed run sees exactly the batches an uninterrupted run would have seen.

The pairs are augmented, painted and normalised by ``seggpt.pairs`` (:class:`~seggpt.pairs.Augment`,
:func:`~seggpt.pairs.colour_mapping`, :func:`~seggpt.pairs.build_sample`), the one place that test-time
adaptation and in-context tuning use too; :class:`PairSettings` holds the stream's own settings
(colours, mixed contexts, hidden patches, loss weights). ``TrainConfig`` builds both from its flat keys.
"""
from __future__ import annotations

import copy
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import cv2
import numpy as np
import torch
from PIL import Image

from seggpt.io import read_label_png
from seggpt.pairs import VOID, Augment, RawPair, build_sample, colour_mapping, object_weights
from seggpt.errors import InputError
from vos.data.datasets import DAVIS, YouTubeVOS, pngs_by_stem
from vos.data.synthetic import make_pair

__all__ = [
    "RawPair",
    "SyntheticPairs",
    "VideoPairs",
    "FlowPairs",
    "FolderPairs",
    "Augment",
    "colour_mapping",
    "build_sample",
    "CurriculumStream",
    "object_weights",
    "PairSettings",
    "PairStream",
    "batch_rng",
]


def batch_rng(seed: int, rank: int, micro_step: int) -> np.random.Generator:
    """The generator of one micro-batch: a pure function of (seed, rank, step), for exact resume."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(rank), int(micro_step)]))


# ----------------------------------------------------------------------------- sources


class SyntheticPairs:
    """Two frames of one random synthetic scene (``vos.data.synthetic.make_pair``), on the fly.

    Rendered at `size` (the benchmark clips' 240x432 aspect by default, smaller for speed) so that
    the crop and resize to the model size look like inference on a synthetic clip.
    """

    def __init__(self, size: Tuple[int, int] = (80, 144), objects: Tuple[int, int] = (1, 3), max_gap: int = 16):
        if objects[0] < 1 or objects[1] < objects[0]:
            raise InputError(f"synthetic objects range must be 1 <= low <= high, got {objects}")
        self.max_gap = _checked_gap("synthetic", max_gap)
        self.size = (int(size[0]), int(size[1]))
        self.objects = (int(objects[0]), int(objects[1]))

    def draw(self, rng: np.random.Generator) -> RawPair:
        count = int(rng.integers(self.objects[0], self.objects[1] + 1))
        while True:
            try:
                p, pl, q, ql = make_pair(rng, self.size, num_objects=count, max_gap=self.max_gap)
                return RawPair(p, pl, q, ql)
            except InputError:  # that many objects do not fit a small scene: fewer (still deterministic)
                if count <= 1:
                    raise InputError(f"synthetic scenes of size {self.size}: no scene with one visible object") from None
                count -= 1


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as err:
        raise InputError(f"{path}: cannot read image ({err})") from None


def _checked_gap(kind: str, max_gap: int) -> int:
    """A source's largest frame gap, an integer >= 1 (InputError naming the source's kind)."""
    if max_gap < 1:
        raise InputError(f"{kind} max_gap must be >= 1, got {max_gap}")
    return int(max_gap)


class _GapPairs:
    """What the video sources share: a largest frame gap (`with_max_gap`) and the other frame of a pair."""

    max_gap: int
    kind = "video"

    def with_max_gap(self, max_gap: int):
        """The same videos (the scanned index is shared, not re-read) at another largest frame gap."""
        other = copy.copy(self)
        other.max_gap = _checked_gap(self.kind, max_gap)
        return other

    def other_frame(self, rng: np.random.Generator, i: int, count: int) -> int:
        """A frame 1..max_gap before or after frame i of `count` (clipped to the video, never i itself)."""
        gap = int(rng.integers(1, self.max_gap + 1)) * (1 if rng.random() < 0.5 else -1)
        j = int(np.clip(i + gap, 0, count - 1))
        if j == i:
            j = i + 1 if i + 1 < count else i - 1
        return j


class VideoPairs(_GapPairs):
    """Prompt = one annotated frame of a video, query = another annotated frame at a random gap.

    `roots` are DAVIS roots (``kind="davis"``, split/year/resolution as in ``vos.data.datasets.DAVIS``)
    or YouTube-VOS roots (``kind="ytvos"``: every annotation PNG of a training video holds all its
    objects). Only frames with a mask take part; a prompt whose mask is empty is redrawn.
    """

    def __init__(self, roots: Sequence[str], kind: str = "davis", split: str = "train", year: int = 2016,
                 resolution: str = "480p", max_gap: int = 10):
        if kind not in ("davis", "ytvos"):
            raise InputError(f"video source kind must be 'davis' or 'ytvos', got {kind!r}")
        self.max_gap = _checked_gap(self.kind, max_gap)
        #: per video: (frame paths, mask paths) of the frames that have a mask, in order
        self.videos: List[Tuple[List[Path], List[Path]]] = []
        self.binary: List[bool] = []
        #: per video: every frame's path, annotated or not (the unlabelled frames `FlowPairs` uses)
        self.all_frames: List[List[Path]] = []
        for root in roots:
            reader = (DAVIS(root, year=year, split=split, resolution=resolution) if kind == "davis"
                      else YouTubeVOS(root, split=split))
            for seq in reader:
                masks = seq.ground_truth or pngs_by_stem(reader.masks_root / seq.name)
                frames = [(p, masks[n]) for p, n in zip(seq.frame_paths, seq.frame_names) if n in masks]
                if len(seq.frame_paths) >= 2:
                    self.all_frames.append(list(seq.frame_paths))
                if len(frames) >= 2:
                    self.videos.append(([f for f, _ in frames], [m for _, m in frames]))
                    self.binary.append(seq.binary_masks)
        if not self.videos:
            raise InputError(f"{', '.join(map(str, roots))}: no video with two annotated frames")

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
            j = self.other_frame(rng, i, len(frames))
            return RawPair(_read_rgb(frames[i]), prompt_labels, _read_rgb(frames[j]),
                           read_label_png(masks[j], binary=self.binary[v]))
        raise InputError(f"{self.videos[0][1][0].parent.parent}: could not find a frame with a visible object")


class FlowPairs(_GapPairs):
    """Pseudo-objects in unlabelled real video, carried to another frame by optical flow.

    Real motion (deformation, occlusion, camera moves, lighting) in
    unlimited pairs without labels. On a random frame, regions of similar colour and place (k-means
    on Lab colour + position at a quarter of the size, split into connected parts) become 1 to
    `objects[1]` objects; OpenCV's DIS flow from a frame `1..max_gap` away back to that frame carries
    their labels there (backward warping, nearest). Where the flow cannot be trusted the query's labels
    are void (255, left out of the loss): pixels whose forward-backward flows disagree, pixels that came
    from outside the frame, and a 2-pixel band on every carried boundary (flow edges are blurred).

    The frames are any videos' (`videos`: per video its frame paths in order); their annotations, if
    any, are not read. Flow is computed on the fly (DIS "fast" preset, ~10 ms for 427x240).
    """

    #: region size, as a share of the frame, that may become an object
    AREA = (0.02, 0.35)
    kind = "flow"

    def __init__(self, videos: Sequence[Sequence[Path]], max_gap: int = 3, objects: Tuple[int, int] = (1, 3)):
        self.max_gap = _checked_gap(self.kind, max_gap)
        self.videos = [list(v) for v in videos if len(v) >= 2]
        if not self.videos:
            raise InputError("flow pairs need at least one video with two frames")
        self.objects = (int(objects[0]), int(objects[1]))

    @staticmethod
    def regions(image: np.ndarray, rng: np.random.Generator, clusters: int = 10) -> np.ndarray:
        """(H, W) int32 region ids (0..n-1): connected parts of k-means colour+position clusters."""
        h, w = image.shape[:2]
        sh, sw = max(8, h // 4), max(8, w // 4)
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        spatial = 255.0 / max(sh, sw)  # position weighs about as much as colour
        features = np.concatenate([lab.reshape(-1, 3), (xx * spatial).reshape(-1, 1),
                                   (yy * spatial).reshape(-1, 1)], axis=1)
        cv2.setRNGSeed(int(rng.integers(2**31 - 1)))
        criteria = (cv2.TERM_CRITERIA_MAX_ITER + cv2.TERM_CRITERIA_EPS, 10, 1.0)
        _, assign, _ = cv2.kmeans(features, clusters, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
        clustered = cv2.resize(assign.reshape(sh, sw).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        out = np.zeros((h, w), np.int32)
        next_id = 0
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        for c in range(clusters):
            part = cv2.morphologyEx((clustered == c).astype(np.uint8), cv2.MORPH_OPEN, kernel)
            n, comp = cv2.connectedComponents(part, connectivity=4)
            out[comp > 0] = comp[comp > 0] + next_id  # parts 1..n-1 of this cluster
            next_id += n - 1
        return out - 1  # -1: pixels opened away (thin bits), never an object

    @staticmethod
    def carry(labels: np.ndarray, source: np.ndarray, target: np.ndarray, dis: "cv2.DISOpticalFlow") -> np.ndarray:
        """`labels` of frame `source` carried to frame `target` (uint8, 255 where the flow is not trusted)."""
        gs, gt = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (source, target))
        back = dis.calc(gt, gs, None)  # target pixel -> where it was in the source
        fwd = dis.calc(gs, gt, None)
        h, w = labels.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        map_x, map_y = xx + back[..., 0], yy + back[..., 1]
        carried = cv2.remap(labels, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=VOID)
        fwd_at = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        error = np.linalg.norm(back + fwd_at, axis=2)
        scale = np.linalg.norm(back, axis=2) + np.linalg.norm(fwd_at, axis=2)
        carried[error > 1.0 + 0.05 * scale] = VOID
        kernel = np.ones((5, 5), np.uint8)  # a 2-pixel band on each side of every carried boundary
        for obj in np.unique(carried[(carried != 0) & (carried != VOID)]):
            m = (carried == obj).astype(np.uint8)
            carried[(cv2.dilate(m, kernel) > 0) & (cv2.erode(m, kernel) == 0)] = VOID
        return carried

    def draw(self, rng: np.random.Generator) -> RawPair:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        for _ in range(20):
            frames = self.videos[int(rng.integers(len(self.videos)))]
            i = int(rng.integers(len(frames)))
            j = self.other_frame(rng, i, len(frames))
            prompt, query = _read_rgb(frames[i]), _read_rgb(frames[j])
            if prompt.shape != query.shape:
                continue
            regions = self.regions(prompt, rng)
            ids, areas = np.unique(regions[regions >= 0], return_counts=True)
            share = areas / regions.size
            candidates = ids[(share >= self.AREA[0]) & (share <= self.AREA[1])]
            if not len(candidates):
                continue
            count = min(len(candidates), int(rng.integers(self.objects[0], self.objects[1] + 1)))
            chosen = rng.choice(candidates, size=count, replace=False)
            labels = np.zeros(regions.shape, np.uint8)
            for k, region in enumerate(chosen):
                labels[regions == region] = k + 1
            return RawPair(prompt, labels, query, self.carry(labels, prompt, query, dis))
        raise InputError(f"{self.videos[0][0].parent}: no frame with a region the size of an object")


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
                raise InputError(f"{base}: an image+mask folder needs images/ and masks/ sub-folders")
            found = 0
            for img in sorted(images.iterdir()):
                if img.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                    continue
                mask = masks / f"{img.stem}.png"
                if not mask.is_file():
                    raise InputError(f"{mask}: mask of {img.name} not found")
                ids = np.unique(read_label_png(mask))
                self.items.append((img, mask))
                self.classes.append(frozenset(int(i) for i in ids if i not in (0, VOID)))
                found += 1
            if found < 2:
                raise InputError(f"{images}: at least two images are needed")

    def draw(self, rng: np.random.Generator) -> RawPair:
        for _ in range(50):
            i, j = (int(k) for k in rng.choice(len(self.items), size=2, replace=False))
            if self.classes[i] & self.classes[j]:
                (pi, pm), (qi, qm) = self.items[i], self.items[j]
                return RawPair(_read_rgb(pi), read_label_png(pm), _read_rgb(qi), read_label_png(qm))
        raise InputError(f"{self.items[0][0].parent}: no two images share a class")


# ----------------------------------------------------------------------------- the stream


@dataclass(frozen=True)
class PairSettings:
    """How a stream turns pairs into samples (``TrainConfig`` holds the same settings as flat keys).

    min_color_distance, palette_prob: the random colours of each sample (``seggpt.pairs.colour_mapping``);
    mix_context_prob, mix_context_n: the share of samples that stitch n pairs side by side, one colour
    mapping for all; random_mask_prob, random_mask_ratio: the share of samples whose hidden patches are
    a random part of the whole mask canvas instead of the query half; object_weight_max: the largest
    loss weight of a small object's pixels (1: the official plain mean).
    """

    min_color_distance: float
    palette_prob: float
    mix_context_prob: float
    mix_context_n: int
    random_mask_prob: float
    random_mask_ratio: float
    object_weight_max: float


class PairStream(torch.utils.data.IterableDataset):
    """Infinite stream of micro-batches starting at micro-step `start`.

    Each is {"imgs", "tgts", "valid"} (N,.,2H,W) and "mask" (N, L) bool: the hidden, scored patches.

    Sources are drawn with probabilities proportional to `weights`; each pair is augmented by
    `augment` (its size is the model's image size) and made a sample by `settings`. With several
    loader workers, worker w produces micro-steps w, w+W, ... and the DataLoader interleaves them in order.
    """

    def __init__(self, sources: Sequence, weights: Sequence[float], augment: Augment, batch_size: int, *,
                 settings: PairSettings, seed: int = 0, rank: int = 0, start: int = 0, patch_size: int = 8):
        super().__init__()
        if not sources or len(sources) != len(weights):
            raise InputError("give at least one data source, with one weight per source")
        w = np.asarray(weights, dtype=np.float64)
        if np.any(w < 0) or w.sum() <= 0:
            raise InputError(f"source weights must be >= 0 and not all zero, got {list(weights)}")
        if settings.mix_context_n < 1 or augment.size[1] % settings.mix_context_n:
            raise InputError(f"mix_context_n must be >= 1 and divide the image width {augment.size[1]}")
        if not 0.0 < settings.random_mask_ratio < 1.0:
            raise InputError(f"random_mask_ratio must be in (0, 1), got {settings.random_mask_ratio}")
        self.sources = list(sources)
        self.probs = w / w.sum()
        self.augment = augment
        self.settings = settings
        self.batch_size = int(batch_size)
        self.seed, self.rank, self.start = int(seed), int(rank), int(start)
        h, w = augment.size
        if h % patch_size or w % patch_size:
            raise InputError(f"image size {augment.size} is not a multiple of the patch size {patch_size}")
        self.grid = (2 * h // patch_size, w // patch_size)

    def token_mask(self, rng: np.random.Generator) -> np.ndarray:
        """Which mask-canvas patches are hidden and scored: (2Hp*Wp,) bool.

        Usually the query half (what inference asks for). With `random_mask_prob` a random
        `random_mask_ratio` of all patches instead, as the official training mixes in: in-painting
        a mask from its visible neighbours is an easy task that teaches the model to read colours
        from the mask canvas, which the query-half task alone learns slowly from scratch.
        """
        rows, cols = self.grid
        mask = np.zeros(rows * cols, dtype=bool)
        st = self.settings
        if st.random_mask_prob > 0 and rng.random() < st.random_mask_prob:
            hidden = max(1, int(round(st.random_mask_ratio * rows * cols)))
            mask[rng.choice(rows * cols, size=hidden, replace=False)] = True
        else:
            mask[(rows // 2) * cols:] = True
        return mask

    def sample(self, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One canvas triple; mix-context stitches several pairs (each 1/n wide) with one mapping."""
        st = self.settings
        n = st.mix_context_n if (st.mix_context_n > 1 and rng.random() < st.mix_context_prob) else 1
        h, w = self.augment.size
        pairs = []
        for _ in range(n):
            source = self.sources[int(rng.choice(len(self.sources), p=self.probs))]
            pairs.append(self.augment(source.draw(rng), rng, (h, w // n)))
        mapping = colour_mapping([p.prompt_labels for p in pairs], rng, st.min_color_distance, st.palette_prob)
        return build_sample(pairs, mapping, st.object_weight_max)

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
            raise InputError("curriculum stages must start at micro-step 0 and increase")
        self.stages = list(stages)
        self.start = int(start)

    def batch(self, micro_step: int) -> Dict[str, torch.Tensor]:
        stream = next(stream for first, stream in reversed(self.stages) if micro_step >= first)
        return stream.batch(micro_step)

    __iter__ = PairStream.__iter__


def _quiet_exit(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the loader's worker loop ends quietly on it


def _passes_through_fd_sharing(tb: object) -> bool:
    return any(os.path.basename(frame.f_code.co_filename) == "resource_sharer.py"
               for frame, _ in traceback.walk_tb(tb))  # type: ignore[arg-type]


def _quiet_fd_sharing_failures(previous):  # type: ignore[no-untyped-def]
    """A worker hands each batch's tensors to the main process by passing file descriptors, served by
    multiprocessing's resource-sharer thread, which prints any failure through ``sys.excepthook``. When
    Ctrl-C or SIGTERM interrupts the main process in the middle of receiving one, that handshake breaks
    and the worker would print a traceback under the main process's one-line message. Such a failure
    only ever means the receiver went away (the main process reports its own errors), so it is quiet;
    everything else still goes to the previous hook."""

    def hook(exc_type, exc, tb):  # type: ignore[no-untyped-def]
        if issubclass(exc_type, Exception) and _passes_through_fd_sharing(tb):
            return
        previous(exc_type, exc, tb)

    return hook


def worker_init(_: int) -> None:
    """Loader workers use one thread each (the cores belong to the training step), and a SIGTERM sent to
    the whole process group ends them quietly, as Ctrl-C does, while the main process saves its checkpoint
    (a batch handed over at that moment fails quietly too: :func:`_quiet_fd_sharing_failures`)."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    signal.signal(signal.SIGTERM, _quiet_exit)
    sys.excepthook = _quiet_fd_sharing_failures(sys.excepthook)
