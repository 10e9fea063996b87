"""Readers for DAVIS 2016/2017, YouTube-VOS and plain frame folders.

A reader only *describes* sequences (paths, frame names, prompt annotations, object ids); it
never decodes a whole video, so a harness can iterate over thousands of sequences and hand each
one to a frame-streaming engine. The only pixels read up front are one annotation PNG per
sequence (to learn the object ids and the frame size).

Layouts (the DAVIS challenge's https://davischallenge.org/davis2017/code.html and YouTube-VOS's
https://youtube-vos.org/dataset/vos/ descriptions):

* DAVIS: ``JPEGImages/<res>/<seq>/*.jpg``, ``Annotations/<res>/<seq>/*.png``,
  ``ImageSets/<year>/<split>.txt``. DAVIS 2016 masks are single-object (0/255 grayscale in the
  original release, palette id 1 in re-encoded copies): any non-zero pixel is object 1. DAVIS
  2017 masks are palette/index PNGs with several ids; 255 is "void".
* YouTube-VOS: ``<split>/JPEGImages/<vid>/*.jpg`` (every 5th frame),
  ``<split>/Annotations/<vid>/*.png`` only where objects first appear and holding only those new
  objects (0 there means "not given", not background), ``<split>/meta.json`` listing, per
  object, the frames to output. Optional all-frames folder: run on every frame, save the listed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from seggpt.errors import InputError, is_integer
from seggpt.io import read_label_png

from vos.io.video import IMAGE_EXTENSIONS, natural_key

__all__ = [
    "DatasetError",
    "Sequence",
    "DAVIS",
    "YouTubeVOS",
    "FolderDataset",
    "list_frames",
    "pngs_by_stem",
]


#: the name of this module's errors (a dataset folder or file is missing or malformed; the message names
#: the path): an alias of InputError, not another class
DatasetError = InputError


def list_frames(folder: str | os.PathLike, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files of a folder in natural order; InputError if the folder is missing or empty."""
    folder = _folder(Path(folder), "frame folder not found")
    frames = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions]
    if not frames:
        raise InputError(f"{folder}: no image files ({', '.join(extensions)})")
    return sorted(frames, key=lambda p: natural_key(p.name))


def _folder(path: Path, missing: str) -> Path:
    """`path` if it is a folder, else InputError "<path>: <missing>"."""
    if not path.is_dir():
        raise InputError(f"{path}: {missing}")
    return path


