"""Tests for vos.io.video: real mp4/avi files written with PyAV, real PNG/JPEG folders (the sources that
need no file: tests/test_sources.py)."""

from __future__ import annotations

import logging
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vos.io.video import DEFAULT_FPS, DecordSource, FolderSource, FrameSource, PyAVSource, VideoError, open_source
from helpers import DATA, encode_video, require
BACKENDS = ["decord", "pyav"]


def brightness(i: int) -> int:
    """Grey level of frame i: 6 levels apart, so compression cannot confuse neighbours."""
    return 10 + (6 * i) % 240


def write_video(path: Path, n: int, size=(48, 64), fps=24, gop: int | None = None,
                codec: str = "libx264") -> Path:
    """Write n frames of uniform brightness(i) with a small moving white square."""
    frames = [np.full((*size, 3), brightness(i), np.uint8) for i in range(n)]
    for i, frame in enumerate(frames):
        x = (2 * i) % (size[1] - 8)
        frame[:8, x:x + 8] = 255
    return encode_video(path, frames, codec, Fraction(fps).limit_denominator(1001), {"g": str(gop)} if gop else None)


def write_empty(path: Path, codec: str) -> Path:
    """A container given a video stream and no frame."""
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=24)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.start_encoding()
    container.close()
    return path


def level(frame: np.ndarray) -> float:
    """Mean of the bottom half (never covered by the square)."""
    return float(frame[frame.shape[0] // 2:].mean())


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("vos-prefetch")]


def wait_no_prefetch_threads(timeout: float = 2.0) -> list[threading.Thread]:
    deadline = time.monotonic() + timeout
    while prefetch_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return prefetch_threads()


@pytest.fixture(autouse=True)
def no_leaked_threads():
    yield
    assert wait_no_prefetch_threads() == []


@pytest.fixture(scope="module")
def video40(tmp_path_factory) -> Path:
    # gop 8: several keyframes, so seeking (start > 0, reverse) is really exercised
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", 40, gop=8)


@pytest.fixture(scope="module")
def video300(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "long.mp4", 300, size=(32, 32), gop=30)


def open_backend(path: Path, backend: str, **kw) -> FrameSource:
    source = open_source(path, backend, **kw)
    assert isinstance(source, DecordSource if backend == "decord" else PyAVSource)
    return source


# --------------------------------------------------------------------------- video files


@pytest.mark.parametrize("backend", BACKENDS)
def test_video_metadata_and_frames(video40, backend):
    with open_backend(video40, backend, chunk_size=7) as source:
        assert source.num_frames == 40
        assert source.size == (48, 64)
        assert source.fps == pytest.approx(24.0)
        assert source.name == str(video40)
        frames = list(source.iter_frames())
    assert [i for i, _ in frames] == list(range(40))
    for i, frame in frames:
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.flags["C_CONTIGUOUS"]
        assert abs(level(frame) - brightness(i)) < 2.5, i
        # the white square is where it was written
        x = (2 * i) % (64 - 8)
        assert frame[1:7, x + 1:x + 7].mean() > 200


def test_backends_agree(video40):
    with open_backend(video40, "decord") as a, open_backend(video40, "pyav") as b:
        assert (a.num_frames, a.size) == (b.num_frames, b.size)
        assert a.fps == pytest.approx(b.fps)
        for (ia, fa), (ib, fb) in zip(a.iter_frames(), b.iter_frames()):
            assert ia == ib
            assert np.abs(fa.astype(int) - fb.astype(int)).mean() < 2.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start,stop", [(0, 40), (13, 31), (17, 18), (0, 5), (35, 40), (9, 9)])
def test_ranges_forward_and_reverse(video40, backend, start, stop):
    with open_backend(video40, backend, chunk_size=6) as source:
        forward = list(source.iter_frames(start, stop))
        backward = list(source.iter_frames(start, stop, reverse=True))
    assert [i for i, _ in forward] == list(range(start, stop))
    assert [i for i, _ in backward] == list(range(stop - 1, start - 1, -1))
    for i, frame in forward + backward:
        assert abs(level(frame) - brightness(i)) < 2.5, i


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_defaults_to_end_and_reverse_from_middle(video40, backend):
    with open_backend(video40, backend) as source:
        assert [i for i, _ in source.iter_frames(33)] == list(range(33, 40))
        # propagate backwards from an annotated frame 20
        assert [i for i, _ in source.iter_frames(0, 21, reverse=True)] == list(range(20, -1, -1))


def test_ntsc_rate_kept(tmp_path):
    path = write_video(tmp_path / "ntsc.mp4", 12, fps=30000 / 1001)
    for backend in BACKENDS:
        with open_backend(path, backend) as source:
            assert source.fps == pytest.approx(29.97, abs=1e-3)
            assert source.num_frames == 12


def test_auto_prefers_decord_and_logs(video40, caplog):
    with caplog.at_level(logging.DEBUG, logger="vos.io.video"):
        with open_source(video40) as source:
            assert isinstance(source, DecordSource)
    assert "decoding with decord" in caplog.text


def test_auto_falls_back_to_pyav_when_decord_cannot_open(tmp_path, caplog):
    # decord cannot open an AVI without frames; PyAV can, and reports it empty
    path = write_empty(tmp_path / "empty.avi", "mpeg4")
    with caplog.at_level(logging.DEBUG, logger="vos.io.video"):
        with pytest.raises(VideoError, match=r"empty\.avi: the video has no frames"):
            open_source(path)
    assert "decoding with PyAV" in caplog.text


def test_pyav_counts_frames_when_container_does_not_say(tmp_path):
    path = write_video(tmp_path / "clip.mkv", 15)  # matroska stores no frame count
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0
    with PyAVSource(path) as source:
        assert source.num_frames == 15
        assert [i for i, _ in source.iter_frames(4, 9, reverse=True)] == [8, 7, 6, 5, 4]


# --------------------------------------------------------------------------- prefetch


@pytest.mark.parametrize("backend", BACKENDS)
def test_long_stream_prefetch_bounded_and_thread_stops(video300, backend):
    chunk, ahead = 4, 2
    with open_backend(video300, backend, chunk_size=chunk, prefetch_chunks=ahead) as source:
        assert source.num_frames == 300
        gen = source.iter_frames()
        seen = []
        for i, frame in gen:
            seen.append(i)
            if i == 41:
                break
            if i % 10 == 0:
                time.sleep(0.05)  # a slow consumer: the producer would race ahead if unbounded
                prefetcher = next(iter(source._prefetchers))
                assert prefetcher.queue.maxsize == ahead
                assert prefetcher.queue.qsize() <= ahead
                chunks_taken = i // chunk + 1
                assert prefetcher.produced - chunks_taken <= ahead
                assert len(prefetch_threads()) == 1
        assert seen == list(range(42))
        gen.close()  # the consumer stopped early
        assert prefetch_threads() == []
        assert source._prefetchers == set()
        # a second, full pass works and ends its thread by itself
        assert sum(1 for _ in source.iter_frames()) == 300
        assert prefetch_threads() == []


def test_close_stops_an_active_iteration(video300):
    source = open_source(video300, "pyav", chunk_size=4)
    gen = source.iter_frames()
    next(gen)
    assert len(prefetch_threads()) == 1
    source.close()
    assert prefetch_threads() == []
    with pytest.raises(VideoError, match="closed"):
        for _ in gen:
            pass
    with pytest.raises(VideoError, match="closed"):
        source.iter_frames()


def test_abandoned_generator_stops_its_thread(video40):
    source = open_source(video40, "decord", chunk_size=4)
    gen = source.iter_frames()
    next(gen)
    del gen  # CPython finalises the generator, whose finally stops the thread
    assert wait_no_prefetch_threads() == []
    source.close()


# --------------------------------------------------------------------------- folders


def write_pngs(folder: Path, names: list[str], size=(20, 30)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        value = int(Path(name).stem.split("_")[-1])
        image = np.full((*size, 3), value * 10, np.uint8)
        image[0, 0] = (255, 0, 0)  # red in RGB: catches a BGR/RGB mix-up
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def test_folder_natural_sort(tmp_path):
    names = [f"{i}.png" for i in range(1, 13)]
    write_pngs(tmp_path / "f", names[::-1])
    (tmp_path / "f" / "notes.txt").write_text("not a frame")
    with FolderSource(tmp_path / "f", chunk_size=5) as source:
        assert source.frame_names == [str(i) for i in range(1, 13)]
        assert source.num_frames == 12 and source.size == (20, 30)
        assert source.fps == DEFAULT_FPS
        frames = list(source.iter_frames())
        backwards = [i for i, _ in source.iter_frames(2, 9, reverse=True)]
    assert [i for i, _ in frames] == list(range(12))
    for i, frame in frames:
        assert frame[5, 5, 0] == (i + 1) * 10
        assert tuple(frame[0, 0]) == (255, 0, 0)
    assert backwards == list(range(8, 1, -1))


def test_folder_davis_names_and_jpeg(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in [10, 0, 2, 1]:
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), np.full((16, 24, 3), 20 * i, np.uint8))
    source = open_source(folder, fps=30)
    assert isinstance(source, FolderSource)
    assert source.frame_names == ["00000", "00001", "00002", "00010"]
    assert source.fps == 30.0
    levels = [float(f.mean()) for _, f in source.iter_frames()]
    assert levels == pytest.approx([0, 20, 40, 200], abs=2)


def test_folder_gray_and_rgba_frames_become_rgb(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.full((8, 8), 77, np.uint8))
    cv2.imwrite(str(folder / "1.png"), np.dstack([np.full((8, 8), c, np.uint8) for c in (30, 20, 10, 128)]))
    frames = [f for _, f in FolderSource(folder).iter_frames()]
    assert frames[0].shape == (8, 8, 3) and (frames[0] == 77).all()
    assert tuple(frames[1][0, 0]) == (10, 20, 30)  # BGRA on disk -> RGB, alpha dropped


def test_folder_mismatched_size_error_names_file_in_consumer(tmp_path):
    write_pngs(tmp_path / "f", [f"{i}.png" for i in range(1, 8)])
    write_pngs(tmp_path / "f", ["6.png"], size=(21, 30))
    source = FolderSource(tmp_path / "f", chunk_size=2)
    got = []
    with pytest.raises(VideoError, match=r"6\.png: frame size 30x21 differs from the first frame's 30x20"):
        for i, _ in source.iter_frames():
            got.append(i)
    assert got == [0, 1, 2, 3, 4]  # every frame before the bad one was delivered
    source.close()


def test_folder_errors(tmp_path):
    with pytest.raises(VideoError, match=r"nope: no such folder"):
        FolderSource(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(VideoError, match=r"empty: the folder has no \.jpg/\.jpeg/\.png frames"):
        open_source(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "0.png").write_bytes(b"not a png")
    with pytest.raises(VideoError, match=r"0\.png: cannot read the image"):
        FolderSource(tmp_path / "broken")


def test_real_davis_folder():
    seq = require(DATA / "davis2016-train-240p" / "JPEGImages" / "240p" / "bear")
    files = sorted(seq.glob("*.jpg"))
    with open_source(seq, chunk_size=8) as source:
        assert source.num_frames == len(files)
        assert source.size == (240, 427)
        assert source.frame_names[:3] == ["00000", "00001", "00002"]
        last = list(source.iter_frames(len(files) - 3, reverse=True))
    assert [i for i, _ in last] == [len(files) - 1, len(files) - 2, len(files) - 3]
    expected = cv2.cvtColor(cv2.imread(str(files[-1])), cv2.COLOR_BGR2RGB)
    assert np.array_equal(last[0][1], expected)


def test_real_video_file_both_backends():
    path = require(DATA / "seggpt-examples" / "video_3.mp4")
    with open_backend(path, "decord") as a, open_backend(path, "pyav") as b:
        assert a.num_frames == b.num_frames == 66
        assert a.size == b.size == (480, 854)
        assert a.fps == pytest.approx(5.0) and b.fps == pytest.approx(5.0)
        fa = dict(a.iter_frames(60, 66, reverse=True))
        fb = dict(b.iter_frames(60, 66))
    assert sorted(fa) == sorted(fb) == list(range(60, 66))
    for i in fa:
        assert np.abs(fa[i].astype(int) - fb[i].astype(int)).mean() < 3.0


def test_open_source_dispatch_and_bad_inputs(video40, tmp_path):
    with open_source(video40, "pyav") as src:
        assert open_source(src) is src
    with open_source(str(video40)) as src:
        assert src.num_frames == 40
    with pytest.raises(VideoError, match="unsupported input type int"):
        open_source(42)
    with pytest.raises(VideoError, match="unsupported input type bytes"):
        open_source(b"\x00\x01")
    with pytest.raises(ValueError, match="backend must be one of"):
        open_source(video40, backend="ffmpeg")
    with pytest.raises(ValueError, match="fps cannot be overridden"):
        open_source(video40, fps=10)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_missing_file(tmp_path, backend):
    with pytest.raises(VideoError, match=r"missing\.mp4: no such file"):
        open_source(tmp_path / "missing.mp4", backend)


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_text_file_named_mp4(tmp_path, backend):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n")
    with pytest.raises(VideoError, match=r"notes\.mp4: (not a readable video|cannot open as a video)") as info:
        open_source(path, backend)
    assert "\n" not in str(info.value)


def test_mp4_without_video_stream(tmp_path):
    path = write_empty(tmp_path / "nothing.mp4", "libx264")  # the mp4 muxer drops the empty track
    with pytest.raises(VideoError, match=r"nothing\.mp4: the file has no video stream"):
        open_source(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_index_out_of_range(video40, backend):
    with open_backend(video40, backend) as source:
        with pytest.raises(VideoError, match=r"clip\.mp4: start frame 41 is out of range \(video has 40 frames\)"):
            source.iter_frames(41)
        with pytest.raises(VideoError, match=r"stop frame 50 is out of range"):
            source.iter_frames(0, 50, reverse=True)
        with pytest.raises(VideoError, match=r"start frame -1 is out of range"):
            source.iter_frames(-1)
        with pytest.raises(VideoError, match=r"stop frame 3 is out of range \(start 5"):
            source.iter_frames(5, 3)


