"""The project's one synthetic video generator (tests, benchmarks, training) and dataset writers.

Only single-object DAVIS 2016 data ships with the project, so multi-object behaviour (several ids,
occlusion, objects leaving, entering and appearing late) is tested on synthetic videos that
exercise the same difficulties:

* textured objects (ellipses and star-shaped polygons filled with noise, stripes or checkers)
  on a textured, panning background;
* smooth bounded motion (Lissajous paths around the frame centre), so objects cross each other
  and periodically leave and re-enter the frame, forever, however long the clip;
* scale change and rotation; a fixed depth order, so crossings are occlusions and the label map
  shows the visible (nearest) object;
* deterministic for a seed; frames are rendered one at a time from closed-form motion, so memory
  does not grow with the length (``iter_clip`` streams a 10,000-frame video in constant memory).

Writers produce the DAVIS 2017 and YouTube-VOS layouts read by ``vos.data.datasets`` (palette PNGs
with the DAVIS palette, JPEG frames), written atomically through ``seggpt.io`` (videos of a clip:
``seggpt.io.write_mp4``).

Training pairs: ``make_pair`` renders two frames of one random scene a few frames apart (the
prompt and the query) with their label maps.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
from PIL import Image

from seggpt.errors import InputError, is_integer
from seggpt.io import atomic_path, atomic_write_text, save_index_png

__all__ = [
    "Scene",
    "make_scene",
    "make_clip",
    "iter_clip",
    "make_pair",
    "write_davis2017",
    "write_ytvos",
    "sequence_seed",
]

TEXTURES = ("noise", "stripes", "checker")


# ----------------------------------------------------------------------------- file output


def _save_labels(labels: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_index_png(path, labels)  # the DAVIS palette, as in the benchmark files


def _save_jpeg(frame: np.ndarray, path: Path, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(frame).save(tmp, format="JPEG", quality=quality)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


# ----------------------------------------------------------------------------- textures


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(20, 235, size=3).astype(np.float32)


def _mix(weight: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    return c1 + weight[..., None] * (c2 - c1)


def _sprite_texture(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """(size, size, 3) float32 texture in [0, 255] for an object sprite."""
    c1, c2 = _random_colour(rng), _random_colour(rng)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    u = xx * math.cos(angle) + yy * math.sin(angle)
    v = -xx * math.sin(angle) + yy * math.cos(angle)
    if kind == "stripes":
        period = rng.uniform(4, max(5.0, size / 3))
        weight = 0.5 + 0.5 * np.sin(2 * math.pi * u / period)
    elif kind == "checker":
        cell = rng.uniform(3, max(4.0, size / 4))
        weight = (np.sin(math.pi * u / cell) * np.sin(math.pi * v / cell) > 0).astype(np.float32)
    else:
        coarse = rng.normal(size=(max(2, size // 6), max(2, size // 6), 3)).astype(np.float32)
        noise = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        return np.clip(_random_colour(rng) + 45 * noise, 0, 255)
    fine = rng.normal(scale=8, size=(size, size, 3)).astype(np.float32)
    return np.clip(_mix(weight.astype(np.float32), c1, c2) + fine, 0, 255)


def _periodic_noise(rng: np.random.Generator, height: int, width: int, cutoff: float) -> np.ndarray:
    """Low-pass white noise through the FFT: seamless when the background wraps around."""
    spectrum = np.fft.rfft2(rng.normal(size=(height, width)))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    spectrum *= np.exp(-(fx**2 + fy**2) / (2 * cutoff**2))
    noise = np.fft.irfft2(spectrum, s=(height, width))
    return ((noise - noise.mean()) / (noise.std() + 1e-8)).astype(np.float32)


def _background_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float32 tileable background: every pattern has whole periods across the frame."""
    kind = TEXTURES[rng.integers(len(TEXTURES))]
    c1, c2 = _random_colour(rng), _random_colour(rng)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kx, ky = (int(k) for k in rng.integers(2, 12, size=2))
    if kind == "stripes":
        weight = 0.5 + 0.5 * np.sin(2 * math.pi * (kx * xx / width + ky * yy / height))
    elif kind == "checker":
        weight = (np.sin(2 * math.pi * kx * xx / width) * np.sin(2 * math.pi * ky * yy / height) > 0).astype(np.float32)
    else:
        weight = np.clip(0.5 + 0.25 * _periodic_noise(rng, height, width, cutoff=0.03), 0, 1)
    shading = 25 * _periodic_noise(rng, height, width, cutoff=0.01)[..., None]
    grain = 6 * _periodic_noise(rng, height, width, cutoff=0.25)[..., None]
    return np.clip(_mix(weight.astype(np.float32), c1, c2) + shading + grain, 0, 255).astype(np.float32)


