"""benchmarks.vos / benchmarks.evaluate end to end: real DAVIS 2016, synthetic DAVIS 2017 and YouTube-VOS.

Every run goes through the CLI entry points (``main(argv)``) and is checked against numbers computed
here independently: PNGs read back with PIL, J/F from ``vos.data.metrics`` on hand-built copy-first
predictions, the official CSV names and columns, the zip's member names.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import evaluate as evaluate_cli
from benchmarks.layout import ResultLayout
from benchmarks.methods import CopyFirst, MethodSpec
from seggpt.outputs import MANIFEST, file_record, read_manifest
from vos.engine.config import EngineConfig
from vos.data.datasets import YouTubeVOS
from vos.data.metrics import GLOBAL_COLUMNS, PER_SEQUENCE_COLUMNS, evaluate_sequence, summarize
from vos.data.synthetic import write_ytvos

from helpers import DATA

DAVIS16 = DATA / "davis2016-val-480p"


# ----------------------------------------------------------------------------- helpers


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "P", f"{path}: results must be index PNGs, got mode {image.mode}"
        return np.array(image)


@pytest.fixture(scope="module")
def ytvos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("yt")
    write_ytvos(root, num_videos=3, seed=1, num_frames=11, size=(48, 64), num_objects=(2, 3))
    return root


def copy_first_labels(root: Path, seq: str, frames: int) -> np.ndarray:
    """DAVIS 2017 copy-first by hand: frame 0's palette PNG (void cleared) on every frame."""
    first = np.array(Image.open(root / "Annotations" / "480p" / seq / "00000.png"))
    first = np.where(first == 255, 0, first)
    return np.repeat(first[None], frames, axis=0)


# ----------------------------------------------------------------------------- real DAVIS 2016


@pytest.mark.skipif(not DAVIS16.is_dir(), reason="../shared/data/davis2016-val-480p is absent")
def test_davis2016_copy_first_matches_metrics_computed_directly(tmp_path, copy_first):
    seqs = ["car-shadow", "motocross-jump"]
    out = tmp_path / "res"
    code, stdout, _ = copy_first("davis2016", DAVIS16, out, "--sequences", *seqs)
    assert code == 0
    assert "J&F-Mean" in stdout
    # independent reference: GT read with PIL (0/255), first mask repeated, scored by vos.data.metrics
    results = {}
    for seq in seqs:
        gt_files = sorted((DAVIS16 / "Annotations" / "480p" / seq).glob("*.png"))
        gt = np.stack([np.array(Image.open(p)) > 0 for p in gt_files]).astype(np.uint8)
        pred = np.repeat(gt[:1], len(gt), axis=0)
        results[seq] = evaluate_sequence(gt, pred)
        written = sorted((out / seq).glob("*.png"))
        assert [p.name for p in written] == [p.name for p in gt_files]
        png = read_png(written[7])
        assert png.shape == (480, 854) and set(np.unique(png)) <= {0, 1}
        np.testing.assert_array_equal(png, gt[0])
    glob, rows = summarize(results)

    g = read_csv(out / "global_results-val.csv")
    assert g[0] == list(GLOBAL_COLUMNS)
    assert [float(v) for v in g[1]] == pytest.approx([glob[k] for k in GLOBAL_COLUMNS], abs=5e-4)
    s = read_csv(out / "per-sequence_results-val.csv")
    assert s[0] == list(PER_SEQUENCE_COLUMNS)
    assert [r[0] for r in s[1:]] == ["car-shadow_1", "motocross-jump_1"]
    for row, ref in zip(s[1:], rows):
        assert float(row[1]) == pytest.approx(ref["J-Mean"], abs=5e-4)
        assert float(row[2]) == pytest.approx(ref["F-Mean"], abs=5e-4)
    report = json.loads((out / "benchmark-val.json").read_text())
    for key in GLOBAL_COLUMNS:  # full precision in the JSON
        assert report["global"][key] == pytest.approx(glob[key], abs=1e-12)
    assert report["method"] == "copy-first" and report["code_version"] != "unknown"
    assert [r["name"] for r in report["sequences"]] == seqs
    assert all(r["frames"] == 40 and r["fps"] > 0 and r["peak_rss_mb"] > 0 for r in report["sequences"])
    assert report["total_seconds"] > 0 and report["peak_rss_mb"] > 0

    # the evaluate CLI on the same folder writes the same CSVs
    (out / "global_results-val.csv").unlink()
    (out / "per-sequence_results-val.csv").unlink()
    assert evaluate_cli.main(["--dataset", "davis2016", "--root", str(DAVIS16), "--results", str(out),
                              "--sequences", *seqs, "--processes", "1"]) == 0
    assert read_csv(out / "global_results-val.csv") == g
    assert read_csv(out / "per-sequence_results-val.csv") == s


