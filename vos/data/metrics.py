"""DAVIS video object segmentation metrics: J (region IoU), F (boundary F-measure), Mean/Recall/Decay.

The numbers must be comparable with published results, so every rule below follows the official
DAVIS evaluation (github.com/davisvideochallenge/davis2017-evaluation, ``davis2017/metrics.py``,
``utils.py``, ``davis.py``, ``results.py``, ``evaluation.py`` and ``evaluation_method.py``),
re-implemented here with numpy/OpenCV, vectorised over frames and without scikit-image:

* J = |S & G| / |S | G| per frame; 1 when the union is empty.
* F: boundary maps by ``boundary_map`` (the official ``seg2bmap``), tolerance
  ``ceil(bound_th * sqrt(H^2 + W^2))`` pixels (bound_th >= 1 is taken as pixels), both maps
  dilated with the same disk as ``skimage.morphology.disk``; precision/recall with the official
  empty-map rules; F = 2PR / (P + R), 0 when P + R = 0.
* Mean = nanmean, Recall = fraction of frames > 0.5, Decay = mean of the first of four equal
  time bins minus the mean of the last one. The official code casts the bin indices to uint8,
  which wraps past 255 frames; here they are plain integers (identical results up to 255 frames).
* Semi-supervised protocol: objects 1..max id of GT frame 0; the first and the last frames are
  not scored; global figures are plain means over all objects of all sequences.

Void label (255). DAVIS 2017 ground truth may contain 255 ("void"). The official tool turns 255
into background in the ground truth *before* it derives its void mask from the already binary
object masks, so in practice no pixel is ever excluded; it also turns 255 into background in
predictions. ``evaluate_sequence`` does exactly the same, so its scores match the official ones.
``db_eval_iou``/``db_eval_boundary`` still accept an explicit ``void`` mask for callers that want
the (never used) exclusion semantics of the official low-level functions.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Union

import cv2
import numpy as np

from seggpt.errors import InputError
from seggpt.io import atomic_write_text

__all__ = [
    "MetricsError",
    "disk",
    "boundary_map",
    "db_eval_iou",
    "db_eval_boundary",
    "db_statistics",
    "evaluate_sequence",
    "summarize",
    "EvalJob",
    "evaluate_many",
    "write_official_csvs",
    "GLOBAL_COLUMNS",
    "PER_SEQUENCE_COLUMNS",
]

#: Column order of the official ``global_results-<split>.csv``.
GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
#: Column order of the official ``per-sequence_results-<split>.csv``.
PER_SEQUENCE_COLUMNS = ("Sequence", "J-Mean", "F-Mean")

ArrayOrLoader = Union[np.ndarray, Callable[[], np.ndarray]]
# Frames scored at once by evaluate_sequence: bounds memory on long videos (480p: ~60 MB).
_CHUNK_FRAMES = 64


#: the name of this module's errors (inputs that cannot be scored: shape mismatch, too few frames, bad
#: labels): an alias of InputError, not another class
MetricsError = InputError


# ----------------------------------------------------------------------------- low level


def disk(radius: float) -> np.ndarray:
    """Disk structuring element identical to ``skimage.morphology.disk(radius)`` (uint8).

    Offsets run over ``arange(-radius, radius + 1)``, exactly as scikit-image builds them, so a
    fractional radius gives the same (odd-sized) element as the official tool would use.
    """
    offsets = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(offsets, offsets)
    return ((xx**2 + yy**2) <= radius**2).astype(np.uint8)


def boundary_map(masks: np.ndarray) -> np.ndarray:
    """One-pixel boundaries of binary masks, (..., H, W) -> bool, as the official ``seg2bmap``.

    A pixel is boundary where it differs from its east, south or south-east neighbour, with
    outside-the-image neighbours counted as background. Official special cases kept verbatim:
    the last row only looks east, the last column only looks south, and the bottom-right pixel is
    never boundary. (The official resize branch is unreachable from the F-measure, which always
    asks for the native size, so there is none here.)
    """
    seg = np.asarray(masks).astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[..., :, :-1] = seg[..., :, 1:]
    south[..., :-1, :] = seg[..., 1:, :]
    south_east[..., :-1, :-1] = seg[..., 1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[..., -1, :] = seg[..., -1, :] ^ east[..., -1, :]
    bmap[..., :, -1] = seg[..., :, -1] ^ south[..., :, -1]
    bmap[..., -1, -1] = False
    return bmap


def _as_frames(name: str, array: np.ndarray) -> np.ndarray:
    """Promote (H, W) to (1, H, W) and check the rank, so all metrics work frame-wise."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise InputError(f"{name} must be (T, H, W) or (H, W), got shape {array.shape}")
    return array.astype(bool, copy=False)


