"""`python -m vos.run` end to end, and every bad input with its one-line message and exit code."""
import logging
import re
import signal
import subprocess
import sys
import time

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from seggpt.io import read_label_png, save_index_png, write_mp4
from vos.demo import main as demo
from vos.engine.segmenter import EngineError
from vos.run import build_parser, main
from vos.data.synthetic import make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    frames, labels = make_clip(2, 12, size=(64, 96), num_objects=2)
    write_mp4(root / "clip.mp4", frames, fps=8)
    save_index_png(root / "mask0.png", labels[0])
    save_index_png(root / "mask6.png", labels[6])
    return root, frames, labels


def _vos(video, mask, weights, out, *extra):
    return main([str(video), "--first-mask", str(mask), "--weights", weights, "--out", str(out), *extra])


def _decoded_frames(path):
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_end_to_end_with_overlay_and_mid_video_mask(clip, tiny_weights, tmp_path, capsys):
    root, frames, labels = clip
    out = tmp_path / "out"
    assert _vos(root / "clip.mp4", root / "mask6.png", tiny_weights, out, "--mask-frame", "6", "--overlay",
                str(tmp_path / "ov.mp4"), "--object-masks", "--memory", "2", "--quiet") == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [f"{i:05d}.png" for i in range(12)]
    assert np.array_equal(read_label_png(out / "00006.png"), labels[6])  # the annotated frame is the mask
    assert _decoded_frames(tmp_path / "ov.mp4") == 12
    ids = [int(v) for v in np.unique(labels[6]) if v]
    assert sorted(p.name for p in (out / "objects").iterdir()) == [f"{o:03d}" for o in ids]
    assert "12 frames" in capsys.readouterr().out
    assert not list(tmp_path.rglob(".*tmp*"))  # no temporary files left behind


def test_start_end_and_frame_folder(clip, tiny_weights, tmp_path):
    root, frames, labels = clip
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i}.jpg"), f[:, :, ::-1])
    out = tmp_path / "o"
    assert _vos(folder, root / "mask0.png", tiny_weights, out, "--mask-frame", "2", "--start", "2", "--end", "7",
                "--quiet") == 0
    assert sorted(p.stem for p in out.glob("*.png")) == [f"frame_{i}" for i in range(2, 7)]


def test_official_example_video(shared_data, tiny_weights, tmp_path):
    ex = shared_data / "seggpt-examples"
    out = tmp_path / "v3"
    assert _vos(ex / "video_3.mp4", ex / "video_3_target.png", tiny_weights, out, "--overlay", str(tmp_path / "v3.mp4"),
                "--memory", "1", "--quiet") == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 66
    first = read_label_png(pngs[0])
    assert first.shape == (480, 854) and set(np.unique(first)) == {0, 1}  # anti-aliased mask -> one object
    assert _decoded_frames(tmp_path / "v3.mp4") == 66


def test_bad_inputs(clip, tiny_weights, tmp_path, refused):
    root, frames, labels = clip
    video, mask = str(root / "clip.mp4"), str(root / "mask0.png")
    (tmp_path / "bogus.mp4").write_text("not a video")
    (tmp_path / "empty").mkdir()
    Image.fromarray(np.zeros((64, 96), np.uint8)).save(tmp_path / "blank.png")
    wrong = np.zeros((50, 50), np.uint8)
    wrong[10:20, 10:20] = 1
    save_index_png(tmp_path / "square.png", wrong)
    many = (np.arange(64 * 96).reshape(64, 96) % 300).astype(np.int32)
    Image.fromarray(many.astype(np.uint16)).save(tmp_path / "many.png")  # 16-bit grey: 299 ids
    (tmp_path / "afile").write_text("x")
    cases = [  # (video, mask, options after the common ones (the last of an option wins), words of the error)
        (str(tmp_path / "nope.mp4"), mask, [], ["nope.mp4"]),
        (str(tmp_path / "bogus.mp4"), mask, [], ["bogus.mp4"]),
        (str(tmp_path / "empty"), mask, [], ["empty"]),
        (video, str(tmp_path / "missing.png"), [], ["missing.png"]),
        (video, str(tmp_path / "blank.png"), [], ["blank.png", "no object"]),
        (video, str(tmp_path / "square.png"), [], ["aspect ratio"]),
        (video, mask, ["--mask-frame", "40"], ["--mask-frame 40"]),
        (video, mask, ["--start", "99"], ["--start 99 is out of range"]),
        (video, str(tmp_path / "many.png"), [], ["many.png"]),
        (video, mask, ["--out", str(tmp_path / "afile" / "sub")], ["afile"]),
        (video, mask, ["--weights", str(tmp_path / "none.pth")], ["none.pth"]),
    ]
    for source, first_mask, options, words in cases:
        argv = [source, "--first-mask", first_mask, "--weights", tiny_weights, "--quiet", "--out", str(tmp_path / "o")]
        err = refused(main, argv + options, last=True)
        assert all(w in err for w in words), (words, err)