# ----------------------------------------------------------------------------- synthetic DAVIS 2017


def test_davis2017_copy_first_all_objects(davis17, tmp_path, copy_first):
    out = tmp_path / "res"
    assert copy_first("davis2017", davis17, out)[0] == 0
    names = (davis17 / "ImageSets" / "2017" / "val.txt").read_text().split()
    results = {}
    for seq in names:
        pred = copy_first_labels(davis17, seq, 6)
        written = np.stack([read_png(out / seq / f"{t:05d}.png") for t in range(6)])
        np.testing.assert_array_equal(written, pred)
        gt = np.stack([np.array(Image.open(davis17 / "Annotations" / "480p" / seq / f"{t:05d}.png")) for t in range(6)])
        results[seq] = evaluate_sequence(gt, pred)
    glob, rows = summarize(results)
    s = read_csv(out / "per-sequence_results-val.csv")
    assert [r[0] for r in s[1:]] == [row["Sequence"] for row in rows]  # <seq>_<id>, one row per object
    assert len(s) - 1 > len(names)  # several objects per sequence
    assert float(read_csv(out / "global_results-val.csv")[1][0]) == pytest.approx(glob["J&F-Mean"], abs=5e-4)


def test_results_folder_holds_only_the_sequences_and_vos_benchmark_reads_it(davis17, tmp_path, copy_first):
    """Bookkeeping is one file beside the results: the sub-folders are exactly the sequences (a
    `.progress` folder there made vos-benchmark refuse the folder), and vos-benchmark scores it as is."""
    out = tmp_path / "res"
    assert copy_first("davis2017", davis17, out)[0] == 0
    names = (davis17 / "ImageSets" / "2017" / "val.txt").read_text().split()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(names)
    assert (out / ".progress.jsonl").is_file()
    assert copy_first("davis2017", davis17, out, "--resume")[0] == 0  # resuming reads the same file and adds no folder
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(names)
    from vos_benchmark.benchmark import benchmark

    global_jf, _, _, _ = benchmark([str(davis17 / "Annotations" / "480p")], [str(out)], num_processes=1, verbose=False)
    ours = float(read_csv(out / "global_results-val.csv")[1][0])
    assert global_jf[0] / 100 == pytest.approx(ours, abs=0.02)


