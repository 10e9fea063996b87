"""Outputs: an output is never an input, and an output folder never mixes two runs.

Tables of the issue's cases against `vos.run`, `benchmarks.vos` and `benchmarks.evaluate`, in process
(`main([...])`): the refusals come before any model is built, so they are fast.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import evaluate as evaluate_cli
from seggpt.errors import InputError
from seggpt.outputs import MANIFEST, check_not_inputs, claim_folder, file_record, read_manifest
from vos.run import main
from seggpt.io import read_label_png as read_index_png, save_index_png, write_mp4
from vos.data.synthetic import make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    frames, labels = make_clip(3, 6, size=(48, 64), num_objects=2)
    write_mp4(root / "clip.mp4", frames, fps=8)
    (root / "GT").mkdir()
    for t in range(6):
        save_index_png(root / "GT" / f"{t:05d}.png", labels[t])
    (root / "frames").mkdir()
    for t in range(6):
        save_index_png(root / "frames" / f"{t:05d}.png", (frames[t].mean(axis=2) > 100).astype(np.uint8))  # any PNGs
    return root


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------- inputs


CLASHES = [  # (name, extra argv with placeholders, words the message holds)
    ("out is the ground-truth folder", ["--first-mask", "{root}/GT/00000.png", "--out", "{root}/GT"], "holds the mask"),
    ("out is the frames folder", ["{root}/frames", "--first-mask", "{root}/GT/00000.png", "--out", "{root}/frames"],
     "is the frames folder"),
    ("out inside the frames folder", ["{root}/frames", "--first-mask", "{root}/GT/00000.png", "--out",
                                      "{root}/frames/masks"], "inside the frames folder"),
    ("out reaches the GT folder through ..", ["--first-mask", "{root}/GT/00000.png", "--out", "{root}/frames/../GT"],
     "holds the mask"),
    ("out is a symlink to the GT folder", ["--first-mask", "{root}/GT/00000.png", "--out", "{tmp}/link"], "holds the mask"),
    ("overlay is the input video", ["--overlay", "{root}/clip.mp4"], "is the video"),
    ("overlay is a symlink to the video", ["--overlay", "{tmp}/video.mp4"], "is the video"),
    ("overlay is a folder", ["--overlay", "{tmp}"], "is a folder"),
    ("overlay without extension", ["--overlay", "{tmp}/overlay"], "no extension"),
    ("overlay .xyz", ["--overlay", "{tmp}/overlay.xyz"], ".xyz"),
    ("overlay .png", ["--overlay", "{tmp}/overlay.png"], ".png"),
    ("out holds the weights", ["--out", "{weights_dir}"], "holds the weights"),
    ("out is the mask file", ["--out", "{root}/GT/00001.png"], ""),
    # a fresh adversarial pass: the other named output files follow --overlay's rules
    ("rle is a user's file", ["--rle", "{tmp}/mine.json"], "exists and was not written by a run of ours"),
    ("report is a user's file", ["--report", "{tmp}/mine.json"], "exists and was not written by a run of ours"),
    ("matte is a user's file", ["--matte", "{tmp}/mine.mkv"], "exists and was not written by a run of ours"),
    ("rle and report share a file", ["--rle", "{tmp}/both.json", "--report", "{tmp}/both.json"],
     "one file cannot hold two outputs"),
    ("overlay and matte share a file", ["--overlay", "{tmp}/both.mkv", "--matte", "{tmp}/both.mkv"],
     "one file cannot hold two outputs"),
    ("rle is a folder", ["--rle", "{tmp}/afolder"], "is a folder"),
]


@pytest.mark.parametrize("name, extra, words", CLASHES, ids=[c[0] for c in CLASHES])
def test_vos_run_never_writes_onto_an_input(clip, tiny_weights, tmp_path, refused, name, extra, words):
    os.symlink(clip / "GT", tmp_path / "link")
    os.symlink(clip / "clip.mp4", tmp_path / "video.mp4")
    (tmp_path / "mine.json").write_text("mine")
    (tmp_path / "mine.mkv").write_text("mine")
    (tmp_path / "afolder").mkdir()
    fill = dict(root=clip, tmp=tmp_path, weights_dir=Path(tiny_weights).parent)
    extra = [e.format(**fill) for e in extra]
    argv = extra if not extra[0].startswith("--") else [str(clip / "clip.mp4"), *extra]
    if "--first-mask" not in argv:
        argv += ["--first-mask", str(clip / "GT" / "00000.png")]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    before = _snapshot(clip)
    assert words in refused(main, [*argv, "--weights", tiny_weights, "--quiet", "--end", "2"])
    assert _snapshot(clip) == before  # nothing of the inputs changed
    assert not list((clip / "GT").glob(".*"))  # not even a manifest
    assert (tmp_path / "mine.json").read_text() == "mine" and (tmp_path / "mine.mkv").read_text() == "mine"


def test_check_not_inputs_reports_the_clash(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "w.pth").write_bytes(b"x")
    with pytest.raises(InputError, match="inside the weights"):
        check_not_inputs({"--out": tmp_path / "data" / "w.pth" / "x"}, {"weights": tmp_path / "data" / "w.pth"})
    check_not_inputs({"--out": tmp_path / "out"}, {"weights": tmp_path / "data" / "w.pth", "hub": "BAAI/SegGPT"},
                     folders=["--out"])  # no clash, a Hub id is no path


# ------------------------------------------------------------------------------------------- manifests


def _run(clip, tiny_weights, out, *extra):
    return main([str(clip / "clip.mp4"), "--first-mask", str(clip / "GT" / "00000.png"), "--weights",
                 tiny_weights, "--out", str(out), "--memory", "1", "--quiet", *extra])


def test_rerun_replaces_our_earlier_run_and_nothing_else(clip, tiny_weights, tmp_path, capsys, refused):
    out, overlay = tmp_path / "masks", tmp_path / "overlay.mp4"
    assert _run(clip, tiny_weights, out, "--overlay", str(overlay), "--object-masks") == 0
    first = read_manifest(out)
    assert first["complete"] is True and first["status"] == "complete"
    assert sorted(f for f in first["files"] if "/" not in f) == [f"{t:05d}.png" for t in range(6)]
    assert any(f.startswith("objects/") for f in first["files"])
    # the overlay outside --out: recorded, with its hash, in the manifest of its own folder
    assert read_manifest(tmp_path)["files"]["overlay.mp4"]["sha256"] == file_record(overlay)["sha256"]
    assert read_manifest(tmp_path)["claimed"] is False
    assert (out / MANIFEST).is_file()  # a file: evaluation tools take every sub-folder for a sequence
    # the README's job, run again: our earlier run is emptied first, a shorter run leaves no old frame behind
    assert _run(clip, tiny_weights, out, "--overlay", str(overlay), "--end", "3") == 0
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "00000.png", "00001.png", "00002.png"]
    assert overlay.is_file()
    capsys.readouterr()

    # a file of the user's: refused, untouched, with or without --overwrite
    (out / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        assert "notes.txt" in refused(_run, clip, tiny_weights, out, "--end", "2", *extra)
        assert (out / "00002.png").exists()
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()

    # a mask a person corrected after our run: no longer ours, never replaced nor deleted
    save_index_png(out / "00001.png", np.ones((48, 64), np.uint8))
    for extra in ([], ["--overwrite"]):
        assert "00001.png" in refused(_run, clip, tiny_weights, out, *extra)
    assert read_index_png(out / "00001.png").max() == 1 and (out / "00002.png").exists()

    # an overlay file that no run of ours wrote: refused, with or without --overwrite
    other = tmp_path / "theirs.mp4"
    other.write_bytes(b"precious")
    for extra in ([], ["--overwrite"]):
        message = refused(_run, clip, tiny_weights, tmp_path / "m2", "--overlay", str(other), "--end", "2", *extra)
        assert "theirs.mp4" in message and other.read_bytes() == b"precious"


def test_a_folder_without_manifest_is_refused(clip, tiny_weights, tmp_path, refused):
    out = tmp_path / "old"
    out.mkdir()
    save_index_png(out / "00000.png", np.ones((48, 64), np.uint8))  # e.g. a run of an older version: not ours
    assert "not ours" in refused(_run, clip, tiny_weights, out, "--end", "2")


def test_a_killed_runs_files_are_never_replaced_and_a_clean_rerun_works(clip, tiny_weights, tmp_path, refused):
    out = tmp_path / "masks"
    # a killed run: its first manifest (incomplete, with the patterns it would write) and some frames
    claim_folder(out, "vos.run", patterns=["*.png", "objects/"], register=False)
    save_index_png(out / "00000.png", np.ones((48, 64), np.uint8))
    (out / ".00001.a1b2c3d4.tmp.png").write_bytes(b"half")  # a temporary file a kill left behind
    assert read_manifest(out)["complete"] is False
    # its frames carry no hash (a person may have put or edited one since): never ours to replace, even
    # with --overwrite (a tool with --resume continues such a run); the user removes them
    for extra in ([], ["--overwrite"]):
        assert "killed outright" in refused(_run, clip, tiny_weights, out, "--end", "2", *extra)
        assert read_index_png(out / "00000.png").max() == 1
    (out / "00000.png").unlink()
    (out / ".00001.a1b2c3d4.tmp.png").unlink()
    assert _run(clip, tiny_weights, out, "--end", "2") == 0
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "00000.png", "00001.png"]


def test_claim_folder_rules(tmp_path):
    out = tmp_path / "o"
    run = claim_folder(out, "t", patterns=["*.png", "sub/"], register=False)
    (out / "sub").mkdir()
    (out / "sub" / "a.png").write_bytes(b"1")
    (out / "b.png").write_bytes(b"2")
    run.finish(130)
    m = read_manifest(out)
    assert m["complete"] is False and m["status"] == "interrupted" and sorted(m["files"]) == ["b.png", "sub/a.png"]
    assert m["files"]["b.png"] == {"size": 1, "sha256": hashlib.sha256(b"2").hexdigest()}
    assert m["dirs"] == ["sub"]
    # resume keeps an incomplete run of ours
    claim_folder(out, "t", resume=True, register=False)
    assert (out / "sub" / "a.png").exists()
    # a fresh claim removes our files and the folders we made
    claim_folder(out, "t", register=False)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST]
    # a run still writing into the folder (its process alive) is never emptied by another
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        m = read_manifest(out)
        m.update(status="running", complete=False, pid=other.pid)
        (out / MANIFEST).write_text(json.dumps(m))
        with pytest.raises(InputError, match=f"process {other.pid}"):
            claim_folder(out, "t", register=False)
    finally:
        other.kill()
        other.wait()
    claim_folder(out, "t", register=False)  # once it is gone, its files are ours to replace
    # a manifest that is a folder, or not ours, never counts
    (out / "x").write_text("x")
    with pytest.raises(InputError, match="not ours"):
        claim_folder(out, "t", register=False)
    shutil.rmtree(out)
    (out / MANIFEST).mkdir(parents=True)
    with pytest.raises(InputError, match="is a folder"):
        claim_folder(out, "t", overwrite=True, register=False)


# ------------------------------------------------------------------------------------------- benchmarks


@pytest.mark.parametrize("out", ["{root}/Annotations/480p", "{root}/Annotations", "{root}",
                                 "{root}/JPEGImages/480p/synth-000", "{link}", "{root}/ImageSets/../Annotations/480p",
                                 "{root}/ImageSets"])
def test_benchmark_out_is_never_the_ground_truth(davis, tmp_path, copy_first, out):
    os.symlink(davis / "Annotations" / "480p", tmp_path / "gt")
    before = _snapshot(davis)
    code, stdout, stderr = copy_first("davis2017", davis, out.format(root=davis, link=tmp_path / "gt"))
    assert code == 2, stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "dataset" in lines[0]
    assert _snapshot(davis) == before


def test_benchmark_reruns_and_resumes_its_own_folder(davis, tmp_path, copy_first):
    out = tmp_path / "res"
    assert copy_first("davis2017", davis, out)[0] == 0
    m = read_manifest(out)
    assert m["complete"] and m["tool"] == "benchmarks.vos"
    assert "global_results-val.csv" in m["files"] and "synth-000/00000.png" in m["files"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["synth-000",
                                                                                                 "synth-001"]
    # another sequence only, without --resume: the earlier run is emptied (no mix of two runs)
    assert copy_first("davis2017", davis, out, "--sequences", "synth-001")[0] == 0
    assert not (out / "synth-000").exists() and (out / "synth-001" / "00003.png").exists()
    # an interrupted run of ours: --resume continues it and keeps what it finished
    m = read_manifest(out)
    m["complete"], m["status"] = False, "interrupted"
    (out / MANIFEST).write_text(json.dumps(m))
    code, stdout, _ = copy_first("davis2017", davis, out, "--resume")
    assert code == 0 and "skipped" in stdout
    # a file of the user's: refused
    (out / "mine.txt").write_text("x")
    code, _, stderr = copy_first("davis2017", davis, out)
    assert code == 2 and "mine.txt" in stderr and (out / "mine.txt").exists()
    # benchmarks.evaluate into a results folder of ours adds its CSVs to the manifest
    (out / "mine.txt").unlink()
    assert evaluate_cli.main(["--dataset", "davis2017", "--root", str(davis), "--results", str(out),
                              "--sequences", "synth-001"]) == 0
    assert "global_results-val.csv" in read_manifest(out)["files"]


def test_evaluate_refuses_the_ground_truth_as_results(davis, refused):
    before = _snapshot(davis)
    assert "dataset annotations" in refused(evaluate_cli.main, ["--dataset", "davis2017", "--root", str(davis),
                                                                "--results", str(davis / "Annotations" / "480p")])
    assert _snapshot(davis) == before  # no CSV written into the ground truth


def test_evaluate_never_replaces_a_users_csv(davis, tmp_path, capsys, refused):
    """A fresh adversarial pass: a user's global_results-val.csv in --results was replaced (exit 0)."""
    results = tmp_path / "res"
    shutil.copytree(davis / "Annotations" / "480p", results)
    (results / "global_results-val.csv").write_text("my notes")
    argv = ["--dataset", "davis2017", "--root", str(davis), "--results", str(results)]
    assert "global_results-val.csv exists and was not written by a run of ours" in refused(evaluate_cli.main, argv)
    assert evaluate_cli.main([*argv, "--overwrite"]) == 2  # whatever --overwrite says
    assert (results / "global_results-val.csv").read_text() == "my notes"
    (results / "global_results-val.csv").unlink()
    assert evaluate_cli.main(argv) == 0
    capsys.readouterr()
    assert evaluate_cli.main(argv) == 0  # our own CSVs are replaced on a rerun
    assert sorted(read_manifest(results)["files"]) == ["global_results-val.csv", "per-sequence_results-val.csv"]


