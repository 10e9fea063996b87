"""One validator per dataset, shared by ``benchmarks.vos`` and ``benchmarks.evaluate``; partial scores said so.

A benchmark scores every sequence it was asked for, or says which it did not (a DAVIS copy with
one annotation missing once printed "2/2 sequences ok" while its global J&F was one sequence alone).
The rules, true to each dataset:

* **DAVIS** annotates every frame: each JPEG has its annotation PNG and each PNG its JPEG (an extra
  JPEG, a missing annotation and a missing JPEG are all reported), every image is readable and of the
  sequence's size, and the first frame's annotation holds an object (its masks are the prompts). An
  empty mask on a later frame is real (the object is out of view) and is scored as such.
* **YouTube-VOS** annotates only the frame where each object first appears: every frame meta.json
  lists has a JPEG, each object's first listed frame has an annotation that holds that object, every
  annotation PNG has its JPEG and the frames' size. meta.json lists every video of its split, so a
  video folder in JPEGImages or Annotations that it does not list is a sequence of the split with a
  problem (`split_names`), never dropped.

`problems(bench, names)` gives {sequence: one-line reason}; `benchmarks.vos` runs the others and
reports these as failed (exit code 1, figures marked partial), `benchmarks.evaluate` refuses (exit
code 2, nothing written). `write_scores` writes the official CSVs when every sequence was scored, and
otherwise ``*-PARTIAL.csv`` files whose global row names what is missing: the official evaluation
tools reuse a ``global_results-<split>.csv`` they find, so a partial one must not carry that name.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence as Seq

import numpy as np

from seggpt.errors import InputError
from seggpt.io import atomic_write_text, read_label_png
from seggpt.masks import MaskError
from vos.data.datasets import DatasetError
from vos.io.video import natural_key


__all__ = ["split_names", "problems", "sequence_loaders", "refuse_problems", "write_scores", "partial_note", "benchmark_inputs"]

_JPEG = (".jpg", ".jpeg")


def _image_size(path: Path) -> tuple[int, int] | str:
    """(H, W) from the header, or a one-line reason it cannot be read."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Exception as err:  # noqa: BLE001 - any failure is a reason for the report
        return f"{path}: not a readable image ({type(err).__name__})"
    return height, width


def _files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
            if p.is_file() and p.suffix.lower() in suffixes}


def _first(names: Seq[str], n: int = 3) -> str:
    names = sorted(names, key=natural_key)
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def _check_sizes(paths: Seq[Path], size: tuple[int, int]) -> str | None:
    for path in paths:
        got = _image_size(path)
        if isinstance(got, str):
            return got
        if got != size:
            return f"{path}: {got[1]}x{got[0]}, the sequence's frames are {size[1]}x{size[0]}"
    return None


def davis_problem(reader: Any, name: str) -> str | None:
    """Why a DAVIS sequence cannot be run and scored, or None."""
    images, masks = Path(reader.images_root) / name, Path(reader.masks_root) / name
    if not images.is_dir():
        return f"{images}: frame folder not found"
    if not masks.is_dir():
        return f"{masks}: annotation folder not found"
    jpgs, pngs = _files(images, _JPEG), _files(masks, (".png",))
    if not jpgs:
        return f"{images}: no JPEG frames"
    if unannotated := set(jpgs) - set(pngs):
        return (f"{masks}: no annotation for {len(unannotated)} of {len(jpgs)} frames ({_first(unannotated)}); "
                f"DAVIS annotates every frame")
    if no_frame := set(pngs) - set(jpgs):
        return f"{images}: no JPEG for {len(no_frame)} annotated frame(s) ({_first(no_frame)})"
    order = sorted(jpgs, key=natural_key)
    size = _image_size(jpgs[order[0]])
    if isinstance(size, str):
        return size
    if bad := _check_sizes([jpgs[n] for n in order] + [pngs[n] for n in order], size):
        return bad
    first = pngs[order[0]]
    try:
        labels = read_label_png(first, binary=reader.year == 2016)
    except (DatasetError, MaskError) as err:
        return str(err)
    if not np.any((labels > 0) & (labels != 255)):
        return f"{first}: the first frame's annotation holds no object (its masks are the prompts)"
    return None