def test_resume_skips_finished_and_redoes_unfinished(davis17, tmp_path, copy_first):
    out = tmp_path / "res"
    args = ["davis2017", davis17, out]
    assert copy_first(*args)[0] == 0
    layout = ResultLayout(out, "davis")
    a, b, c = "synth-000", "synth-001", "synth-002"
    sentinel = np.zeros((48, 64), np.uint8)
    sentinel[0, 0] = 7
    Image.fromarray(sentinel, mode="L").convert("P").save(out / a / "00003.png")  # would be overwritten if redone
    # a result changed after our run is not ours any more: even --resume refuses the folder, untouched
    assert copy_first(*args, "--resume")[0] == 2 and np.array_equal(read_png(out / a / "00003.png"), sentinel)
    manifest = read_manifest(out)  # as if our run had written the sentinel: ours again
    manifest["files"][f"{a}/00003.png"] = file_record(out / a / "00003.png")
    (out / MANIFEST).write_text(json.dumps(manifest))
    layout.begin(b)  # b started again and was killed outright before its marker: unfinished
    (out / b / "00004.png").unlink()
    (out / c / "00005.png").unlink()  # c has a marker but lost a frame: unfinished too
    manifest = read_manifest(out)  # the killed run's manifest: still "running", its process gone
    manifest.update(status="running", complete=False, pid=-1)
    (out / MANIFEST).write_text(json.dumps(manifest))
    assert copy_first(*args)[0] == 2  # what the killed run rewrote carries no hash: --resume or --overwrite
    assert copy_first(*args, "--resume")[0] == 0
    report = json.loads((out / "benchmark-val.json").read_text())
    status = {r["name"]: r["status"] for r in report["sequences"]}
    assert status == {a: "skipped", b: "done", c: "done"}
    assert np.array_equal(read_png(out / a / "00003.png"), sentinel)  # untouched
    np.testing.assert_array_equal(read_png(out / b / "00004.png"), copy_first_labels(davis17, b, 6)[4])
    assert (out / c / "00005.png").is_file()
    # skipped sequences still count in the scores
    assert len(read_csv(out / "per-sequence_results-val.csv")) - 1 == sum(
        len(r["objects"]) for r in report["sequences"])
    # another method (seggpt) does not count copy-first results as finished
    spec_a, spec_b = MethodSpec("copy-first"), MethodSpec("seggpt", "x", '{"memory": 8}')
    assert spec_a.fingerprint() != spec_b.fingerprint()
    assert MethodSpec("seggpt", "x", '{"memory": 8}').fingerprint() != MethodSpec("seggpt", "x", '{"memory": 2}').fingerprint()
    assert MethodSpec("seggpt", "x", '{"memory": 8}', "cpu").fingerprint() == MethodSpec("seggpt", "x", '{"memory": 8}', "cuda").fingerprint()


def test_failing_sequences_do_not_stop_the_others(davis17, tmp_path, copy_first):
    root = tmp_path / "broken"  # a copy of the synthetic set whose synth-001 first-frame annotation is not a PNG
    shutil.copytree(davis17, root)
    (root / "Annotations" / "480p" / "synth-001" / "00000.png").write_bytes(b"not a png")
    out = tmp_path / "res"
    out.mkdir()
    (out / "synth-002").write_text("a file where the sequence folder goes")  # a file of the user's: refused
    code, stdout, stderr = copy_first("davis2017", root, out, "--overwrite")
    assert code == 2 and "synth-002" in stderr and (out / "synth-002").read_text().startswith("a file")
    (out / "synth-002").unlink()
    (out / "synth-002" / "00003.png").mkdir(parents=True)  # an (empty) folder where a PNG goes: fails while running
    code, stdout, stderr = copy_first("davis2017", root, out)
    assert code == 1
    assert "synth-001: FAILED" in stderr and "synth-002: FAILED" in stderr and "Traceback" not in stderr
    report = json.loads((out / "benchmark-val.json").read_text())
    assert report["failed"] == ["synth-001", "synth-002"]
    assert {r["name"]: r["status"] for r in report["sequences"]} == {
        "synth-000": "done", "synth-001": "failed", "synth-002": "failed"}
    assert "00000.png" in report["sequences"][1]["error"]
    assert len(list((out / "synth-000").glob("*.png"))) == 6
    rows = read_csv(out / "per-sequence_results-val-PARTIAL.csv")[1:]  # partial: said in the names
    assert rows and all(r[0].startswith("synth-000_") for r in rows)  # scores of what ran
    assert not (out / "global_results-val.csv").exists() and report["partial"] is True


# ----------------------------------------------------------------------------- synthetic YouTube-VOS


def _listed(root: Path) -> dict[str, list[str]]:
    meta = json.loads((root / "valid" / "meta.json").read_text())["videos"]
    return {vid: sorted({f for o in v["objects"].values() for f in o["frames"]}) for vid, v in meta.items()}