def pngs_by_stem(folder: str | os.PathLike) -> dict[str, Path]:
    """Every ``*.png`` of ``folder`` by file stem (the frame name), in natural order; {} if no folder.

    How annotation folders are indexed: DAVIS ground truth, YouTube-VOS annotations (a training
    video's PNGs hold all its objects), result folders.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.png"), key=lambda p: natural_key(p.name))}


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header only."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except OSError as err:
        raise InputError(f"{path}: cannot read image ({err})") from None
    return height, width


@dataclass
class Sequence:
    """Everything needed to run and score one video, without its pixels.

    frames_dir: folder of the frames (usable by a folder frame source); frame_paths and
    frame_names (file stems) are the frames to *run* on, in order.
    annotations: frame name -> mask path of the prompt masks given to the method (DAVIS: the
    first frame; YouTube-VOS: each frame where new objects appear, holding only those objects).
    ground_truth: frame name -> full ground-truth mask path where available (for scoring).
    object_ids: objects to segment. object_first_frame: object id -> frame name where its mask
    is first given. frames_to_save: frame names whose masks must be written (DAVIS: all;
    YouTube-VOS: the union of the frames listed in meta.json). size: (H, W).
    binary_masks: masks follow DAVIS 2016 (non-zero = object 1).
    """

    name: str
    frames_dir: Path
    frame_paths: list[Path]
    frame_names: list[str]
    annotations: dict[str, Path]
    object_ids: list[int]
    object_first_frame: dict[int, str]
    frames_to_save: list[str]
    size: tuple[int, int]
    ground_truth: dict[str, Path] = field(default_factory=dict)
    binary_masks: bool = False

    def __len__(self) -> int:
        return len(self.frame_paths)

    def read_annotation(self, frame_name: str) -> np.ndarray:
        """Prompt mask of ``frame_name`` as (H, W) uint8 ids (YouTube-VOS: 0 = not given)."""
        if frame_name not in self.annotations:
            raise InputError(f"{self.name}: no annotation for frame {frame_name}")
        return read_label_png(self.annotations[frame_name], binary=self.binary_masks)

    def objects_first_given_at(self, frame_name: str) -> list[int]:
        """Object ids whose prompt mask is given at ``frame_name`` (new objects there)."""
        return [obj for obj, name in self.object_first_frame.items() if name == frame_name]

    def load_ground_truth(self, frame_names: list[str] | None = None) -> np.ndarray:
        """(T, H, W) uint8 ground truth for ``frame_names`` (default: frames_to_save)."""
        names = self.frames_to_save if frame_names is None else frame_names
        if not self.ground_truth:
            raise InputError(f"{self.name}: this dataset has no ground truth for scoring")
        missing = [n for n in names if n not in self.ground_truth]
        if missing:
            raise InputError(f"{self.name}: ground truth missing for frames {missing[:5]}{'...' if len(missing) > 5 else ''}")
        labels = np.zeros((len(names), *self.size), dtype=np.uint8)
        for i, frame in enumerate(names):
            mask = read_label_png(self.ground_truth[frame], binary=self.binary_masks)
            if mask.shape != self.size:
                raise InputError(f"{self.ground_truth[frame]}: size {mask.shape} differs from the sequence size {self.size}")
            labels[i] = mask
        return labels


def _all_given_at(name: str, frames_dir: Path, frame_paths: list[Path], mask: Path, object_ids: list[int],
                  size: tuple[int, int], given_at: str | None = None, **extra) -> Sequence:
    """A sequence whose objects are all given by one mask, on frame `given_at` (default: the first), and
    whose every frame is saved: DAVIS' semi-supervised protocol and a user's folder."""
    frame_names = [p.stem for p in frame_paths]
    first = frame_names[0] if given_at is None else given_at
    return Sequence(name=name, frames_dir=frames_dir, frame_paths=frame_paths, frame_names=frame_names,
                    annotations={first: mask}, object_ids=object_ids,
                    object_first_frame={obj: first for obj in object_ids}, frames_to_save=list(frame_names),
                    size=size, **extra)


class _Sequences:
    """What every reader shares: ``names`` in order, ``len()``, iteration; subclasses index by name."""

    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[Sequence]:
        return (self[name] for name in self.names)

    def __getitem__(self, name: str) -> Sequence:  # pragma: no cover - every reader defines it
        raise NotImplementedError


# ----------------------------------------------------------------------------- DAVIS


class DAVIS(_Sequences):
    """DAVIS 2016/2017 reader (semi-supervised protocol): ``for seq in DAVIS(root): ...``.

    resolution: sub-folder of JPEGImages/Annotations ("480p", "Full-Resolution", "240p", ...);
    when it is missing and exactly one resolution folder exists, that one is used.
    The sequence list comes from ``ImageSets/<year>/<split>.txt`` (one name per line); for 2016
    the original ``ImageSets/<res>/<split>.txt`` frame-pair lists are understood too.
    """

    def __init__(self, root: str | os.PathLike, year: int = 2017, split: str = "val", resolution: str = "480p"):
        self.root = Path(root)
        self.year = int(year)
        self.split = split
        if self.year not in (2016, 2017):
            raise InputError(f"{self.root}: DAVIS year must be 2016 or 2017, got {year}")
        _folder(self.root, "DAVIS root folder not found")
        self.resolution = self._resolve_resolution(resolution)
        self.images_root = self.root / "JPEGImages" / self.resolution
        self.masks_root = _folder(self.root / "Annotations" / self.resolution, "annotation folder not found")
        self.names = self._read_split()

    def _resolve_resolution(self, resolution: str) -> str:
        images = _folder(self.root / "JPEGImages", f"folder not found (is {self.root} a DAVIS root?)")
        if (images / resolution).is_dir():
            return resolution
        available = sorted(p.name for p in images.iterdir() if p.is_dir())
        if len(available) == 1:
            return available[0]
        raise InputError(f"{images / resolution}: resolution folder not found; available: {available or 'none'}")

    def _read_split(self) -> list[str]:
        candidates = [self.root / "ImageSets" / str(self.year) / f"{self.split}.txt"]
        if self.year == 2016:
            candidates.append(self.root / "ImageSets" / self.resolution / f"{self.split}.txt")
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise InputError(f"{candidates[0]}: split file not found")
        tokens = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        # 2016 frame lists: "/JPEGImages/480p/<seq>/00000.jpg /Annotations/..." -> <seq>
        names = list(dict.fromkeys(Path(token).parent.name if "/" in token else token for token in tokens))
        if not names:
            raise InputError(f"{path}: no sequences listed")
        return names

    def __getitem__(self, name: str) -> Sequence:
        if name not in self.names:
            raise InputError(f"{self.root}: sequence {name!r} is not in the {self.year} {self.split} split")
        frame_paths = list_frames(self.images_root / name, (".jpg", ".jpeg"))
        gt = pngs_by_stem(self.masks_root / name)
        first = frame_paths[0].stem
        if first not in gt:
            raise InputError(f"{self.masks_root / name / (first + '.png')}: first-frame annotation not found")
        binary = self.year == 2016
        first_mask = read_label_png(gt[first], binary=binary)
        first_mask[first_mask == 255] = 0  # void is not an object
        object_ids = list(range(1, int(first_mask.max()) + 1))
        return _all_given_at(name, self.images_root / name, frame_paths, gt[first], object_ids, first_mask.shape,
                             ground_truth={p.stem: gt[p.stem] for p in frame_paths if p.stem in gt},
                             binary_masks=binary)

    def load_ground_truth(self, seq: str | Sequence) -> np.ndarray:
        """(T, H, W) uint8 ground truth of every frame (DAVIS 2016: non-zero -> 1)."""
        sequence = self[seq] if isinstance(seq, str) else seq
        return sequence.load_ground_truth(sequence.frame_names)


# ----------------------------------------------------------------------------- YouTube-VOS


class YouTubeVOS(_Sequences):
    """YouTube-VOS 2018/2019 reader: ``for seq in YouTubeVOS(root, "valid"): ...``.

    all_frames_root: folder holding ``JPEGImages/<vid>`` with every frame (official:
    ``<root>/all_frames/valid_all_frames``) or the ``JPEGImages`` folder itself; sequences then
    run on all frames while ``frames_to_save`` keeps the listed ones.
    ground_truth_root: optional folder ``<vid>/<frame>.png`` with full annotations (the official
    valid set has none; synthetic sets do) so ``Sequence.load_ground_truth`` can score locally.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "valid",
        all_frames_root: str | os.PathLike | None = None,
        ground_truth_root: str | os.PathLike | None = None,
    ):
        self.root = Path(root)
        self.split_dir = _folder(self.root / split, "YouTube-VOS split folder not found")
        self.images_root = _folder(self.split_dir / "JPEGImages", "folder not found")
        self.masks_root = _folder(self.split_dir / "Annotations", "folder not found")
        self.all_frames_root = None
        if all_frames_root is not None:
            base = Path(all_frames_root)
            self.all_frames_root = base / "JPEGImages" if (base / "JPEGImages").is_dir() else base
            if not self.all_frames_root.is_dir():
                raise InputError(f"{base}: all-frames folder not found")
        self.ground_truth_root = (_folder(Path(ground_truth_root), "ground-truth folder not found")
                                  if ground_truth_root is not None else None)
        self.meta = self._read_meta(self.split_dir / "meta.json")
        self.names = sorted(self.meta)

    @staticmethod
    def _read_meta(path: Path) -> dict[str, dict[int, list[str]]]:
        """meta.json -> {video: {object id: [frame names]}}, validated."""
        if not path.is_file():
            raise InputError(f"{path}: meta.json not found")
        try:
            meta = {vid: {int(k): [str(f) for f in v["frames"]] for k, v in info["objects"].items()}
                    for vid, info in json.loads(path.read_text())["videos"].items()}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise InputError(f"{path}: not a YouTube-VOS meta.json ({type(err).__name__}: {err})") from None
        return meta

    def __getitem__(self, name: str) -> Sequence:
        if name not in self.meta:
            raise InputError(f"{self.split_dir / 'meta.json'}: video {name!r} not listed")
        objects = {obj: frames for obj, frames in self.meta[name].items() if frames}
        frames_dir = (self.all_frames_root or self.images_root) / name
        frame_paths = list_frames(frames_dir, (".jpg", ".jpeg"))
        frame_names = [p.stem for p in frame_paths]
        known = set(frame_names)
        to_save = sorted({f for frames in objects.values() for f in frames}, key=natural_key)
        missing = [f for f in to_save if f not in known]
        if missing:
            raise InputError(f"{frames_dir}: frames listed in meta.json are missing: {missing[:5]}")
        masks = pngs_by_stem(self.masks_root / name)
        if not masks:
            raise InputError(f"{self.masks_root / name}: no annotation PNGs")
        first_frame = {obj: min(frames, key=natural_key) for obj, frames in sorted(objects.items())}
        for obj, first in first_frame.items():
            if first not in masks:
                raise InputError(f"{self.masks_root / name / (first + '.png')}: annotation for object {obj} not found")
        annotations = {f: masks[f] for f in sorted(set(first_frame.values()), key=natural_key)}
        gt = pngs_by_stem(self.ground_truth_root / name) if self.ground_truth_root is not None else {}
        return Sequence(
            name=name,
            frames_dir=frames_dir,
            frame_paths=frame_paths,
            frame_names=frame_names,
            annotations=annotations,
            object_ids=sorted(objects),
            object_first_frame=first_frame,
            frames_to_save=to_save,
            size=_image_size(next(iter(annotations.values()))),
            ground_truth=gt,
        )