def ytvos_unlisted(reader: Any) -> list[str]:
    """The videos with a folder in JPEGImages or Annotations that meta.json does not list."""
    folders = {p.name for root in (Path(reader.images_root), Path(reader.masks_root)) if root.is_dir()
               for p in root.iterdir() if p.is_dir()}
    return sorted(folders - set(reader.names))


def split_names(bench: Any) -> list[str]:
    """Every sequence of the split, what a benchmark is asked for when no names are given: the reader's
    (DAVIS: ImageSets; YouTube-VOS: meta.json), and for YouTube-VOS the unlisted video folders too, so
    that `problems` reports them instead of a run that silently scores fewer (module docstring)."""
    names = list(bench.reader.names)
    return names if bench.kind == "davis" else sorted({*names, *ytvos_unlisted(bench.reader)})


def ytvos_problem(reader: Any, name: str) -> str | None:
    """Why a YouTube-VOS video cannot be run, or None."""
    if name not in reader.names:
        return (f"{Path(reader.split_dir) / 'meta.json'}: video {name!r} has frames or annotations but is not "
                f"listed (meta.json lists every video of the split)")
    try:
        sequence = reader[name]  # the listed frames exist, each object's first annotation file exists
    except (DatasetError, MaskError) as err:
        return str(err)
    frames = _files(Path(sequence.frames_dir), _JPEG)
    masks_dir = Path(reader.masks_root) / name
    pngs = _files(masks_dir, (".png",)) if masks_dir.is_dir() else {}
    if no_frame := set(pngs) - set(frames):
        return f"{sequence.frames_dir}: no JPEG for {len(no_frame)} annotated frame(s) ({_first(no_frame)})"
    size = tuple(sequence.size)
    if bad := _check_sizes([frames[n] for n in sequence.frames_to_save] + list(pngs.values()), size):
        return bad
    for frame, path in sequence.annotations.items():
        try:
            labels = read_label_png(path)
        except (DatasetError, MaskError) as err:
            return str(err)
        if missing := [o for o in sequence.objects_first_given_at(frame) if not np.any(labels == o)]:
            return (f"{path}: object {missing[0]} first appears here by meta.json, but the annotation holds no "
                    f"pixel of it")
    return None


def problems(bench: Any, names: Seq[str]) -> dict[str, str]:
    """{sequence: reason} for every sequence of `names` that cannot be run (and, with ground truth, scored)."""
    check = davis_problem if bench.kind == "davis" else ytvos_problem
    found = {}
    for name in names:
        try:
            reason = check(bench.reader, name)
        except OSError as err:
            reason = f"{name}: {err.strerror or err}"
        if reason:
            found[name] = reason.strip().splitlines()[0]
    return found


def _refuse(reason: str):
    raise InputError(reason)


def sequence_loaders(bench: Any, names: Seq[str], found: Mapping[str, str]) -> list[tuple[str, Callable[[], Any]]]:
    """The engines' (name, load) pairs: a sequence with a problem fails at load with its reason."""
    return [(n, functools.partial(_refuse, found[n]) if n in found else functools.partial(bench.reader.__getitem__, n))
            for n in names]


def refuse_problems(found: Mapping[str, str], root: str | os.PathLike) -> None:
    """benchmarks.evaluate: one line listing the sequences that cannot be scored (InputError, exit 2)."""
    if found:
        items = [f"{name} ({reason})" for name, reason in list(found.items())[:3]]
        more = f" (+{len(found) - 3} more)" if len(found) > 3 else ""
        raise InputError(f"{root}: cannot score {len(found)} sequence(s): {'; '.join(items)}{more}")


def partial_note(total: int, not_scored: Mapping[str, str]) -> str:
    return (f"PARTIAL: the global figures cover {total - len(not_scored)} of {total} sequences; not scored: "
            f"{', '.join(not_scored)}")


