"""Benchmarks: every sequence asked for is scored, or the run says which and why (exit code 1).

The issue's example: a DAVIS copy with one annotation missing printed "2/2 sequences ok" and a global
J&F of one sequence alone. Each damaged copy below goes through `benchmarks.vos` (the other sequence
still runs; the figures and CSVs say PARTIAL; exit 1) and `benchmarks.evaluate` (refused, exit 2), which
share one validator per dataset (`benchmarks.validate`).
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import evaluate as evaluate_cli
from benchmarks.harness import open_benchmark
from benchmarks.validate import problems
from seggpt.io import save_index_png
from vos.data.synthetic import write_ytvos

SEQ = "synth-001"


def _ann(root: Path, frame: str = "00002") -> Path:
    return root / "Annotations" / "480p" / SEQ / f"{frame}.png"


def _jpg(root: Path, frame: str = "00002") -> Path:
    return root / "JPEGImages" / "480p" / SEQ / f"{frame}.jpg"


DAMAGE = {  # name: (how, what the reason says)
    "missing_annotation": (lambda root: _ann(root).unlink(), "no annotation for 1 of 4 frames (00002)"),
    "extra_jpeg": (lambda root: shutil.copy(_jpg(root, "00003"), _jpg(root, "00004")),
                   "no annotation for 1 of 5 frames (00004)"),
    "missing_jpeg": (lambda root: _jpg(root).unlink(), "no JPEG for 1 annotated frame(s) (00002)"),
    "empty_first_annotation": (lambda root: save_index_png(_ann(root, "00000"), np.zeros((32, 48), np.uint8)),
                               "holds no object"),
    "annotation_of_another_size": (lambda root: save_index_png(_ann(root), np.zeros((16, 24), np.uint8)),
                                   "24x16, the sequence's frames are 48x32"),
    "unreadable_jpeg": (lambda root: _jpg(root).write_bytes(b"not a jpeg"), "not a readable image"),
    "rgb_first_annotation": (lambda root: Image.new("RGB", (48, 32), (200, 0, 0)).save(_ann(root, "00000")),
                             "00000.png"),
}


@pytest.mark.parametrize("damage, reason", DAMAGE.values(), ids=DAMAGE)
def test_a_damaged_davis_copy_is_scored_partially_and_said_so(davis, tmp_path, copy_first, refused, damage, reason):
    root = tmp_path / "copy"
    shutil.copytree(davis, root)
    damage(root)
    out = tmp_path / "res"
    code, stdout, stderr = copy_first("davis2017", root, out)
    assert code == 1, stdout
    assert "1/2 sequences ok" in stdout and "PARTIAL: the global figures cover 1 of 2 sequences" in stdout
    assert f"{SEQ}: FAILED" in stderr and "Traceback" not in stderr
    report = json.loads((out / "benchmark-val.json").read_text())
    assert report["failed"] == [SEQ] and report["partial"] is True and reason in report["not_scored"][SEQ]
    assert not (out / "global_results-val.csv").exists()  # the official tools would take it for the whole split
    with open(out / "global_results-val-PARTIAL.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][-2:] == ["Partial", "Not scored"] and rows[1][-2:] == ["1 of 2 sequences", SEQ]

    # benchmarks.evaluate on the same root refuses it, through the same validator: one line, exit 2
    (out / "synth-001").mkdir(exist_ok=True)
    message = refused(evaluate_cli.main, ["--dataset", "davis2017", "--root", str(root), "--results", str(out)])
    assert SEQ in message and reason in message


def test_the_intact_copy_is_whole_and_empty_later_masks_are_real(davis, tmp_path, copy_first):
    root = tmp_path / "copy"
    shutil.copytree(davis, root)
    save_index_png(_ann(root, "00003"), np.zeros((32, 48), np.uint8))  # the object left the view: a real mask
    assert problems(open_benchmark("davis2017", root), ["synth-000", SEQ]) == {}
    out = tmp_path / "res"
    code, stdout, _ = copy_first("davis2017", root, out)
    assert code == 0 and "2/2 sequences ok" in stdout and "PARTIAL" not in stdout
    assert (out / "global_results-val.csv").exists() and not list(out.glob("*PARTIAL*"))
    assert json.loads((out / "benchmark-val.json").read_text())["partial"] is False


@pytest.fixture(scope="module")
def ytvos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("yt")
    write_ytvos(root, num_videos=2, seed=2, num_frames=6, size=(32, 48), num_objects=(2, 2))
    return root


def test_ytvos_rules(ytvos, tmp_path, copy_first):
    bench = open_benchmark("ytvos", ytvos, all_frames="none")
    assert problems(bench, bench.names) == {}  # only first appearances are annotated: that is the rule
    root = tmp_path / "copy"
    shutil.copytree(ytvos, root)
    bench = open_benchmark("ytvos", root, all_frames="none")
    name = bench.names[1]
    seq = bench.reader[name]
    frame, path = next(iter(seq.annotations.items()))
    obj = seq.objects_first_given_at(frame)[0]
    labels = np.array(Image.open(path))
    save_index_png(path, np.where(labels == obj, 0, labels).astype(np.uint8))  # its first mask lost the object
    assert f"object {obj} first appears here" in problems(bench, bench.names)[name]
    shutil.copy(path, path.with_name("00099.png"))  # an annotation without its frame
    assert "no JPEG for 1 annotated frame(s) (00099)" in problems(bench, bench.names)[name]
    code, stdout, stderr = copy_first("ytvos", root, tmp_path / "res", "--all-frames", "none")
    assert code == 1 and f"{name}: FAILED" in stderr and "1/2 sequences ok" in stdout
    assert not (tmp_path / "res" / "submission.zip").exists()  # never a submission with a video missing


def test_a_ytvos_video_that_meta_json_does_not_list_is_a_problem_not_dropped(ytvos, tmp_path, copy_first):
    """Adversarial: a video with frames and annotations but no meta.json entry was dropped silently
    ("1/1 sequences ok", exit 0). meta.json lists every video of its split: the video is one of the split
    with a problem, listed by the shared validator (benchmarks.vos fails it: exit 1, no submission zip)."""
    root = tmp_path / "copy"
    shutil.copytree(ytvos, root)
    meta_path = root / "valid" / "meta.json"
    meta = json.loads(meta_path.read_text())
    name = sorted(meta["videos"])[1]
    del meta["videos"][name]
    meta_path.write_text(json.dumps(meta))
    bench = open_benchmark("ytvos", root, all_frames="none")
    assert name in bench.names and name not in bench.reader.names
    assert problems(bench, bench.names) == {name: f"{meta_path}: video {name!r} has frames or annotations but is not "
                                                  "listed (meta.json lists every video of the split)"}
    code, stdout, stderr = copy_first("ytvos", root, tmp_path / "res", "--all-frames", "none")
    assert code == 1 and f"{name}: FAILED: {meta_path}: video {name!r}" in stderr
    assert "1/2 sequences ok" in stdout and not (tmp_path / "res" / "submission.zip").exists()
    (root / "valid" / "JPEGImages" / name).rename(root / "valid" / "elsewhere")  # annotations alone: the same
    bench = open_benchmark("ytvos", root, all_frames="none")
    assert list(problems(bench, bench.names)) == [name]