def test_a_failed_start_keeps_the_earlier_run_and_a_folder_where_a_png_goes_is_refused(clip, tiny_weights, tmp_path,
                                                                                        refused):
    out = tmp_path / "masks"
    assert _run(clip, tiny_weights, out, "--end", "2") == 0
    before = _snapshot(out)
    assert "missing.safetensors" in refused(_run, clip, str(tmp_path / "missing.safetensors"), out)
    assert _snapshot(out) == before  # nothing removed before the model and the mask were ready
    (out / "00004.png").mkdir()  # a folder where a frame's PNG goes
    assert "00004.png" in refused(_run, clip, tiny_weights, out, "--overwrite")


# ----------------------------------------------------------------------------- a fresh adversarial pass


def test_a_link_inside_the_output_folder_is_refused_even_with_overwrite(tmp_path):
    """`--overwrite` wrote through a symlinked sub-folder into a dataset's annotations (and scored them as
    perfect) and through a linked objects/ into a user's folder: we never write through links."""
    victim = tmp_path / "annotations" / "aa"
    victim.mkdir(parents=True)
    (victim / "00000.png").write_bytes(b"user data")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / "aa")
    os.symlink(victim, out / "objects")
    for overwrite in (False, True):
        with pytest.raises(InputError, match="symbolic link; we never write through links"):
            claim_folder(out, "vos.run", overwrite=overwrite, patterns=["*.png", "objects/"], register=False)
    assert (victim / "00000.png").read_bytes() == b"user data"