def write_scores(folder: str | os.PathLike, split: str, scores: dict, names: Seq[str],
                 not_scored: Mapping[str, str]) -> tuple[dict | None, list[Path]]:
    """Official CSVs when every sequence of `names` was scored, ``-PARTIAL`` ones otherwise (module docstring).

    Removes the other kind's files of an earlier run of ours (unchanged since), so a folder of ours never
    holds both.
    """
    from seggpt.outputs import written_by_us
    from vos.data.metrics import GLOBAL_COLUMNS, summarize, write_official_csvs

    folder = Path(folder)
    partial = bool(not_scored) or any(n not in scores for n in names)
    official = [folder / f"global_results-{split}.csv", folder / f"per-sequence_results-{split}.csv"]
    marked = [folder / f"global_results-{split}-PARTIAL.csv", folder / f"per-sequence_results-{split}-PARTIAL.csv"]
    for stale in (official if partial else marked):
        if written_by_us(folder, stale.name):  # ours, unchanged: never a user's file of that name
            stale.unlink(missing_ok=True)
    if not scores:
        return None, []
    global_results, rows = summarize(scores)
    paths = list(write_official_csvs(folder, f"{split}-PARTIAL" if partial else split, global_results, rows))
    if partial:
        missing = [n for n in names if n not in scores]
        header = [*GLOBAL_COLUMNS, "Partial", "Not scored"]
        values = [f"{float(global_results[k]):.3f}" for k in GLOBAL_COLUMNS]
        values += [f"{len(names) - len(missing)} of {len(names)} sequences", " ".join(missing)]
        atomic_write_text(paths[0], ",".join(header) + "\n" + ",".join(values) + "\n")
    return global_results, paths


def benchmark_inputs(bench: Any) -> dict[str, Any]:
    """The folders a benchmark reads (label -> path), for `seggpt.outputs.check_not_inputs`."""
    reader = bench.reader
    inputs: dict[str, Any] = {label: getattr(reader, attr, None) for label, attr in (  # None: not read
        ("dataset images", "images_root"), ("dataset annotations", "masks_root"),
        ("all-frames folder", "all_frames_root"), ("ground truth", "ground_truth_root"))}
    root = getattr(reader, "root", None)
    if root is not None and (Path(root) / "ImageSets").is_dir():  # DAVIS: the split lists it reads
        inputs["dataset split lists"] = Path(root) / "ImageSets"
    return inputs


#: bookkeeping and reports a benchmark run writes beside the sequence folders
_RUN_FILES = [".progress/", ".progress", ".progress.jsonl", "global_results-*.csv", "per-sequence_results-*.csv",
              "benchmark-*.json", "submission.zip"]


def claim_output(args: Any, bench: Any, weights: str | None, names: Seq[str]):
    """benchmarks.vos's --out: never an input (dataset images/annotations, weights, config), never a mix of runs.

    An earlier run of ours is emptied first, or kept with --resume; a folder holding any other file is refused.
    Checked now; `.claim()` of the result empties and writes the manifest (once the method is ready).
    """
    from seggpt.outputs import check_not_inputs, claim_folder
    from seggpt.weights_file import weights_input
    from vos.io.outputs import PendingClaim

    inputs = {**benchmark_inputs(bench), "weights": weights_input(weights), "config": getattr(args, "config", None)}
    check_not_inputs({"--out": args.out}, inputs, folders=("--out",))
    seqs = [f"{n}/" for n in names] if bench.kind == "davis" else ["Annotations/"]
    options = dict(overwrite=bool(getattr(args, "overwrite", False)), resume=bool(getattr(args, "resume", False)),
                   patterns=[*seqs, *_RUN_FILES])
    claim_folder(args.out, "benchmarks.vos", dry_run=True, **options)
    return PendingClaim([(args.out, "benchmarks.vos", options)])


__all__ += ["claim_output"]