@pytest.mark.parametrize("all_frames", ["auto", "none"])
def test_ytvos_copy_first_layout_and_zip(ytvos, tmp_path, copy_first, all_frames):
    out = tmp_path / "res"
    assert copy_first("ytvos", ytvos, out, "--all-frames", all_frames)[0] == 0
    listed = _listed(ytvos)
    expected = sorted(f"Annotations/{vid}/{f}.png" for vid, frames in listed.items() for f in frames)
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert sorted(archive.namelist()) == expected  # names at the root, listed frames only, nothing else
        member = expected[-1]
        with archive.open(member) as handle:
            np.testing.assert_array_equal(np.array(Image.open(handle)), read_png(out / member))
    on_disk = sorted(str(p.relative_to(out)) for p in (out / "Annotations").rglob("*.png"))
    assert on_disk == expected
    report = json.loads((out / "benchmark-valid.json").read_text())
    assert report["zip"] == str(out / "submission.zip") and report["global"] is None
    assert (report["all_frames"] is not None) == (all_frames == "auto")
    # copy-first semantics: each object's own first mask from its first frame on, later objects drawn over
    reader = YouTubeVOS(ytvos, "valid")
    late = [(vid, obj, f) for vid in reader.names for obj, f in reader[vid].object_first_frame.items() if f != "00000"]
    assert late, "the synthetic set should have an object that appears later"
    for vid in reader.names:
        seq = reader[vid]
        state = np.zeros(seq.size, np.uint8)
        for frame in seq.frames_to_save:
            if frame in seq.annotations:
                ann = np.array(Image.open(seq.annotations[frame]))
                state = np.where(ann > 0, ann, state)
            np.testing.assert_array_equal(read_png(out / "Annotations" / vid / f"{frame}.png"), state)
    vid, obj, first = late[0]
    assert not (read_png(out / "Annotations" / vid / "00000.png") == obj).any()
    assert (read_png(out / "Annotations" / vid / f"{first}.png") == obj).any()


def test_copy_first_method_counts_only_saved_frames(ytvos):
    seq = YouTubeVOS(ytvos, "valid", all_frames_root=ytvos / "all_frames" / "valid_all_frames")[ "synth-000"]
    produced = [seq.frame_names[i] for i, _ in CopyFirst().segment(seq)]
    assert len(seq.frame_names) == 11 and produced == seq.frames_to_save == ["00000", "00005", "00010"]


# ----------------------------------------------------------------------------- SegGPT (tiny random weights)


def test_seggpt_tiny_davis2017_and_ytvos(davis17, ytvos, tiny_weights, tmp_path, bench):
    out = tmp_path / "d17"
    code, stdout, _ = bench("--dataset", "davis2017", "--root", str(davis17), "--out", str(out), "--weights",
                            str(tiny_weights), "--memory", "2", "--sequences", "synth-000", "synth-002",
                            "--device", "cpu")
    assert code == 0, stdout
    report = json.loads((out / "benchmark-val.json").read_text())
    assert report["method"] == "seggpt" and report["weights"] == str(tiny_weights)
    assert report["engine"]["memory"] == 2 and report["device"] == "cpu"
    assert all(r["status"] == "done" and r["frames"] == 6 and r["fps"] > 0 for r in report["sequences"])
    for seq in ("synth-000", "synth-002"):
        first = read_png(out / seq / "00000.png")  # the prompt frame is the given mask
        np.testing.assert_array_equal(first, copy_first_labels(davis17, seq, 1)[0])
        assert len(list((out / seq).glob("*.png"))) == 6
        assert read_png(out / seq / "00005.png").shape == (48, 64)
    assert len(read_csv(out / "per-sequence_results-val.csv")) > 3

    yt = tmp_path / "yt"
    assert bench("--dataset", "ytvos", "--root", str(ytvos), "--out", str(yt), "--weights", str(tiny_weights),
                 "--memory", "1")[0] == 0
    report = json.loads((yt / "benchmark-valid.json").read_text())
    assert all(r["frames"] == 11 and r["saved"] == 3 for r in report["sequences"])  # ran on all frames, saved listed
    with zipfile.ZipFile(yt / "submission.zip") as archive:
        names = sorted(archive.namelist())
    assert names == sorted(f"Annotations/{v}/{f}.png" for v, fs in _listed(ytvos).items() for f in fs)


