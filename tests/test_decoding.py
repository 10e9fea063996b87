"""Decoding: a damaged input ends with one line naming the frame, after every earlier PNG is
whole; decoders print nothing of their own; rotated videos come out as a player shows them."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.adversarial.runner import write_ffv1
from seggpt.io import read_label_png as read_index_png, save_index_png, write_mp4
from seggpt.outputs import read_manifest
from vos.io.decoders import _first_line
from vos.run import main
from vos.data.synthetic import make_clip
from vos.io.video import DecordSource, PyAVSource, VideoError, open_source, quiet_fd2
from helpers import encode_video, write_frames

H, W = 48, 64


def write_faststart_mp4(path: Path, frames) -> Path:
    """An mp4 whose index (moov) is at the front, as streaming tools write it: truncating it keeps it openable."""
    return encode_video(path, frames, "mpeg4", 8, container_options={"movflags": "faststart"})


def rotate_mp4(src: Path, dst: Path, degrees: int) -> Path:
    """A copy of an mp4 whose track header's display matrix turns it by `degrees` clockwise (as phones write)."""
    data = bytearray(src.read_bytes())
    i = data.find(b"tkhd")
    version = data[i + 4]
    offset = i + 8 + (20 if version == 0 else 32) + 8 + 8
    one, neg = 0x10000, -0x10000
    a, b, c, d = {90: (0, one, neg, 0), 180: (neg, 0, 0, neg), 270: (0, neg, one, 0)}[degrees]
    struct.pack_into(">9i", data, offset, a, b, 0, c, d, 0, 0, 0, 0x40000000)
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    frames, labels = make_clip(4, 12, size=(H, W), num_objects=1)
    full = write_faststart_mp4(root / "full.mp4", frames)
    data = full.read_bytes()
    (root / "cut.mp4").write_bytes(data[: int(len(data) * 0.6)])
    save_index_png(root / "mask.png", labels[0])
    return root, frames, labels


@pytest.mark.parametrize("backend", ["pyav", "auto"])
def test_truncated_video_yields_every_frame_before_the_cut_then_names_it(media, backend):
    root, _, _ = media
    got = []
    with pytest.raises(VideoError, match=r"cut\.mp4: frame (\d+) cannot be decoded") as info:
        for index, frame in open_source(root / "cut.mp4", backend=backend).iter_frames():
            got.append(index)
    assert got == list(range(len(got))) and 0 < len(got) < 12
    assert f"frame {len(got)} cannot be decoded" in str(info.value)


def test_decord_failing_midway_yields_the_frames_before(media, monkeypatch):
    root, _, _ = media
    source = DecordSource(root / "full.mp4", chunk_size=8)
    real = source._reader

    class Broken:  # what decord does on a damaged packet: the batch fails, so does frame 5 alone
        def get_batch(self, indices):
            if 5 in indices:
                raise RuntimeError("[10:00:00] /src/video_reader.cc:1: Error sending packet")
            return real.get_batch(indices)

        def __getitem__(self, i):
            if i == 5:
                raise RuntimeError("[10:00:00] /src/video_reader.cc:1: Error sending packet")
            return real[i]

    source._reader = Broken()
    got = []
    with pytest.raises(VideoError, match="frame 5 cannot be decoded"):
        for index, _ in source.iter_frames():
            got.append(index)
    assert got == [0, 1, 2, 3, 4]


def _vos_run(video: Path, mask: Path, weights: str, out: Path) -> tuple:
    """`python -m vos.run` on `video` in a process of its own: (the process, its stderr's lines)."""
    p = subprocess.run([sys.executable, "-m", "vos.run", str(video), "--first-mask", str(mask), "--weights", weights,
                        "--out", str(out), "--memory", "1", "--quiet"], capture_output=True, text=True, timeout=300)
    return p, p.stderr.strip().splitlines()


def test_vos_run_on_a_truncated_video_one_line_whole_pngs_incomplete_manifest(media, tiny_weights, tmp_path):
    """A real process: exit 2, one line (no FFmpeg or decord logging), every PNG written is whole."""
    root, _, _ = media
    out = tmp_path / "out"
    p, lines = _vos_run(root / "cut.mp4", root / "mask.png", tiny_weights, out)
    assert p.returncode == 2, p.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cannot be decoded" in lines[0], lines
    n = int(lines[0].split("frame ")[1].split()[0])
    pngs = sorted(out.glob("*.png"))
    assert [q.name for q in pngs] == [f"{i:05d}.png" for i in range(n)]
    for q in pngs:
        assert read_index_png(q).shape == (H, W)
    manifest = read_manifest(out)
    assert manifest["complete"] is False and manifest["status"] == "stopped: bad input"
    assert sorted(manifest["files"]) == [q.name for q in pngs]