def _check_inputs(annotation, segmentation, void):
    gt = _as_frames("annotation", annotation)
    seg = _as_frames("segmentation", segmentation)
    if gt.shape != seg.shape:
        raise InputError(f"annotation {gt.shape} and segmentation {seg.shape} shapes differ")
    if void is None:
        return gt, seg, None
    void = _as_frames("void", void)
    if void.shape != gt.shape:
        raise InputError(f"void mask {void.shape} and annotation {gt.shape} shapes differ")
    return gt, seg, void


def db_eval_iou(annotation: np.ndarray, segmentation: np.ndarray, void: np.ndarray | None = None) -> np.ndarray:
    """Region similarity J per frame: (T,H,W) bool x2 -> (T,) float64 ((H,W) counts as T = 1).

    Pixels where ``void`` is true are left out of both intersection and union. An empty union
    (object absent from both masks) scores 1, as in the official code.
    """
    gt, seg, void = _check_inputs(annotation, segmentation, void)
    keep = ~void if void is not None else True
    inter = np.count_nonzero((gt & seg) & keep, axis=(1, 2))
    union = np.count_nonzero((gt | seg) & keep, axis=(1, 2))
    return np.divide(inter, union, out=np.ones(gt.shape[0], dtype=np.float64), where=union > 0)


def _tolerance_pixels(bound_th: float, height: int, width: int) -> float:
    """Official tolerance: ``bound_th`` pixels if >= 1, else ceil(bound_th * image diagonal)."""
    return float(bound_th) if bound_th >= 1 else float(np.ceil(bound_th * np.linalg.norm((height, width))))


def db_eval_boundary(
    annotation: np.ndarray,
    segmentation: np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = 0.008,
) -> np.ndarray:
    """Boundary F-measure per frame: (T,H,W) bool x2 -> (T,) float64 ((H,W) counts as T = 1).

    Empty-map rules (official): no predicted and no GT boundary -> F = 1; only one of them empty
    -> F = 0 (precision/recall 1/0 or 0/1). Void pixels are cleared from both masks before their
    boundaries are taken. Boundary maps and counts are vectorised; the dilation runs per frame
    with OpenCV (faster than one multi-channel call).
    """
    gt, seg, void = _check_inputs(annotation, segmentation, void)
    if void is not None:
        gt = gt & ~void
        seg = seg & ~void
    _, height, width = gt.shape
    kernel = disk(_tolerance_pixels(bound_th, height, width))
    seg_b = boundary_map(seg)
    gt_b = boundary_map(gt)
    n_seg = np.count_nonzero(seg_b, axis=(1, 2))
    n_gt = np.count_nonzero(gt_b, axis=(1, 2))
    seg_match = np.zeros(gt.shape[0], dtype=np.int64)
    gt_match = np.zeros(gt.shape[0], dtype=np.int64)
    for t in np.flatnonzero((n_seg > 0) & (n_gt > 0)):  # other frames are decided by counts alone
        seg_dil = cv2.dilate(seg_b[t].view(np.uint8), kernel).view(bool)
        gt_dil = cv2.dilate(gt_b[t].view(np.uint8), kernel).view(bool)
        seg_match[t] = np.count_nonzero(seg_b[t] & gt_dil)
        gt_match[t] = np.count_nonzero(gt_b[t] & seg_dil)
    both = (n_seg > 0) & (n_gt > 0)
    precision = np.where(n_seg == 0, 1.0, 0.0)
    recall = np.where(n_gt == 0, 1.0, 0.0)
    precision[both] = seg_match[both] / n_seg[both].astype(np.float64)
    recall[both] = gt_match[both] / n_gt[both].astype(np.float64)
    total = precision + recall
    return np.divide(2 * precision * recall, total, out=np.zeros(gt.shape[0], dtype=np.float64), where=total > 0)


