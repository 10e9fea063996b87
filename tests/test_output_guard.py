"""Every output guarded like --out, and the library checks what it is given (the cases of an adversarial pass).

A file is ours to replace or delete only while it holds what a run of ours wrote (`seggpt.outputs`):
the user's own files, a mask a person corrected after our run, and names slipped into a manifest are
never touched, with or without --overwrite. The principle test at the end puts such files in every
target of every output option of every tool and checks that no byte of them changes. In-process calls,
tiny weights, no adaptation: the refusals come before any model is built.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seggpt import SegGPT, SegGPTPredictor
from seggpt.errors import InputError, check_input_file
from seggpt.io import save_index_png, write_mp4
from seggpt.outputs import MANIFEST, claim_files, claim_folder, file_record, read_manifest
from seggpt.run import main as seggpt_run
from vos import VideoSegmenter
from vos.data.synthetic import make_clip
from vos.demo import main as demo_main
from vos.run import main


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard-clip")
    frames, labels = make_clip(4, 4, size=(48, 64), num_objects=2)
    write_mp4(root / "clip.mp4", frames, fps=8)
    save_index_png(root / "mask.png", labels[0])
    Image.fromarray(frames[0]).save(root / "frame.jpg")
    return root


def _vos_run(clip, weights, *extra):
    return main([str(clip / "clip.mp4"), "--first-mask", str(clip / "mask.png"), "--weights", weights, "--memory", "1",
                 "--quiet", "--end", "3", *extra])


def _bytes(paths):
    return {p: Path(p).read_bytes() for p in paths}


def _refused_with_or_without_overwrite(claim, target, match, **kwargs):
    """`claim` (claim_folder or claim_files) of `target` raises an InputError matching `match`, --overwrite or not."""
    for overwrite in (False, True):
        with pytest.raises(InputError, match=match):
            claim(target, "t", overwrite=overwrite, register=False, **kwargs)


# ------------------------------------------------------------------------------------------- data loss


@pytest.mark.parametrize("flag", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_alpha_never_writes_into_a_folder_of_the_users(clip, tiny_weights, tmp_path, refused, flag):
    mine = tmp_path / "mine"
    mine.mkdir()
    save_index_png(mine / "00000.png", np.ones((48, 64), np.uint8))  # where an RGBA PNG would go
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(mine / "00001.jpg")  # a folder of the user's frames
    before = _bytes(mine.iterdir())
    assert "00000.png" in refused(_vos_run, clip, tiny_weights, "--out", str(tmp_path / "o"), "--alpha", str(mine),
                                  *flag)
    assert _bytes(mine.iterdir()) == before and sorted(p.name for p in mine.iterdir()) == ["00000.png", "00001.jpg"]


@pytest.mark.parametrize("option, name", [("--overlay", "user.mp4"), ("--report", "user.json"),
                                          ("--rle", "user.json"), ("--matte", "user.mkv")])
def test_overwrite_never_replaces_a_single_file_we_did_not_write(clip, tiny_weights, tmp_path, refused, option, name):
    user = tmp_path / name
    user.write_bytes(b"the user's own")
    message = refused(_vos_run, clip, tiny_weights, "--out", str(tmp_path / "o"), option, str(user), "--overwrite")
    assert name in message and user.read_bytes() == b"the user's own"


def test_a_hand_corrected_mask_and_a_name_slipped_into_the_manifest_are_never_lost(clip, tiny_weights, tmp_path,
                                                                                  refused):
    out = tmp_path / "o"
    assert _vos_run(clip, tiny_weights, "--out", str(out)) == 0
    manifest = read_manifest(out)
    assert manifest["format"] == "seggpt-vos-manifest/2" and manifest["files"]["00001.png"] == file_record(out / "00001.png")
    # an editor corrects a mask by hand, and someone adds a name to the manifest
    save_index_png(out / "00001.png", np.full((48, 64), 2, np.uint8))
    (out / "notes.txt").write_text("mine")
    data = json.loads((out / MANIFEST).read_text())
    data["files"]["notes.txt"] = {"size": 4, "sha256": "0" * 64}
    (out / MANIFEST).write_text(json.dumps(data))
    kept = _bytes([out / "00001.png", out / "notes.txt"])
    for flag in ([], ["--overwrite"]):
        message = refused(_vos_run, clip, tiny_weights, "--out", str(out), *flag)
        assert "00001.png" in message and "notes.txt" in message
    assert _bytes([out / "00001.png", out / "notes.txt"]) == kept
    assert (out / "00000.png").exists()  # nothing of ours removed either: the run was refused before any work


@pytest.mark.parametrize("manifest", [
    "{not json",
    json.dumps({"format": "someone-else/9", "files": {"victim.txt": None}}),
    json.dumps({"format": "seggpt-vos-manifest/2", "files": {"../victim.txt": None}, "dirs": [], "patterns": []}),
    json.dumps({"format": "seggpt-vos-manifest/2", "files": {"/abs/victim.txt": None}, "dirs": [], "patterns": []}),
], ids=["unparsable", "unknown format", "path outside", "absolute path"])
def test_a_manifest_we_cannot_trust_counts_as_none(tmp_path, manifest):
    out = tmp_path / "o"
    out.mkdir()
    (out / MANIFEST).write_text(manifest)
    (out / "victim.txt").write_text("mine")
    (tmp_path / "victim.txt").write_text("mine too")
    assert read_manifest(out) is None
    _refused_with_or_without_overwrite(claim_folder, out, "victim.txt")
    assert (out / "victim.txt").read_text() == "mine" and (tmp_path / "victim.txt").read_text() == "mine too"


def test_a_manifest_of_format_1_lists_ours_only_with_overwrite(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "00000.png").write_bytes(b"old run")
    (out / MANIFEST).write_text(json.dumps({"format": "seggpt-vos-manifest/1", "files": ["00000.png"], "dirs": [],
                                            "patterns": ["*.png"], "external": [], "status": "complete"}))
    with pytest.raises(InputError, match="--overwrite"):
        claim_folder(out, "t", patterns=["*.png"], register=False)
    assert (out / "00000.png").exists()
    claim_folder(out, "t", patterns=["*.png"], overwrite=True, register=False)
    assert not (out / "00000.png").exists()


def test_links_are_never_written_through_nor_over(tmp_path):
    target = tmp_path / "precious.json"
    target.write_text("mine")
    (tmp_path / "link.json").symlink_to(target)
    _refused_with_or_without_overwrite(claim_files, {"--report": tmp_path / "link.json"}, "symbolic link")
    assert target.read_text() == "mine"


def test_single_files_are_recorded_in_their_folder_and_replaced_while_unchanged(tmp_path):
    path = tmp_path / "report.json"
    run = claim_files({"--report": path}, "t", register=False)
    path.write_text("ours")
    run.finish(0)
    manifest = read_manifest(tmp_path)
    assert manifest["claimed"] is False
    assert manifest["files"]["report.json"] == {"size": 4, "sha256": hashlib.sha256(b"ours").hexdigest()}
    claim_files({"--report": path}, "t", register=False)  # ours, unchanged: a rerun may replace it
    path.write_text("edited by a person")
    with pytest.raises(InputError, match="changed since"):
        claim_files({"--report": path}, "t", overwrite=True, register=False)


# ------------------------------------------------------------------------------------------- inputs


def test_seggpt_run_never_writes_into_the_folder_of_its_inputs(clip, tiny_weights, tmp_path, refused, monkeypatch):
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("00000.jpg", "00001.jpg"):
        (frames / name).write_bytes((clip / "frame.jpg").read_bytes())
    (frames / "mask.png").write_bytes((clip / "mask.png").read_bytes())
    before = _bytes(frames.iterdir())
    argv = ["--prompt", str(frames / "00000.jpg"), str(frames / "mask.png"), str(frames / "00001.jpg"),
            "--weights", tiny_weights]
    assert "holds the query image 1" in refused(seggpt_run, [*argv, "--out", str(frames)])
    monkeypatch.chdir(frames)
    assert "holds the" in refused(seggpt_run, [*argv, "--out", "."])
    assert _bytes(frames.iterdir()) == before


@pytest.mark.parametrize("argv, words", [
    (["", "--first-mask", "{clip}/mask.png"], "the video: an empty path"),
    (["{clip}/clip.mp4", "--first-mask", ""], "--first-mask: an empty path"),
    (["{clip}/clip.mp4", "--first-mask", "{clip}/mask.png", "--out", ""], "--out: an empty path"),
    (["{clip}/clip.mp4", "--first-mask", "{clip}/mask.png", "--overlay", ""], "--overlay: an empty path"),
    (["{clip}/clip.mp4", "--first-mask", "{clip}/mask.png", "--report", ""], "--report: an empty path"),
    (["{clip}/clip.mp4", "--first-mask", "{clip}/mask.png", "--alpha", ""], "--alpha: an empty path"),
    (["{clip}/frame.jpg", "--first-mask", "{clip}/mask.png"], "python -m seggpt.run"),
    (["{clip}/clip.mp4", "--first-mask", "{clip}/mask.png", "--soft", "--soft-width", "1e-300"], "--soft-width"),
], ids=["video", "mask", "out", "overlay", "report", "alpha", "image as video", "soft width"])
def test_empty_paths_an_image_as_video_and_a_tiny_soft_width_are_one_line(clip, tiny_weights, tmp_path, refused,
                                                                         monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(clip=clip) for a in argv]
    with np.errstate(all="raise"):  # no numpy warning either
        assert words in refused(main, [*argv, "--weights", tiny_weights, "--quiet", "--end", "2"])
    assert list(tmp_path.iterdir()) == []  # nothing written (not even the default --out folder)


class _Unblocker:
    """Watches a FIFO from a thread: a reader stuck opening it for longer than `seconds` is released
    (the FIFO opened for writing, then closed) and `blocked` says it happened."""

    def __init__(self, fifo: Path, seconds: float = 15.0):
        self.fifo, self.seconds, self.blocked, self.done = fifo, seconds, False, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        if self.done.wait(self.seconds):
            return
        while not self.done.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until someone reads
            except OSError:
                self.done.wait(0.1)
                continue
            self.blocked = True
            os.close(fd)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


@pytest.mark.parametrize("which", ["video", "mask"])
def test_a_fifo_given_as_an_input_never_blocks(clip, tiny_weights, tmp_path, refused, which):
    fifo = tmp_path / ("pipe.mp4" if which == "video" else "pipe.png")
    os.mkfifo(fifo)
    video, mask = (fifo, clip / "mask.png") if which == "video" else (clip / "clip.mp4", fifo)
    with _Unblocker(fifo) as watch:
        message = refused(main, [str(video), "--first-mask", str(mask), "--weights", tiny_weights, "--out",
                                 str(tmp_path / "o"), "--quiet"])
    assert not watch.blocked and "FIFO" in message
    with pytest.raises(InputError, match="FIFO"):
        check_input_file(fifo, "mask image")


def test_add_new_mask_refuses_nan_and_infinite_masks(clip, tiny_weights):
    seg = VideoSegmenter(tiny_weights)
    state = seg.init_state(str(clip / "clip.mp4"))
    for bad in (np.full((48, 64), np.nan), np.full((48, 64), np.inf)):
        with pytest.raises(InputError, match="NaN or infinite"):
            seg.add_new_mask(state, 0, 1, bad)
    assert state.object_ids == []


def test_init_state_refuses_channels_first_frames_and_one_image(tiny_weights):
    seg = VideoSegmenter(tiny_weights)
    with pytest.raises(InputError, match="channels-first"):
        seg.init_state(torch.zeros(3, 3, 48, 64, dtype=torch.uint8))
    with pytest.raises(InputError, match="one colour image"):
        seg.init_state(np.zeros((48, 64, 3), np.uint8))
    assert seg.init_state(torch.zeros(3, 48, 64, 3, dtype=torch.uint8)).num_frames == 3  # (T,H,W,C) tensors work


def test_predictor_infer_names_the_bad_argument(tiny_weights):
    predictor = SegGPTPredictor(SegGPT.from_pretrained(tiny_weights))
    h, w = predictor.image_size
    img, prompts = torch.zeros(1, 3, h, w), torch.zeros(1, 2, 3, h, w)
    assert predictor.infer(img, prompts, prompts).shape == (1, 3, h, w)
    cases = [
        ((img.numpy(), prompts, prompts), "images: a float torch.Tensor"),
        ((img, prompts[:, 0], prompts), "the prompt axis K is missing"),
        ((img.to(torch.uint8), prompts, prompts), "images: ImageNet-normalised floats"),
        ((img, prompts, torch.full_like(prompts, float("nan"))), "prompt_masks: holds NaN"),
        ((img, prompts[:, :, :, :-1], prompts), "prompt_images: (B,K,3,H,W) with 3 channels"),
        ((torch.zeros(2, 3, h, w), prompts, prompts), "disagree on the batch"),
    ]
    for args, words in cases:
        with pytest.raises(InputError) as info:
            predictor.infer(*args)
        assert words in str(info.value)
    with pytest.raises(InputError, match="embedding_type"):
        predictor.infer(img, prompts, prompts, embedding_type="panoptic")
    with pytest.raises(InputError, match="dtype"):
        SegGPTPredictor(predictor.model, dtype=torch.int8)


def test_the_app_never_lists_a_link_out_of_its_root(tiny_weights, tmp_path, clip):
    from vos.editing.editor import Editor

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.mp4").write_bytes((clip / "clip.mp4").read_bytes())
    (root / "clip.mp4").write_bytes((clip / "clip.mp4").read_bytes())
    (root / "elsewhere").symlink_to(outside)
    (root / "secret.mp4").symlink_to(outside / "secret.mp4")
    (root / "inside.mp4").symlink_to(root / "clip.mp4")  # a link that stays under root is fine
    ed = Editor(VideoSegmenter(tiny_weights), root)
    assert ed.media() == ["clip.mp4", "inside.mp4"]


# ------------------------------------------------------------------------------------------- the principle


def _users_files(folder: Path) -> list:
    """A user's own files where a tool writes: a PNG where ours go, a note, a sub-folder's file."""
    folder.mkdir(parents=True, exist_ok=True)
    save_index_png(folder / "00000.png", np.ones((48, 64), np.uint8))
    (folder / "notes.txt").write_text("mine")
    (folder / "001").mkdir(exist_ok=True)
    (folder / "001" / "00000.png").write_bytes(b"mine too")
    return [folder / "00000.png", folder / "notes.txt", folder / "001" / "00000.png"]


def test_no_byte_of_a_users_file_changes_whatever_the_tool_and_the_flags(clip, tiny_weights, davis, tmp_path, capsys,
                                                                         refused):
    from benchmarks import evaluate as evaluate_cli
    from seggpt.tune import main as seggpt_tune
    from training.__main__ import main as train_main

    outputs = {"--out": "o", "--alpha": "a", "--overlay": "ov.mp4", "--report": "r.json", "--rle": "rle.json",
               "--matte": "m.mkv"}
    every = [x for option, name in outputs.items() for x in (option, str(tmp_path / name))]
    # 1. our own run of every output, then a person edits one of them at a time
    assert _vos_run(clip, tiny_weights, *every, "--object-masks", "--soft") == 0
    ours = [tmp_path / "o" / "00001.png", tmp_path / "a" / "001" / "00001.png", tmp_path / "ov.mp4",
            tmp_path / "r.json", tmp_path / "rle.json", tmp_path / "m.mkv", tmp_path / "o" / "objects" / "001" / "00001.png"]
    assert all(p.is_file() for p in ours)
    capsys.readouterr()
    for path in ours:
        original = path.read_bytes()
        path.write_bytes(original + b"edited")
        for flag in ([], ["--overwrite"]):
            assert path.name in refused(_vos_run, clip, tiny_weights, *every, "--object-masks", "--soft", *flag), path
            assert path.read_bytes() == original + b"edited"
        path.write_bytes(original)  # as we wrote it: ours again
    assert _vos_run(clip, tiny_weights, *every, "--object-masks", "--soft") == 0  # the rerun still just works
    # 2. a user's files in every target folder and at every single path, every tool
    users = []

    def mine(path: Path, data: bytes) -> None:  # a file of the user's
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        users.append(path)

    for option, name in outputs.items():
        if option in ("--out", "--alpha"):
            users += _users_files(tmp_path / "u" / name)
        else:
            mine(tmp_path / "u" / name, b"the user's " + name.encode())
    user_every = [x for option, name in outputs.items() for x in (option, str(tmp_path / "u" / name))]
    seggpt_out = tmp_path / "u" / "seggpt"
    users += _users_files(seggpt_out)
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(seggpt_out / "frame_mask.png")
    users.append(seggpt_out / "frame_mask.png")
    mine(tmp_path / "u" / "prompt.safetensors", b"a user's prompt")
    demo = tmp_path / "u" / "demo"
    mine(demo / "clip.mp4", b"a user's clip")
    train_out = tmp_path / "u" / "train"
    users += _users_files(train_out)
    results = tmp_path / "u" / "results"
    shutil.copytree(davis / "Annotations" / "480p", results)
    mine(results / "global_results-val.csv", b"my own scores")
    before = _bytes(users)
    for flag in ([], ["--overwrite"]):
        calls = [
            lambda: _vos_run(clip, tiny_weights, *user_every, *flag),
            lambda: seggpt_run(["--prompt", str(clip / "frame.jpg"), str(clip / "mask.png"), str(clip / "frame.jpg"),
                                "--weights", tiny_weights, "--out", str(seggpt_out), *flag]),
            lambda: seggpt_tune(["--weights", tiny_weights, "--example", str(clip / "frame.jpg"), str(clip / "mask.png"),
                                 "--steps", "1", "--out", str(tmp_path / "u" / "prompt.safetensors")]),
            lambda: demo_main([str(demo)]),
            lambda: train_main(["--config", "configs/train_small.yaml", f"out_dir={train_out}", "steps=1",
                                *flag]),
            lambda: evaluate_cli.main(["--dataset", "davis2017", "--root", str(davis), "--results", str(results),
                                       *flag]),
        ]
        for n, call in enumerate(calls):
            assert call() == 2, (n, flag)
            capsys.readouterr()
    assert _bytes(users) == before


# ------------------------------------------------------------------------------------------- a second adversarial pass


@pytest.mark.parametrize("name", [".holiday.backup1.tmp", ".vos-write-test-mine", ".notes.0123abcd.tmp.png"])
def test_a_users_file_named_like_our_temporary_files_is_never_deleted(tmp_path, name):
    out = tmp_path / "o"
    claim_folder(out, "t", patterns=["*.png"], register=False).finish(0)
    (out / name).write_text("mine")
    _refused_with_or_without_overwrite(claim_folder, out, re.escape(name), patterns=["*.png"])
    assert (out / name).read_text() == "mine"


@pytest.mark.parametrize("manifest", [
    lambda m: m["files"].update({"notes.txt": None}),  # format 2 lists every file with its hash
    lambda m: m.update(files="[" * 5000 + "]" * 5000),  # replaced below by a hostile nesting
], ids=["null record in format 2", "deep nesting"])
def test_names_slipped_into_a_complete_manifest_and_hostile_json_never_count(tmp_path, manifest):
    out = tmp_path / "o"
    claim_folder(out, "t", patterns=["*.txt"], register=False).finish(0)
    (out / "notes.txt").write_text("mine")
    data = json.loads((out / MANIFEST).read_text())
    manifest(data)
    text = json.dumps(data) if isinstance(data["files"], dict) else "[" * 5000 + "]" * 5000
    (out / MANIFEST).write_text(text)
    _refused_with_or_without_overwrite(claim_folder, out, "notes.txt", patterns=["*.txt"])
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("extra, words", [
    (["--config", ""], "--config: an empty path"),
    (["--weights", ""], "weights: an empty name"),
    (["--device", "bogus"], "bogus"),
    (["--names", "1="], "--names"),
], ids=["config", "weights", "device", "names"])
def test_a_refused_run_creates_nothing(clip, tiny_weights, tmp_path, refused, extra, words):
    weights = [] if "--weights" in extra else ["--weights", tiny_weights]
    assert words in refused(main, [str(clip / "clip.mp4"), "--first-mask", str(clip / "mask.png"), *weights, "--quiet",
                                   "--out", str(tmp_path / "o"), "--report", str(tmp_path / "r.json"), *extra])
    assert list(tmp_path.iterdir()) == []


def test_report_naming_the_out_folder_is_one_path_for_two_outputs(clip, tiny_weights, tmp_path, refused):
    message = refused(_vos_run, clip, tiny_weights, "--out", str(tmp_path / "o"), "--report", str(tmp_path / "o"))
    assert "one path cannot hold two outputs" in message and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, words", [
    (["--frames", "0"], "--frames"), (["--objects", "0"], "num_objects"), (["--objects", "1000"], "num_objects"),
])
def test_demo_bad_counts_are_one_line_and_create_nothing(tmp_path, refused, argv, words):
    assert words in refused(demo_main, [str(tmp_path / "d"), *argv]) and not (tmp_path / "d").exists()
    (tmp_path / "file").write_text("mine")
    assert "not a folder" in refused(demo_main, [str(tmp_path / "file")]) and (tmp_path / "file").read_text() == "mine"


def test_weights_errors_are_input_errors_and_a_fifo_prompt_file_never_blocks(clip, tiny_weights, tmp_path, refused):
    for bad in ("", str(tmp_path / "missing.safetensors")):
        with pytest.raises(InputError):
            VideoSegmenter(bad)
    fifo = tmp_path / "prompt.safetensors"
    os.mkfifo(fifo)
    with _Unblocker(fifo) as watch:
        message = refused(seggpt_run, ["--prompt-file", str(fifo), str(clip / "frame.jpg"), "--out",
                                       str(tmp_path / "o"), "--weights", tiny_weights])
    assert not watch.blocked and "FIFO" in message
    predictor = SegGPTPredictor(SegGPT.from_pretrained(tiny_weights))
    h, w = predictor.image_size
    with pytest.raises(InputError, match="B >= 1"):
        predictor.infer(torch.zeros(0, 3, h, w), torch.zeros(0, 1, 3, h, w), torch.zeros(0, 1, 3, h, w))