def test_video_damaged_in_the_middle_prints_one_line_and_no_ffmpeg_logging(media, tiny_weights, tmp_path):
    """Bytes overwritten inside the packets (not a cut): decord's decoding threads meet the damage
    whenever they run, so FFmpeg's own level must be quiet (`silence_ffmpeg`), not only fd 2 during calls."""
    root, frames, _ = media
    full = write_faststart_mp4(tmp_path / "long.mp4", list(frames) * 4)
    data = bytearray(full.read_bytes())
    rng = np.random.default_rng(0)
    start = len(data) // 3
    data[start:start + len(data) // 3:5] = rng.integers(0, 256, len(data[start:start + len(data) // 3:5])).astype(
        np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    p, lines = _vos_run(damaged, root / "mask.png", tiny_weights, tmp_path / "out")
    assert not any(" @ 0x" in line for line in lines), lines  # "[mpeg4 @ 0x...] header damaged"
    if p.returncode != 0:  # how far a damaged file decodes is FFmpeg's business; what we print is ours
        assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
        assert "/github/" not in lines[0] and "Check failed" not in lines[0], lines[0]


def test_decord_messages_lose_their_nested_cpp_headers():
    nested = RuntimeError("[14:03:36] /src/threaded_decoder.cc:292: [14:03:36] /src/threaded_decoder.cc:218: "
                          "Check failed: avcodec_send_packet(ctx, pkt) >= 0 (-1094995529 vs. 0) Thread worker: "
                          "Error sending packet.")
    assert _first_line(nested) == "Thread worker: Error sending packet."
    assert _first_line(RuntimeError("[12:00:00] /src/video_reader.cc:151: ERROR opening: x.mp4")) == \
        "ERROR opening: x.mp4"


def test_unreadable_video_prints_no_decoder_logging(tmp_path):
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    code = ("import sys\nfrom vos.io.video import open_source, VideoError\n"
            "try:\n    open_source(sys.argv[1])\nexcept VideoError as e:\n    print('error:', e, file=sys.stderr)\n")
    p = subprocess.run([sys.executable, "-c", code, str(bogus)], capture_output=True, text=True, timeout=120)
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and p.stderr.startswith("error: "), p.stderr


def test_quiet_fd2_drops_decoder_lines_and_passes_the_rest(capfd):
    captured = []
    with quiet_fd2(captured):
        os.write(2, b"[12:00:00] /github/workspace/src/video/video_reader.cc:83: ERROR opening\n")
        os.write(2, b"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55e80a55af40] moov atom not found\n")
        os.write(2, b"progress 50%\n")
    assert capfd.readouterr().err == "progress 50%\n"
    assert len(captured) == 2 and "moov atom" in captured[1]


@pytest.mark.parametrize("decode_s, exit_wait_s", [(1.5, 10.0), (60.0, 0.5)], ids=["decoder-ends", "decoder-stuck"])
def test_a_line_written_while_a_decoder_thread_captures_fd2_survives_the_exit(decode_s, exit_wait_s):
    """fd 2 belongs to the process: while the prefetch thread decodes (fd 2 captured), the main thread's
    last line ('interrupted: ...' after Ctrl-C) goes into the capture. The process used to exit first and
    lose it (a CI run: exit 130, no line); the exit now waits for the capture and passes it on, or takes
    fd 2 back from a decoder stuck past EXIT_WAIT_S."""
    code = ("import os, sys, threading, time\n"
            "import vos.io.decoders\n"
            "from vos.io.decoders import quiet_fd2\n"
            f"vos.io.decoders.EXIT_WAIT_S = {exit_wait_s}\n"
            "started = threading.Event()\n"
            "def decode():\n"
            "    with quiet_fd2():\n"
            "        started.set()\n"
            "        os.write(2, b'[mov,mp4 @ 0x55e80a55af40] decoder noise\\n')\n"
            f"        time.sleep({decode_s})\n"
            "threading.Thread(target=decode, daemon=True).start()\n"
            "started.wait()\n"
            "print('interrupted: only complete files were written', file=sys.stderr)\n"
            "sys.exit(130)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 130 and p.stderr == "interrupted: only complete files were written\n", p.stderr


@pytest.mark.parametrize("damage, words", [
    (lambda jpeg: jpeg.write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 2]), "cut short"),
    (lambda jpeg: jpeg.write_bytes(b"not an image at all"), "cannot read the image"),
    (lambda jpeg: cv2.imwrite(str(jpeg), np.zeros((H // 2, W // 2, 3), np.uint8)), "differs from the first frame"),
], ids=["truncated", "garbage", "size-change"])
def test_damaged_frame_folder(media, tiny_weights, tmp_path, capfd, damage, words):
    """Frame 00004.jpg of a JPEG folder cut short, replaced by text or by a frame of another size."""
    _, frames, _ = media
    folder = write_frames(tmp_path / "frames", frames, ".jpg")
    damage(folder / "00004.jpg")
    out = tmp_path / "out"
    assert main([str(folder), "--first-mask", str(media[0] / "mask.png"), "--weights", tiny_weights, "--out",
                 str(out), "--memory", "1", "--quiet"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "00004.jpg" in err[0] and words in err[0], err  # no libjpeg warning either
    assert sorted(q.name for q in out.glob("*.png")) == [f"{i:05d}.png" for i in range(4)]


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_video_comes_out_as_a_player_shows_it(tmp_path, degrees):
    frames = np.zeros((3, H, W, 3), np.uint8)
    frames[:, : H // 2, : W // 4] = 255  # a white block at the top left
    plain = write_faststart_mp4(tmp_path / "plain.mp4", list(frames))
    rotated = rotate_mp4(plain, tmp_path / "rotated.mp4", degrees)
    expected = np.rot90(frames[0], -degrees // 90)  # clockwise, as the display matrix says
    for backend in ("auto", "pyav"):
        source = open_source(rotated, backend=backend)
        assert isinstance(source, PyAVSource) and source.size == expected.shape[:2]
        _, frame = next(iter(source.iter_frames()))
        assert frame.shape == expected.shape
        assert np.abs(frame.astype(int) - expected).mean() < 12  # the block where a player shows it
    with pytest.raises(VideoError, match="display rotation"):
        DecordSource(rotated)
    assert open_source(plain).size == (H, W)


@pytest.mark.parametrize("width,height", [(8, 8), (16, 16), (24, 10), (48, 48), (31, 20)])
def test_sizes_decord_mangles_are_read_by_pyav(tmp_path, width, height):
    """decord returns (8, 8, 12) arrays for an 8x8 video and fails on 24x10 or 48x48: `auto` checks its first
    frame at open and reads such a file with PyAV."""
    path = tmp_path / "tiny.mkv"
    frames = [np.full((height, width, 3), 60 * i, np.uint8) for i in range(3)]
    write_ffv1(str(path), frames, pix_fmt="yuv444p")
    got = [f for _, f in open_source(str(path)).iter_frames(0, 3)]
    assert len(got) == 3 and all(np.abs(g.astype(int) - f).max() <= 2 for g, f in zip(got, frames))


def test_no_capture_starts_once_the_exit_has_begun_and_nothing_waits_for_one():
    """After the exit hook (run here in a child process), a decoder thread's next `quiet_fd2` neither blocks
    (a finaliser joining that thread would hang the exit) nor captures (nothing would pass its text on)."""
    code = ("import os, threading\n"
            "import vos.io.decoders as d\n"
            "d._end_captures_at_exit()\n"
            "def decode():\n"
            "    with d.quiet_fd2():\n"
            "        os.write(2, b'written after the exit began\\n')\n"
            "t = threading.Thread(target=decode)\n"
            "t.start()\n"
            "t.join(timeout=10)\n"
            "print('joined' if not t.is_alive() else 'blocked')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "joined" and p.stderr == "written after the exit began\n", (p.stdout, p.stderr)


def test_webm_playback_encodes_after_decord_opened_a_video(tmp_path):
    """decord bundles its own FFmpeg: loaded before PyAV, it broke PyAV's VP8 / VP9 encoders (the app's WebM
    playback failed with "Invalid argument" once a video had been opened). In a fresh process, as the app."""
    frames, _ = make_clip(1, 4, size=(48, 64), num_objects=1)
    write_mp4(tmp_path / "clip.mp4", frames, fps=10)
    code = ("import sys, numpy as np\n"
            "from vos.io.video import open_source\n"
            "source = open_source(sys.argv[1])\n"
            "from vos.io.writers import PLAYABLE_ENCODINGS, PlaybackWriter\n"
            "for enc in PLAYABLE_ENCODINGS:\n"
            "    w = PlaybackWriter(sys.argv[2] + enc.name + enc.suffix, source.fps, source.size, enc)\n"
            "    for _, f in source.iter_frames(0, source.num_frames):\n"
            "        w.write(f)\n"
            "    w.close()\n"
            "print('ok', type(source).__name__)\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "clip.mp4"), str(tmp_path / "play-")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok DecordSource", p.stderr[-500:]