def db_statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    """(Mean, Recall, Decay) of a per-frame score series, official definitions, no uint8 bug.

    Mean = nanmean; Recall = mean(x > 0.5) over all frames (NaN counts as a miss, as official);
    Decay = nanmean(bin 0) - nanmean(bin 3) with bin edges
    ``round(linspace(1, T, 5) + 1e-10) - 1`` and bin i = x[edge_i : edge_{i+1} + 1] (the
    official bins share their edge frames). An empty series gives three NaNs.
    """
    values = np.asarray(per_frame, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return math.nan, math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(values))
        recall = float(np.mean(values > 0.5))
        edges = (np.round(np.linspace(1, values.size, 5) + 1e-10) - 1).astype(np.int64)
        first = values[edges[0] : edges[1] + 1]
        last = values[edges[3] : edges[4] + 1]
        decay = float(np.nanmean(first) - np.nanmean(last))
    return mean, recall, decay


# ----------------------------------------------------------------------------- sequences


def evaluate_sequence(
    gt_labels: np.ndarray,
    pred_labels: np.ndarray,
    object_ids: list[int] | None = None,
    skip_first_last: bool = True,
    void_label: int | None = 255,
    bound_th: float = 0.008,
) -> dict[int, dict[str, np.ndarray]]:
    """Score one sequence of label maps: {object_id: {"J": (T',) array, "F": (T',) array}}.

    gt_labels, pred_labels: (T, H, W) integer label maps at the same size (0 = background).
    object_ids: objects to score; default ids 1..max id in GT frame 0 (semi-supervised DAVIS),
    also when some of them are absent there. A predicted id missing from a frame is an empty
    mask; predicted ids outside ``object_ids`` are ignored (the official tool would refuse them).
    skip_first_last: leave out the first and last frames (semi-supervised DAVIS); T' = T - 2.
    void_label: pixels with this value count as background in GT and prediction, exactly as the
    official tool does (see the module docstring); None keeps the value as an ordinary id.
    """
    gt = np.asarray(gt_labels)
    pred = np.asarray(pred_labels)
    if gt.ndim != 3 or pred.ndim != 3:
        raise InputError(f"label maps must be (T, H, W): got GT {gt.shape}, prediction {pred.shape}")
    if gt.shape != pred.shape:
        raise InputError(f"GT {gt.shape} and prediction {pred.shape} shapes differ (predictions must be at GT size)")
    for name, arr in (("GT", gt), ("prediction", pred)):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise InputError(f"{name} labels must be integers, got dtype {arr.dtype}")
    if skip_first_last and gt.shape[0] < 3:
        raise InputError(f"need at least 3 frames to skip the first and last, got {gt.shape[0]}")
    first_frame = gt[0] if void_label is None else np.where(gt[0] == void_label, 0, gt[0])
    if object_ids is None:
        object_ids = list(range(1, int(first_frame.max()) + 1))
    object_ids = [int(obj) for obj in object_ids]
    start, stop = (1, gt.shape[0] - 1) if skip_first_last else (0, gt.shape[0])
    scores: dict[int, dict[str, list[np.ndarray]]] = {obj: {"J": [], "F": []} for obj in object_ids}
    # Chunks of frames bound the temporaries (per-object masks, boundary maps) for long videos.
    for chunk_start in range(start, stop, _CHUNK_FRAMES):
        chunk = slice(chunk_start, min(stop, chunk_start + _CHUNK_FRAMES))
        gt_chunk, pred_chunk = gt[chunk], pred[chunk]
        if void_label is not None:
            gt_chunk = np.where(gt_chunk == void_label, 0, gt_chunk)
            pred_chunk = np.where(pred_chunk == void_label, 0, pred_chunk)
        for obj in object_ids:
            gt_obj = gt_chunk == obj
            pred_obj = pred_chunk == obj
            scores[obj]["J"].append(db_eval_iou(gt_obj, pred_obj))
            scores[obj]["F"].append(db_eval_boundary(gt_obj, pred_obj, bound_th=bound_th))
    return {obj: {key: np.concatenate(parts) if parts else np.zeros(0) for key, parts in per_obj.items()}
            for obj, per_obj in scores.items()}