# ----------------------------------------------------------------------------- folders


class FolderDataset(_Sequences):
    """One sequence from any folder of frames plus one mask (a user's own video).

    mask_frame: name (stem) or index of the frame the mask belongs to (default: the first).
    object_ids are the ids of a palette (index) mask; they are left empty for grayscale or RGB
    masks, which are often anti-aliased and which only the engine's mask parser can interpret.
    """

    def __init__(self, frames_folder: str | os.PathLike, mask_path: str | os.PathLike, mask_frame: str | int = 0):
        self.frames_folder = Path(frames_folder)
        self.mask_path = Path(mask_path)
        self.mask_frame = mask_frame
        if not self.mask_path.is_file():
            raise InputError(f"{self.mask_path}: mask file not found")
        self.names = [self.frames_folder.name]

    def __getitem__(self, name: str) -> Sequence:
        if name != self.names[0]:
            raise InputError(f"{self.frames_folder}: only sequence {self.names[0]!r} exists")
        frame_paths = list_frames(self.frames_folder)
        frame_names = [p.stem for p in frame_paths]
        if is_integer(self.mask_frame):
            if not -len(frame_names) <= self.mask_frame < len(frame_names):
                raise InputError(f"{self.frames_folder}: mask frame index {self.mask_frame} out of range ({len(frame_names)} frames)")
            first = frame_names[self.mask_frame]
        else:
            first = str(self.mask_frame)
            if first not in frame_names:
                raise InputError(f"{self.frames_folder}: no frame named {first!r} for the mask")
        with Image.open(self.mask_path) as image:
            mode = image.mode
        # grayscale/RGB masks may be anti-aliased: the engine's mask parser decides
        object_ids = ([int(v) for v in np.unique(read_label_png(self.mask_path)) if v not in (0, 255)]
                      if mode == "P" else [])
        return _all_given_at(name, self.frames_folder, frame_paths, self.mask_path, object_ids,
                             _image_size(frame_paths[0]), given_at=first)