def test_named_outputs_never_land_on_the_folders_own_files(tmp_path):
    """--rle OUT/00003.png replaced a frame's index PNG with JSON; --alpha OUT replaced the index PNGs."""
    out = tmp_path / "out"
    with pytest.raises(InputError, match="writes its own files"):
        claim_folder(out, "vos.run", patterns=["*.png", "objects/"], files={"--rle": out / "00003.png"},
                     register=False, dry_run=True)
    claim_folder(out, "vos.run", patterns=["*.png", "objects/"], files={"--rle": out / "lost.json"},
                 register=False, dry_run=True)  # a name of its own inside the folder is fine

    from types import SimpleNamespace

    from vos.io.outputs import claim_run_outputs

    video = tmp_path / "frames"
    video.mkdir()
    args = SimpleNamespace(video=str(video), first_mask=None, masks=None, config=None, overlay=None, matte=None,
                           rle=None, report=None, overwrite=False)
    for alpha in (out, out / "rgba"):
        args.alpha = str(alpha)
        with pytest.raises(InputError, match="one folder cannot hold two outputs"):
            claim_run_outputs(args, None, out)
    args.alpha = str(tmp_path / "rgba")
    claim_run_outputs(args, None, out)


@pytest.mark.parametrize("option, value, words", [
    ("--fps", "nan", "--fps: must be a number > 0"), ("--fps", "0", "--fps: must be a number > 0"),
    ("--fps", "1e9", "--fps: must be a number > 0"), ("--fps=-5", None, "--fps: must be a number > 0"),
    ("--set", "engine.adapt.seed=-1", "seed"), ("--set", "engine.refine.model_pixels=1e308", "model_pixels"),
])
def test_values_the_adversarial_pass_found_unchecked_are_one_line(tmp_path, capsys, option, value, words):
    frames = tmp_path / "frames"
    frames.mkdir()
    try:  # argparse ends a bad option itself (one line, exit 2); settings are checked by main
        code = main([str(frames), "--first-mask", str(tmp_path / "m.png"), "--out", str(tmp_path / "o"), option,
                 *([value] if value else [])])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