def summarize(
    results: dict[str, dict[int, dict[str, np.ndarray]]],
) -> tuple[dict[str, float], list[dict[str, object]]]:
    """Global figures and per-object rows, as the official ``evaluation_method.py`` computes them.

    results: {sequence name: evaluate_sequence(...) output}. Every object of every sequence is one
    sample; global J-Mean etc. are plain means over those samples (not per sequence first),
    J&F-Mean = (J-Mean + F-Mean) / 2. All values are fractions in [0, 1] (Decay may be negative).
    Rows are {"Sequence": f"{seq}_{obj}", "J-Mean", "F-Mean"} in input order, objects by id.
    """
    stats: dict[str, list[float]] = {key: [] for key in GLOBAL_COLUMNS[1:]}
    rows: list[dict[str, object]] = []
    for seq_name, objects in results.items():
        for obj in sorted(objects):
            j_m, j_r, j_d = db_statistics(objects[obj]["J"])
            f_m, f_r, f_d = db_statistics(objects[obj]["F"])
            for key, value in zip(GLOBAL_COLUMNS[1:], (j_m, j_r, j_d, f_m, f_r, f_d)):
                stats[key].append(value)
            rows.append({"Sequence": f"{seq_name}_{obj}", "J-Mean": j_m, "F-Mean": f_m})
    if not rows:
        raise InputError("no objects to summarize (every sequence had an empty object list)")
    glob = {key: float(np.mean(values)) for key, values in stats.items()}
    glob = {"J&F-Mean": (glob["J-Mean"] + glob["F-Mean"]) / 2.0, **glob}
    return glob, rows


@dataclass(frozen=True)
class EvalJob:
    """One sequence to score in ``evaluate_many``.

    ``gt`` and ``pred`` are (T,H,W) label arrays or zero-argument callables returning them. Use
    callables (module-level functions, ``functools.partial``, bound methods of picklable objects)
    so that worker processes read their own files instead of receiving pickled videos.
    """

    name: str
    gt: ArrayOrLoader
    pred: ArrayOrLoader
    object_ids: tuple[int, ...] | None = None
    skip_first_last: bool = True
    void_label: int | None = 255
    bound_th: float = 0.008


def _load(source: ArrayOrLoader) -> np.ndarray:
    return source() if callable(source) else np.asarray(source)


def _run_job(job: EvalJob) -> tuple[str, dict[int, dict[str, np.ndarray]]]:
    """Worker entry point: module level so that spawned processes can import it."""
    gt = _load(job.gt)
    pred = _load(job.pred)
    try:
        return job.name, evaluate_sequence(gt, pred, None if job.object_ids is None else list(job.object_ids),
                                           skip_first_last=job.skip_first_last, void_label=job.void_label,
                                           bound_th=job.bound_th)
    except InputError as err:
        raise InputError(f"sequence {job.name}: {err}") from None


def evaluate_many(jobs: Iterable[EvalJob], processes: int = 1) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """Score many sequences, in parallel processes when ``processes`` > 1; results in input order.

    Workers are started with the "spawn" method (safe next to threads, CUDA and Ray, and the
    only method on macOS/Windows), so callers must guard their entry point with
    ``if __name__ == "__main__"`` as usual. Duplicate sequence names are rejected.
    """
    jobs = list(jobs)
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        raise InputError(f"duplicate sequence names in evaluate_many: {sorted({n for n in names if names.count(n) > 1})}")
    if processes <= 1 or len(jobs) <= 1:
        return dict(_run_job(job) for job in jobs)
    with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=get_context("spawn")) as pool:
        return dict(pool.map(_run_job, jobs))


# ----------------------------------------------------------------------------- CSV output


def _format_cell(value: object) -> str:
    """Official formatting: pandas ``to_csv(float_format="%.3f")`` (NaN becomes an empty cell)."""
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else "%.3f" % value
    return str(value)


def _csv_text(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(header))
    writer.writerows([_format_cell(v) for v in row] for row in rows)
    return buffer.getvalue()


def write_official_csvs(
    folder: str | os.PathLike,
    split: str,
    global_results: dict[str, float],
    per_sequence: list[dict[str, object]],
) -> tuple[Path, Path]:
    """Write ``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv`` atomically.

    Same names, columns, order and "%.3f" formatting as the official ``evaluation_method.py``, so
    tools that parse those files keep working. Returns the two paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: output folder does not exist")
    missing = [key for key in GLOBAL_COLUMNS if key not in global_results]
    if missing:
        raise InputError(f"global results lack {missing}")
    global_path = folder / f"global_results-{split}.csv"
    seq_path = folder / f"per-sequence_results-{split}.csv"
    atomic_write_text(global_path, _csv_text(GLOBAL_COLUMNS, [[float(global_results[k]) for k in GLOBAL_COLUMNS]]))
    seq_rows = [[row["Sequence"], float(row["J-Mean"]), float(row["F-Mean"])] for row in per_sequence]
    atomic_write_text(seq_path, _csv_text(PER_SEQUENCE_COLUMNS, seq_rows))
    return global_path, seq_path