def test_config_file_and_flag_overrides(davis17, tiny_weights, tmp_path, bench):
    """Precedence: defaults < the config file < flags and --set (the weights' layer: test_settings.py)."""
    config_path = tmp_path / "bench.yaml"
    config_path.write_text("weights: BAAI/SegGPT\nsplit: val\nengine:\n  memory: 3\n  objects: separate\n")
    out = tmp_path / "res"
    assert bench("--dataset", "davis2017", "--root", str(davis17), "--out", str(out), "--config", str(config_path),
                 "--weights", str(tiny_weights), "--memory", "1", "--sequences", "synth-001",
                 "--set", "engine.colors=palette")[0] == 0
    report = json.loads((out / "benchmark-val.json").read_text())
    assert report["method"] == "seggpt"
    assert report["weights"] == str(tiny_weights)  # the flag wins over the file
    assert report["engine"] == {**dataclasses.asdict(EngineConfig()), "memory": 1, "objects": "separate",
                                "colors": "palette"}
    assert report["split"] == "val" and report["resolution"] == "480p"
    # the packaged config is found by name, and only names the split
    assert bench("--dataset", "davis2017", "--root", str(davis17), "--out", str(tmp_path / "r2"),
                 "--config", "benchmark_davis", "--weights", str(tiny_weights), "--sequences", "synth-001")[0] == 0
    assert json.loads((tmp_path / "r2" / "benchmark-val.json").read_text())["engine"] == dataclasses.asdict(
        EngineConfig())


# ----------------------------------------------------------------------------- evaluate CLI and bad input


def test_evaluate_cli(davis17, tmp_path, capsys, copy_first, refused):
    out = tmp_path / "res"
    assert copy_first("davis2017", davis17, out)[0] == 0
    expected = read_csv(out / "per-sequence_results-val.csv"), read_csv(out / "global_results-val.csv")
    for name in ("per-sequence_results-val.csv", "global_results-val.csv"):
        (out / name).unlink()
    assert evaluate_cli.main(["--dataset", "davis2017", "--root", str(davis17), "--results", str(out), "--processes", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "frames/s" in stdout and "s per 1,000 frames" in stdout
    assert (read_csv(out / "per-sequence_results-val.csv"), read_csv(out / "global_results-val.csv")) == expected
    # a missing frame is one clear error, exit code 2
    (out / "synth-001" / "00002.png").unlink()
    err = refused(evaluate_cli.main, ["--dataset", "davis2017", "--root", str(davis17), "--results", str(out)])
    assert "synth-001" in err and "Traceback" not in err


@pytest.mark.parametrize("extra, message", [
    (["--root", "/nonexistent/davis"], "/nonexistent/davis"),
    (["--sequences", "nope"], "unknown sequence"),
    (["--method", "seggpt", "--weights", "/nonexistent/w.safetensors"], "w.safetensors"),
    (["--config", "CONFIG"], "unknown setting"),
    (["--method", "seggpt", "--memory", "-1", "--weights", "WEIGHTS"], "memory"),
])
def test_bad_input_is_one_line_exit_2(davis17, tiny_weights, tmp_path, bench, extra, message):
    config = tmp_path / "bench.yaml"
    config.write_text("method: copy-first\nmemroy: 3\n")
    extra = [str(config) if e == "CONFIG" else str(tiny_weights) if e == "WEIGHTS" else e for e in extra]
    argv = ["--dataset", "davis2017", "--root", str(davis17), "--out", str(tmp_path / "o"), "--method", "copy-first", *extra]
    if "--root" in extra:
        argv = argv[:2] + argv[4:]
    code, _, err = bench(*argv)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err and "Traceback" not in err
