"""vos.data.metrics against hand-computed cases, vos-benchmark and real DAVIS ground truth."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
from PIL import Image

from seggpt.errors import InputError
from vos.data.datasets import DAVIS
from vos.data.metrics import (EvalJob, boundary_map, db_eval_boundary, db_eval_iou, db_statistics, disk,
    evaluate_many, evaluate_sequence, summarize, write_official_csvs)
from vos.data.synthetic import make_clip
from helpers import DATA, require

DAVIS16_VAL = DATA / "davis2016-val-480p"


# ----------------------------------------------------------------------------- helpers


def _naive_boundary(seg: np.ndarray) -> np.ndarray:
    """Pixel-by-pixel statement of the DAVIS seg2bmap rule, as an independent reference."""
    h, w = seg.shape
    out = np.zeros_like(seg, dtype=bool)
    for y in range(h):
        for x in range(w):
            east = seg[y, x + 1] if x + 1 < w else False
            south = seg[y + 1, x] if y + 1 < h else False
            south_east = seg[y + 1, x + 1] if (x + 1 < w and y + 1 < h) else False
            if y == h - 1 and x == w - 1:
                out[y, x] = False
            elif y == h - 1:
                out[y, x] = seg[y, x] != east
            elif x == w - 1:
                out[y, x] = seg[y, x] != south
            else:
                out[y, x] = seg[y, x] != east or seg[y, x] != south or seg[y, x] != south_east
    return out


def _vos_benchmark_means(gt: np.ndarray, pred: np.ndarray) -> tuple[dict, dict]:
    """Per-object J and F means (fractions) from vos-benchmark, frames 1..T-2 as DAVIS does."""
    evaluator_mod = pytest.importorskip("vos_benchmark.evaluator")
    evaluator = evaluator_mod.Evaluator()
    for t in range(1, len(gt) - 1):
        evaluator.feed_frame(pred[t], gt[t])
    iou, boundary = evaluator.conclude()
    return {k: v / 100 for k, v in iou.items()}, {k: v / 100 for k, v in boundary.items()}


def _perturbations(gt: np.ndarray) -> dict[str, np.ndarray]:
    """Typical prediction errors of a binary/label sequence: shift, erosion, dilation, lost frames."""
    kernel = np.ones((5, 5), np.uint8)
    shifted = np.roll(gt, (3, -4), axis=(1, 2))
    eroded = np.stack([cv2.erode(f, kernel, iterations=2) for f in gt])
    dilated = np.stack([cv2.dilate(f, kernel, iterations=3) for f in gt])
    emptied = gt.copy()
    emptied[[2, 5, 6]] = 0
    mixed = np.roll(eroded, (-6, 2), axis=(1, 2))
    mixed[4] = 0
    return {"shifted": shifted, "eroded": eroded, "dilated": dilated, "emptied": emptied, "mixed": mixed}


def _load_davis16(seq: str, frames: int) -> np.ndarray:
    paths = sorted(require(DAVIS16_VAL / "Annotations" / "480p" / seq).glob("*.png"))[:frames]
    return np.stack([(np.array(Image.open(p)) > 0).astype(np.uint8) for p in paths])


# ----------------------------------------------------------------------------- low level


@pytest.mark.parametrize("radius", [0, 1, 2.0, 3, 7.0, 8.0, 12])
def test_disk_equals_skimage(radius):
    skimage_morphology = pytest.importorskip("skimage.morphology")
    np.testing.assert_array_equal(disk(radius), skimage_morphology.disk(radius))


def test_boundary_map_matches_pixelwise_rule():
    rng = np.random.default_rng(0)
    for _ in range(20):
        seg = rng.random((7, 9)) < rng.uniform(0.2, 0.8)
        np.testing.assert_array_equal(boundary_map(seg), _naive_boundary(seg))
    stack = rng.random((4, 6, 5)) < 0.5
    np.testing.assert_array_equal(boundary_map(stack), np.stack([_naive_boundary(s) for s in stack]))


def _image(*boxes) -> np.ndarray:
    """A 10x10 boolean image, True in each box (an index such as np.s_[2, :3])."""
    image = np.zeros((10, 10), bool)
    for box in boxes:
        image[box] = True
    return image


def test_boundary_of_objects_touching_the_image_border():
    top_left = _image(np.s_[:3, :3])
    # nothing along the image border itself
    np.testing.assert_array_equal(boundary_map(top_left), _image(np.s_[2, :3], np.s_[:3, 2]))

    bottom_right = _image(np.s_[7:, 7:])
    # the row above, incl. the last column (south rule); the column to the left, incl. the last row (east rule)
    np.testing.assert_array_equal(boundary_map(bottom_right), _image(np.s_[6, 6:], np.s_[7:, 6]))
    assert boundary_map(bottom_right).sum() == 7

    np.testing.assert_array_equal(boundary_map(_image(np.s_[:, -1])), _image(np.s_[:, -2]))  # the last column


def test_hand_computed_empty_cases():
    obj = np.zeros((1, 20, 20), bool)
    obj[0, 5:10, 5:12] = True
    empty = np.zeros_like(obj)
    # empty prediction, empty ground truth, both empty, both the object
    for gt, pred, score in ((obj, empty, 0.0), (empty, obj, 0.0), (empty, empty, 1.0), (obj, obj, 1.0)):
        assert db_eval_iou(gt, pred).tolist() == [score], (gt.any(), pred.any())
        assert db_eval_boundary(gt, pred).tolist() == [score], (gt.any(), pred.any())


def test_hand_computed_one_pixel_objects():
    # 10x10 image: tolerance ceil(0.008 * 14.14) = 1 px, a cross-shaped disk.
    gt = np.zeros((3, 10, 10), bool)
    pred = np.zeros_like(gt)
    gt[:, 2, 2] = True
    pred[0, 2, 2] = True  # exact
    pred[1, 2, 3] = True  # one pixel off: no overlap, boundaries within tolerance
    pred[2, 2, 4] = True  # two pixels off: half of each boundary matched
    np.testing.assert_allclose(db_eval_iou(gt, pred), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(db_eval_boundary(gt, pred), [1.0, 1.0, 0.5])


def test_hand_computed_border_objects_and_tolerance():
    gt = np.zeros((1, 10, 10), bool)
    gt[0, :, -1:] = True  # last column: boundary is column 8
    pred = np.zeros_like(gt)
    pred[0, :, -2:] = True  # last two columns: boundary is column 7, 1 px away
    np.testing.assert_allclose(db_eval_iou(gt, pred), [0.5])
    np.testing.assert_allclose(db_eval_boundary(gt, pred), [1.0])
    np.testing.assert_allclose(db_eval_boundary(gt, pred, bound_th=0), [0.0])  # no tolerance
    far = np.zeros_like(gt)
    far[0, :, -3:] = True  # boundary column 6, two pixels from column 8
    np.testing.assert_allclose(db_eval_boundary(gt, far), [0.0])
    np.testing.assert_allclose(db_eval_boundary(gt, far, bound_th=2), [1.0])  # >= 1: pixels


def test_void_pixels_are_excluded_in_low_level_functions():
    gt = np.zeros((1, 8, 8), bool)
    gt[0, 2:4, 2:4] = True
    pred = gt.copy()
    pred[0, 2:4, 4:6] = True
    void = np.zeros_like(gt)
    void[0, :, 4:] = True
    assert db_eval_iou(gt, pred).tolist() == [0.5]
    assert db_eval_iou(gt, pred, void).tolist() == [1.0]


def test_db_statistics_on_400_frames_by_hand():
    values = np.arange(400) / 400.0
    mean, recall, decay = db_statistics(values)
    # Bin edges round(linspace(1, 400, 5) + 1e-10) - 1 = [0, 100, 200, 299, 399]:
    # first bin frames 0..100, last bin frames 299..399.
    assert mean == pytest.approx(199.5 / 400)
    assert recall == pytest.approx(199 / 400)  # frames 201..399 are > 0.5
    assert decay == pytest.approx(50 / 400 - 349 / 400)
    # The official uint8 cast would have used frames 43..143 as the last bin:
    assert decay != pytest.approx(50 / 400 - np.mean(values[43:144]))


@pytest.mark.parametrize("length", [1, 2, 5, 17, 80, 255])
def test_db_statistics_equals_official_formula_below_256_frames(length):
    values = np.random.default_rng(length).random(length)
    ids = (np.round(np.linspace(1, length, 5) + 1e-10) - 1).astype(np.uint8)  # official (< 256 ok)
    bins = [values[ids[i] : ids[i + 1] + 1] for i in range(4)]
    mean, recall, decay = db_statistics(values)
    assert mean == pytest.approx(np.mean(values))
    assert recall == pytest.approx(np.mean(values > 0.5))
    assert decay == pytest.approx(np.mean(bins[0]) - np.mean(bins[3]))


def test_db_statistics_nan_and_empty():
    mean, recall, decay = db_statistics(np.array([1.0, np.nan, 0.0, 1.0]))
    assert mean == pytest.approx(2 / 3)
    assert recall == pytest.approx(0.5)  # NaN counts as a miss, as in the official code
    assert all(np.isnan(v) for v in db_statistics(np.array([])))


# ----------------------------------------------------------------------------- sequences


def test_against_vos_benchmark_on_real_davis():
    for seq in ("blackswan", "car-shadow"):
        gt = _load_davis16(seq, 10)
        for name, pred in _perturbations(gt).items():
            result = evaluate_sequence(gt, pred)
            assert list(result) == [1]
            assert len(result[1]["J"]) == len(gt) - 2
            j_ref, f_ref = _vos_benchmark_means(gt, pred)
            assert result[1]["J"].mean() == pytest.approx(j_ref[1], abs=1e-6), (seq, name)
            assert result[1]["F"].mean() == pytest.approx(f_ref[1], abs=1e-6), (seq, name)
            assert 0.0 < result[1]["F"].mean() < 1.0 or name == "shifted", (seq, name)


def test_against_vos_benchmark_on_synthetic_multi_object():
    _, gt = make_clip(3, 10, (120, 216), 4)
    assert set(np.unique(gt[1])) == {0, 1, 2, 3, 4}  # vos-benchmark needs every object from frame 1
    pred = gt.copy()
    pred[gt == 2] = 0
    pred = np.where(np.roll(gt, 5, axis=2) == 2, 2, pred)  # object 2 shifted right
    pred[3:6][pred[3:6] == 3] = 0  # object 3 lost for three frames
    pred[pred == 4] = 1  # object 4 swapped to 1 everywhere
    result = evaluate_sequence(gt, pred)
    assert sorted(result) == [1, 2, 3, 4]
    j_ref, f_ref = _vos_benchmark_means(gt, pred)
    for obj in result:
        assert result[obj]["J"].mean() == pytest.approx(j_ref[obj], abs=1e-6), obj
        assert result[obj]["F"].mean() == pytest.approx(f_ref[obj], abs=1e-6), obj
    assert result[4]["J"].max() == 0.0


def test_evaluate_sequence_rules():
    gt = np.zeros((5, 12, 12), np.uint8)
    gt[:, 2:4, 2:4] = 1
    gt[:, 2:4, 6:8] = 255  # void next to the object
    gt[:, 8:10, 8:10] = 2
    pred = np.zeros_like(gt)
    pred[:, 2:4, 2:4] = 1
    pred[:, 2:4, 6:8] = 1  # predicting the void region counts as false positive (official)
    result = evaluate_sequence(gt, pred)
    assert sorted(result) == [1, 2]
    np.testing.assert_allclose(result[1]["J"], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(result[2]["J"], [0.0, 0.0, 0.0])  # id missing from prediction
    assert len(evaluate_sequence(gt, pred, skip_first_last=False)[1]["J"]) == 5
    assert sorted(evaluate_sequence(gt, pred, object_ids=[2])) == [2]
    gt_later = gt.copy()
    gt_later[0][gt_later[0] == 2] = 0  # objects come from frame 0 only
    assert sorted(evaluate_sequence(gt_later, pred)) == [1]
    with pytest.raises(InputError, match="shapes differ"):
        evaluate_sequence(gt, pred[:, :10])
    with pytest.raises(InputError, match="at least 3 frames"):
        evaluate_sequence(gt[:2], pred[:2])


def test_summarize_averages_objects_like_the_official_tool():
    results = {
        "a": {1: {"J": np.array([1.0, 1.0]), "F": np.array([0.5, 0.5])}, 2: {"J": np.array([0.0, 0.0]), "F": np.array([1.0, 1.0])}},
        "b": {1: {"J": np.array([0.9, 0.3, 0.6, 0.6]), "F": np.array([1.0, 1.0, 1.0, 0.0])}},
    }
    glob, rows = summarize(results)
    assert list(glob) == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert glob["J-Mean"] == pytest.approx((1.0 + 0.0 + 0.6) / 3)  # per object, not per sequence
    assert glob["F-Mean"] == pytest.approx((0.5 + 1.0 + 0.75) / 3)
    assert glob["J&F-Mean"] == pytest.approx((glob["J-Mean"] + glob["F-Mean"]) / 2)
    assert glob["J-Recall"] == pytest.approx((1.0 + 0.0 + 0.75) / 3)
    assert glob["F-Recall"] == pytest.approx((0.0 + 1.0 + 0.75) / 3)
    # b: 4 frames, edges [0, 1, 2, 2, 3]: first bin frames 0..1, last bin frames 2..3.
    assert glob["J-Decay"] == pytest.approx((0.0 + 0.0 + (0.6 - 0.6)) / 3)
    assert glob["F-Decay"] == pytest.approx((0.0 + 0.0 + (1.0 - 0.5)) / 3)
    assert [r["Sequence"] for r in rows] == ["a_1", "a_2", "b_1"]
    assert rows[2]["J-Mean"] == pytest.approx(0.6)
    with pytest.raises(InputError, match="no objects to summarize"):
        summarize({"a": {}})


def test_evaluate_many_in_processes_equals_sequential():
    dataset = DAVIS(require(DAVIS16_VAL), year=2016)
    jobs = []
    for name in ("car-shadow", "motocross-jump"):
        gt = dataset.load_ground_truth(name)
        pred = np.roll(gt, (4, 7), axis=(1, 2))
        # The worker loads the ground truth itself: a picklable bound method, not an array.
        jobs.append(EvalJob(name, functools.partial(dataset.load_ground_truth, name), pred))
    parallel = evaluate_many(jobs, processes=2)
    sequential = evaluate_many(jobs, processes=1)
    assert list(parallel) == ["car-shadow", "motocross-jump"]
    for name in parallel:
        np.testing.assert_array_equal(parallel[name][1]["J"], sequential[name][1]["J"])
        np.testing.assert_array_equal(parallel[name][1]["F"], sequential[name][1]["F"])
    with pytest.raises(InputError, match="duplicate"):
        evaluate_many([jobs[0], jobs[0]])


def test_write_official_csvs(tmp_path):
    glob = {"J&F-Mean": 0.81234, "J-Mean": 0.8, "J-Recall": 0.95, "J-Decay": -0.00004, "F-Mean": 0.82468, "F-Recall": 1.0, "F-Decay": 0.12345}
    rows = [{"Sequence": "bike-packing_1", "J-Mean": 0.70005, "F-Mean": float("nan")}, {"Sequence": "dog_2", "J-Mean": 1.0, "F-Mean": 0.0}]
    global_path, seq_path = write_official_csvs(tmp_path, "val", glob, rows)
    assert global_path.name == "global_results-val.csv"
    assert seq_path.name == "per-sequence_results-val.csv"
    assert global_path.read_text() == (
        "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n0.812,0.800,0.950,-0.000,0.825,1.000,0.123\n"
    )
    assert seq_path.read_text() == "Sequence,J-Mean,F-Mean\nbike-packing_1,0.700,\ndog_2,1.000,0.000\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["global_results-val.csv", "per-sequence_results-val.csv"]
    with pytest.raises(InputError, match="does not exist"):
        write_official_csvs(tmp_path / "missing", "val", glob, rows)


def test_long_sequences_are_scored_in_chunks_without_changing_results():
    rng = np.random.default_rng(0)
    gt = (rng.random((150, 16, 20)) < 0.3).astype(np.uint8) * rng.integers(1, 3, size=(150, 1, 1)).astype(np.uint8)
    gt[0, 0, :2] = [1, 2]
    pred = np.where(rng.random(gt.shape) < 0.1, 0, gt).astype(np.uint8)
    result = evaluate_sequence(gt, pred)
    for obj in (1, 2):
        np.testing.assert_array_equal(result[obj]["J"], db_eval_iou(gt[1:-1] == obj, pred[1:-1] == obj))
        np.testing.assert_array_equal(result[obj]["F"], db_eval_boundary(gt[1:-1] == obj, pred[1:-1] == obj))