def _sprite_alpha(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    """(size, size) float32 soft shape: an ellipse or a star-shaped polygon, anti-aliased by 4x area."""
    up = 4
    canvas = np.zeros((size * up, size * up), dtype=np.uint8)
    centre = size * up / 2
    if rng.random() < 0.5:
        axes = (radius * up, radius * up * rng.uniform(0.45, 1.0))
        cv2.ellipse(canvas, ((centre, centre), (2 * axes[0], 2 * axes[1]), rng.uniform(0, 180)), 255, -1)
    else:
        count = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * math.pi, size=count))
        radii = radius * up * rng.uniform(0.55, 1.0, size=count)
        points = np.stack([centre + radii * np.cos(angles), centre + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [np.round(points * 16).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=4)
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


# ----------------------------------------------------------------------------- scene


@dataclass(frozen=True)
class _Object:
    obj_id: int
    sprite: np.ndarray  # (S, S, 4) float32: RGB texture + alpha
    centre: tuple[float, float]  # path centre (x, y)
    amplitude: tuple[float, float]
    omega: tuple[float, float]
    phase: tuple[float, float]
    scale_amp: float
    scale_omega: float
    scale_phase: float
    angle0: float
    spin: float
    start: int


class Scene:
    """A deterministic synthetic scene; ``render(t)`` draws frame ``t`` in closed form.

    Objects are drawn far to near (``depth_order``), so ``render`` labels show the visible
    object; ``amodal_masks`` gives each object's full mask as if alone (to measure occlusion).
    Object ``k`` has label ``k`` (1-based) and is not drawn before ``start_frames[k-1]``.
    The last object follows a wide horizontal path, so it leaves the frame and comes back.
    Use ``make_scene`` to get a scene whose objects are all visible at their start frames.
    """

    def __init__(
        self,
        seed: int | Sequence[int],
        size: tuple[int, int] = (240, 432),
        num_objects: int = 3,
        *,
        speed: float = 1.0,
        start_frames: Sequence[int] | None = None,
        pan_speed: float = 1.5,
        object_size: tuple[float, float] = (0.10, 0.22),
    ):
        height, width = (int(v) for v in size)
        if height < 16 or width < 16:
            raise InputError(f"size must be at least 16x16, got {size}")
        if not 1 <= num_objects <= 254:
            raise InputError(f"num_objects must be in 1..254, got {num_objects}")
        starts = [0] * num_objects if start_frames is None else [int(s) for s in start_frames]
        if len(starts) != num_objects or min(starts) < 0:
            raise InputError(f"start_frames must give {num_objects} non-negative frames, got {start_frames}")
        self.size = (height, width)
        self.num_objects = num_objects
        rng = np.random.default_rng(seed)
        self.background = _background_texture(rng, height, width)
        angle = rng.uniform(0, 2 * math.pi)
        self.pan = (pan_speed * math.cos(angle), pan_speed * math.sin(angle))
        short = min(height, width)
        objects = []
        for index in range(num_objects):
            radius = max(3.0, rng.uniform(*object_size) * short)
            sprite_size = int(2 * math.ceil(radius) + 3)
            kind = TEXTURES[rng.integers(len(TEXTURES))]
            sprite = np.dstack([_sprite_texture(rng, sprite_size, kind), _sprite_alpha(rng, sprite_size, radius)])
            last = index == num_objects - 1
            amp_x = (0.5 * width + 1.6 * radius) if last else rng.uniform(0.1, 0.45) * width
            amp_y = rng.uniform(0.05, 0.35) * height
            centre = (width / 2 + rng.uniform(-0.1, 0.1) * width, height / 2 + rng.uniform(-0.1, 0.1) * height)
            omega = tuple(2 * math.pi * speed / rng.uniform(40, 140) for _ in range(2))
            # Choose phases so that, at its start frame, the object sits well inside the frame.
            target = (rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height)
            phase = []
            for amp, aim, mid, om in zip((amp_x, amp_y), target, centre, omega):
                s = float(np.clip((aim - mid) / amp, -1, 1))
                at_start = math.asin(s) if rng.random() < 0.5 else math.pi - math.asin(s)
                phase.append(at_start - om * starts[index])
            objects.append(
                _Object(
                    obj_id=index + 1,
                    sprite=sprite,
                    centre=centre,
                    amplitude=(amp_x, amp_y),
                    omega=omega,  # type: ignore[arg-type]
                    phase=(phase[0], phase[1]),
                    scale_amp=rng.uniform(0.1, 0.35),
                    scale_omega=2 * math.pi * speed / rng.uniform(30, 120),
                    scale_phase=rng.uniform(0, 2 * math.pi),
                    angle0=rng.uniform(0, 2 * math.pi),
                    spin=rng.uniform(-0.03, 0.03) * speed,
                    start=starts[index],
                )
            )
        self.objects = objects
        self.depth_order = [int(i) for i in rng.permutation(num_objects)]  # far -> near, indices

    def object_pose(self, index: int, t: int) -> tuple[float, float, float, float]:
        """(x, y, scale, angle) of object ``index`` (0-based) at frame ``t``."""
        obj = self.objects[index]
        x = obj.centre[0] + obj.amplitude[0] * math.sin(obj.omega[0] * t + obj.phase[0])
        y = obj.centre[1] + obj.amplitude[1] * math.sin(obj.omega[1] * t + obj.phase[1])
        scale = math.exp(obj.scale_amp * math.sin(obj.scale_omega * t + obj.scale_phase))
        return x, y, scale, obj.angle0 + obj.spin * t

    def _warp_object(self, index: int, t: int):
        """The object's sprite warped into its on-screen box: (rgba (h,w,4), y0, x0) or None."""
        height, width = self.size
        x, y, scale, angle = self.object_pose(index, t)
        sprite = self.objects[index].sprite
        half = sprite.shape[0] / 2
        extent = half * scale * math.sqrt(2) + 2
        x0, x1 = max(0, math.floor(x - extent)), min(width, math.ceil(x + extent) + 1)
        y0, y1 = max(0, math.floor(y - extent)), min(height, math.ceil(y + extent) + 1)
        if x1 <= x0 or y1 <= y0:
            return None
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        # Inverse map: sprite coords = half + R(-angle)/scale * (box coords + origin - centre).
        dx, dy = x0 - x, y0 - y
        inverse = np.array([[cos, sin, half - 0.5 + cos * dx + sin * dy],
                            [-sin, cos, half - 0.5 - sin * dx + cos * dy]], dtype=np.float64)
        rgba = cv2.warpAffine(
            sprite, inverse, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
        return rgba, y0, x0

    def _drawn(self, t: int, order: Sequence[int]) -> Iterator[tuple[int, np.ndarray, int, int]]:
        """``(index, rgba, y0, x0)`` of every object on screen at frame ``t`` (started, inside the frame), in ``order``."""
        for index in order:
            warped = self._warp_object(index, t) if t >= self.objects[index].start else None
            if warped is not None:
                yield (index, *warped)

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``t``: ((H, W, 3) uint8 RGB image, (H, W) uint8 labels of visible objects)."""
        height, width = self.size
        off_x = (self.pan[0] * t) % width
        off_y = (self.pan[1] * t) % height
        shift = np.array([[1, 0, off_x], [0, 1, off_y]], dtype=np.float64)
        frame = cv2.warpAffine(
            self.background, shift, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_WRAP,
        )
        labels = np.zeros((height, width), dtype=np.uint8)
        for index, rgba, y0, x0 in self._drawn(t, self.depth_order):
            h, w = rgba.shape[:2]
            alpha = rgba[..., 3:4]
            region = frame[y0 : y0 + h, x0 : x0 + w]
            region += alpha * (rgba[..., :3] - region)
            labels[y0 : y0 + h, x0 : x0 + w][alpha[..., 0] >= 0.5] = self.objects[index].obj_id
        return np.clip(frame + 0.5, 0, 255).astype(np.uint8), labels

    def amodal_masks(self, t: int) -> np.ndarray:
        """(N, H, W) bool: each object's full mask at frame ``t`` as if nothing occluded it."""
        masks = np.zeros((self.num_objects, *self.size), dtype=bool)
        for index, rgba, y0, x0 in self._drawn(t, range(self.num_objects)):
            h, w = rgba.shape[:2]
            masks[index, y0 : y0 + h, x0 : x0 + w] = rgba[..., 3] >= 0.5
        return masks


def make_scene(
    seed: int,
    size: tuple[int, int] = (240, 432),
    num_objects: int = 3,
    *,
    min_visible: float = 0.002,
    attempts: int = 50,
    **options,
) -> Scene:
    """A scene in which every object is visible (not fully occluded) at its start frame.

    Semi-supervised benchmarks need every object in its first annotated frame; scenes that fail
    (an object hidden behind another) are redrawn from the deterministic sub-seeds
    ``(seed, 1)``, ``(seed, 2)``, ... ``min_visible`` is a fraction of the frame area (at least
    4 pixels).
    """
    need = max(4, int(min_visible * size[0] * size[1]))
    for attempt in range(attempts):
        scene = Scene(seed if attempt == 0 else (int(seed), attempt), size, num_objects, **options)
        if all(np.count_nonzero(scene.render(obj.start)[1] == obj.obj_id) >= need for obj in scene.objects):
            return scene
    raise InputError(f"no scene with {num_objects} visible objects at {size} after {attempts} attempts (seed {seed})")


def iter_clip(
    seed: int, num_frames: int, size: tuple[int, int] = (240, 432), num_objects: int = 3, **options
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(frame (H,W,3) uint8, labels (H,W) uint8)`` one at a time; constant memory.

    Same arguments as ``make_clip``; the frames are identical to ``make_clip``'s.
    """
    if num_frames < 0:
        raise InputError(f"num_frames must be >= 0, got {num_frames}")
    scene = make_scene(seed, size, num_objects, **options)
    for t in range(num_frames):
        yield scene.render(t)


def make_clip(
    seed: int, num_frames: int, size: tuple[int, int] = (240, 432), num_objects: int = 3, **options
) -> tuple[np.ndarray, np.ndarray]:
    """A whole clip: (frames (T,H,W,3) uint8, labels (T,H,W) uint8); every object visible in frame 0.

    options: ``speed`` (motion speed factor), ``start_frames`` (first frame of each object),
    ``pan_speed`` (background pixels per frame), ``object_size`` (radius range as a fraction of
    the short side), ``min_visible`` (see ``make_scene``).
    """
    height, width = size
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    labels = np.empty((num_frames, height, width), dtype=np.uint8)
    for t, (frame, label) in enumerate(iter_clip(seed, num_frames, size, num_objects, **options)):
        frames[t], labels[t] = frame, label
    return frames, labels


def make_pair(
    rng: np.random.Generator,
    size: tuple[int, int] = (64, 64),
    num_objects: int | None = None,
    max_gap: int = 8,
    **options,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A training pair of one random scene: (prompt frame, prompt labels, query frame, query labels).

    The prompt is a random frame where every object is visible; the query follows 1..max_gap
    frames later (objects moved, rescaled, maybe occluded or gone). num_objects defaults to a
    random 1..3. Reproducible from the state of ``rng``.
    """
    count = int(rng.integers(1, 4)) if num_objects is None else int(num_objects)
    start = int(rng.integers(0, 500))
    scene = make_scene(int(rng.integers(0, 2**31 - 1)), size, count, start_frames=[start] * count, **options)
    gap = int(rng.integers(1, max_gap + 1))
    return (*scene.render(start), *scene.render(start + gap))  # prompt, its labels, query, its labels


# ----------------------------------------------------------------------------- writers


def sequence_seed(seed: int, index: int) -> int:
    """Seed of sequence ``index`` in a dataset written with ``seed`` (to regenerate it exactly)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _object_count(rng: np.random.Generator, num_objects: int | tuple[int, int]) -> int:
    if is_integer(num_objects):
        return int(num_objects)
    low, high = num_objects
    return int(rng.integers(low, high + 1))


def write_davis2017(
    root: str | os.PathLike,
    num_sequences: int = 3,
    seed: int = 0,
    *,
    num_frames: int = 20,
    size: tuple[int, int] = (240, 432),
    num_objects: int | tuple[int, int] = (1, 3),
    resolution: str = "480p",
    split: str = "val",
    jpeg_quality: int = 90,
    prefix: str = "synth",
    **options,
) -> list[str]:
    """Write a DAVIS-2017-layout dataset; returns the sequence names (``<prefix>-000``, ...).

    ``JPEGImages/<resolution>/<seq>/00000.jpg``, palette ``Annotations/<resolution>/<seq>/00000.png``
    for every frame (all objects visible in frame 0), ``ImageSets/2017/<split>.txt``.
    num_objects: a count or an inclusive (low, high) range drawn per sequence.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = [f"{prefix}-{index:03d}" for index in range(num_sequences)]
    for index, name in enumerate(names):
        count = _object_count(rng, num_objects)
        for t, (frame, labels) in enumerate(iter_clip(sequence_seed(seed, index), num_frames, size, count, **options)):
            _save_jpeg(frame, root / "JPEGImages" / resolution / name / f"{t:05d}.jpg", jpeg_quality)
            _save_labels(labels, root / "Annotations" / resolution / name / f"{t:05d}.png")
    _write_text(root / "ImageSets" / "2017" / f"{split}.txt", "".join(f"{n}\n" for n in names))
    return names


def write_ytvos(
    root: str | os.PathLike,
    num_videos: int = 3,
    seed: int = 0,
    *,
    num_frames: int = 31,
    size: tuple[int, int] = (240, 432),
    num_objects: int | tuple[int, int] = (2, 3),
    step: int = 5,
    split: str = "valid",
    all_frames: bool = True,
    ground_truth: bool = True,
    jpeg_quality: int = 90,
    prefix: str = "synth",
    **options,
) -> list[str]:
    """Write a YouTube-VOS-layout dataset; returns the video names.

    * ``<split>/JPEGImages/<vid>/<frame>.jpg`` every ``step``-th frame (names are the all-frame
      indices, 00000, 00005, ...);
    * ``<split>/Annotations/<vid>/<frame>.png``: on each frame where objects first appear, only
      those new objects (0 = not given); objects after the first start at later sampled frames
      with probability 1/2;
    * ``<split>/meta.json``: per object, the sampled frames from its first appearance to the end;
    * ``all_frames/<split>_all_frames/JPEGImages/<vid>/`` every frame (``all_frames=True``);
    * ``<split>/GroundTruth/<vid>/<frame>.png`` full label maps of the sampled frames
      (``ground_truth=True``), for scoring locally (the real valid set has none).
    """
    if step < 1:
        raise InputError(f"step must be >= 1, got {step}")
    root = Path(root)
    split_dir = root / split
    rng = np.random.default_rng(seed)
    sampled = list(range(0, num_frames, step))
    meta: dict[str, dict] = {"videos": {}}
    names = [f"{prefix}-{index:03d}" for index in range(num_videos)]
    for index, name in enumerate(names):
        count = _object_count(rng, num_objects)
        late = sampled[1 : max(2, len(sampled) // 2 + 1)]
        starts = [0] + [int(rng.choice(late)) if late and rng.random() < 0.5 else 0 for _ in range(count - 1)]
        scene = make_scene(sequence_seed(seed, index), size, count, start_frames=starts, **options)
        for t in range(num_frames):
            frame, labels = scene.render(t)
            frame_name = f"{t:05d}"
            if all_frames:
                _save_jpeg(frame, root / "all_frames" / f"{split}_all_frames" / "JPEGImages" / name / f"{frame_name}.jpg", jpeg_quality)
            if t % step:
                continue
            _save_jpeg(frame, split_dir / "JPEGImages" / name / f"{frame_name}.jpg", jpeg_quality)
            new = [obj.obj_id for obj in scene.objects if obj.start == t]
            if new:
                _save_labels(np.where(np.isin(labels, new), labels, 0), split_dir / "Annotations" / name / f"{frame_name}.png")
            if ground_truth:
                _save_labels(labels, split_dir / "GroundTruth" / name / f"{frame_name}.png")
        meta["videos"][name] = {
            "objects": {
                str(obj.obj_id): {"category": "synthetic", "frames": [f"{t:05d}" for t in sampled if t >= obj.start]}
                for obj in scene.objects
            }
        }
    _write_text(split_dir / "meta.json", json.dumps(meta, indent=1))
    return names