def test_resized_mask_with_same_aspect_and_antialiased_rgb(clip, tiny_weights, tmp_path, caplog):
    root, frames, labels = clip
    big = cv2.resize((labels[0] > 0).astype(np.uint8) * 255, (192, 128), interpolation=cv2.INTER_NEAREST)
    soft = cv2.GaussianBlur(np.repeat(big[:, :, None], 3, axis=2), (5, 5), 0)  # anti-aliased white on black
    Image.fromarray(soft).save(tmp_path / "soft.png")
    assert _vos(root / "clip.mp4", tmp_path / "soft.png", tiny_weights, tmp_path / "o", "--end", "3") == 0
    assert "soft.png: mask is 192x128, frames are 96x64: resized with nearest" in caplog.text
    assert "soft.png: anti-aliased" in caplog.text
    assert set(np.unique(read_label_png(tmp_path / "o" / "00000.png"))) == {0, 1}


def test_no_traceback_in_a_real_process(clip, tmp_path):
    root, _, _ = clip
    p = subprocess.run([sys.executable, "-m", "vos.run", str(tmp_path / "missing.mp4"), "--first-mask",
                        str(root / "mask0.png"), "--weights", "small"], capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and p.stderr.strip().startswith("error: ")


def test_demo_clip_then_run(tiny_weights, tmp_path, capsys):
    assert demo([str(tmp_path / "ex"), "--frames", "6"]) == 0
    assert _vos(tmp_path / "ex" / "clip.mp4", tmp_path / "ex" / "clip_mask.png", tiny_weights, tmp_path / "m",
                "--quiet") == 0
    assert len(list((tmp_path / "m").glob("*.png"))) == 6


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU message")
@pytest.mark.parametrize("device, message", [("cuda:0", "no CUDA GPU is available"), ("tpu", "unknown device 'tpu'")])
def test_device_is_resolved_like_every_other_cli(clip, tiny_weights, tmp_path, refused, device, message):
    """cuda:N is a device like in benchmarks.vos (argparse used to refuse it as an invalid choice)."""
    root, _, _ = clip
    assert message in refused(_vos, root / "clip.mp4", root / "mask0.png", tiny_weights, tmp_path / "o", "--device",
                              device, "--quiet")


def _vos_run_process(tmp_path, frames, tiny_weights, *options, **popen):
    """`python -m vos.run` in a process of its own on a fresh one-object clip of `frames` frames (64x96, 8 fps),
    writing into tmp_path/out; returns the process and that folder."""
    clip_frames, labels = make_clip(5, frames, size=(64, 96), num_objects=1)
    write_mp4(tmp_path / "v.mp4", clip_frames, fps=8)
    save_index_png(tmp_path / "mask.png", labels[0])
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "vos.run", str(tmp_path / "v.mp4"), "--first-mask",
                             str(tmp_path / "mask.png"), "--weights", tiny_weights, "--out", str(out), *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    return proc, out


def test_sigterm_is_handled_like_ctrl_c(tiny_weights, tmp_path):
    """SIGTERM: exit 143, whole PNGs only, no temporary overlay left behind (it used to die at once)."""
    proc, out = _vos_run_process(tmp_path, 150, tiny_weights, "--overlay", str(tmp_path / "ov.mp4"), "--quiet",
                                 text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.png"))) < 3:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().startswith("terminated:") and len(err.strip().splitlines()) == 1
    pngs = sorted(out.glob("*.png"))
    assert 3 <= len(pngs) < 150
    for p in pngs:
        assert read_label_png(p).shape == (64, 96)  # every PNG written is whole
    assert not [p for p in tmp_path.rglob("*") if "tmp" in p.name], "temporary files left behind"
    assert not (tmp_path / "ov.mp4").exists()  # the unfinished overlay is removed, not left half-written


def test_adaptation_and_refinement_from_the_command_line(clip, tiny_weights, tmp_path, capsys, refused):
    root, frames, labels = clip
    rc = _vos(root / "clip.mp4", root / "mask0.png", tiny_weights, tmp_path / "o", "--adapt-steps", "2", "--refine",
              "--set", "engine.adapt.batch_size=2", "--end", "4", "--quiet")
    out = capsys.readouterr().out
    assert rc == 0 and out.startswith("adaptation ") and "then 4 frames" in out
    assert len(list((tmp_path / "o").glob("*.png"))) == 4
    err = refused(_vos, root / "clip.mp4", root / "mask0.png", tiny_weights, tmp_path / "p", "--adapt-steps", "-1",
                  "--quiet")
    assert "--adapt-steps: engine.adapt.steps must be >= 0" in err


def test_ctrl_c_during_adaptation_is_one_line_and_130(tiny_weights, tmp_path):
    """Adaptation shows its steps (a progress bar on stderr) and Ctrl-C stops it: exit 130, one line after the
    bar, no frame written (adaptation comes first), the output folder left for --resume or --overwrite."""
    proc, out = _vos_run_process(tmp_path, 4, tiny_weights, "--adapt-steps", "100000")
    seen = b""
    deadline = time.time() + 120
    while time.time() < deadline and not re.search(rb"adapting: +\d+%.*\| *\d+/100000", seen):
        seen += proc.stderr.read1(4096)
    assert re.search(rb"adapting: +\d+%.*\| *\d+/100000", seen), seen[-500:]
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    text = (seen + rest).decode()
    # the bar and the run's summary line come before it; the bar may not have ended its line when the
    # message comes, so the message is found where it starts, not at a line's start
    said = re.findall(r"interrupted: [^\r\n]*", text)
    after = text[text.rfind("interrupted: "):].strip().splitlines() if said else []
    assert proc.returncode == 130 and len(said) == 1 and len(after) == 1 and "Traceback" not in text, text[-600:]
    assert not list(out.glob("*.png"))


def test_the_weights_line_says_which_weights_and_why(clip, tiny_weights, tmp_path, caplog, capsys, monkeypatch):
    """The default (the official Hub weights) is named with its reason and the other choice, before
    the model loads (a first run downloads 1.5 GB); weights the user chose are only named with who chose them."""
    root, _, _ = clip
    run = [str(root / "clip.mp4"), "--first-mask", str(root / "mask0.png"), "--out", str(tmp_path / "o"), "--quiet"]
    caplog.set_level(logging.INFO, logger="vos.run")

    def offline(*args, **kwargs):  # no download in tests: the note must come before the model loads
        raise EngineError("offline in this test")

    monkeypatch.setattr("vos.run.VideoSegmenter", offline)
    assert main(run) == 2 and "offline in this test" in capsys.readouterr().err
    assert ("weights BAAI/seggpt-vit-large (the default of this command: the official model, the best masks; "
            "downloaded once from the Hugging Face Hub") in caplog.text
    assert "--weights small runs the packaged small model offline" in caplog.text
    monkeypatch.undo()

    caplog.clear()
    assert main(run + ["--weights", tiny_weights, "--overwrite"]) == 0
    assert f"weights {tiny_weights} (--weights)" in caplog.text and "the default" not in caplog.text
    config = tmp_path / "run.yaml"
    config.write_text(f"weights: {tiny_weights}\n")
    caplog.clear()
    assert main(run + ["--config", str(config), "--overwrite"]) == 0
    assert f"weights {tiny_weights} (--config {config})" in caplog.text and "the default" not in caplog.text
    caplog.clear()
    assert main(run + ["--config", str(config), "--set", f"weights={tiny_weights}", "--overwrite"]) == 0
    assert f"(--set weights={tiny_weights})" in caplog.text

    help_text = " ".join(build_parser().format_help().split())
    assert "(default: BAAI/seggpt-vit-large: the best masks; a 1.5 GB download the first time)" in help_text
