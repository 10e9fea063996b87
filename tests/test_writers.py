"""Tests for vos.io.writers: the overlay video and the background writer thread."""

from __future__ import annotations

import threading
import time

import av
import numpy as np
import pytest

from seggpt.colors import davis_palette
from seggpt.io import OutputError, overlay, read_label_png, save_index_png
from vos.io.writers import BackgroundWriter, OverlayVideoWriter


# --------------------------------------------------------------------------- overlay video


def test_overlay_video_writes_the_blended_frames(tmp_path):
    labels = np.zeros((32, 48), np.uint8)
    labels[8:24, 10:30] = 2
    frames = [np.full((32, 48, 3), 60 + 20 * i, np.uint8) for i in range(5)]
    with OverlayVideoWriter(tmp_path / "o.mp4", fps=10, size=(32, 48), palette=davis_palette()) as writer:
        for frame in frames:
            writer.write_labels(frame, labels)
    assert writer.frames_written == 5
    with av.open(str(tmp_path / "o.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    assert len(decoded) == 5
    for got, frame in zip(decoded, frames):
        want = overlay(frame, labels, davis_palette()).astype(int)
        assert np.abs(got[12:20, 14:26].astype(int) - want[12:20, 14:26]).mean() < 4  # inside the object
        assert np.abs(got[:4, :8].astype(int) - want[:4, :8]).mean() < 4  # background
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]


# --------------------------------------------------------------------------- background writer


def test_background_writer_runs_in_order_and_writes_pngs(tmp_path):
    done = []
    with BackgroundWriter(maxsize=3) as writer:
        for i in range(10):
            writer.submit(save_index_png, tmp_path / f"{i:05d}.png", np.full((4, 4), i, np.uint8))
            writer.submit(done.append, i)
    assert done == list(range(10))
    assert [int(read_label_png(tmp_path / f"{i:05d}.png")[0, 0]) for i in range(10)] == list(range(10))
    assert not any(t.name == "vos-writer" for t in threading.enumerate())


def test_background_writer_reraises_first_error():
    ran = []

    def fail(msg):
        raise OutputError(msg)

    writer = BackgroundWriter()
    writer.submit(ran.append, 1)
    writer.submit(fail, "disk full")
    writer.submit(fail, "second error")
    writer.submit(ran.append, 2)  # skipped: the run already failed
    with pytest.raises(OutputError, match="disk full"):
        writer.close()
    assert ran == [1]
    with pytest.raises(RuntimeError, match="after close"):
        writer.submit(ran.append, 3)


def test_background_writer_submit_fails_fast_after_error():
    writer = BackgroundWriter()
    writer.submit(lambda: 1 / 0)
    deadline = time.monotonic() + 2
    while writer.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(ZeroDivisionError):
        writer.submit(print, "never")
    with pytest.raises(ZeroDivisionError):
        writer.close()


def test_background_writer_queue_is_bounded():
    release = threading.Event()
    writer = BackgroundWriter(maxsize=2)
    writer.submit(release.wait)  # the worker blocks on this one
    time.sleep(0.05)
    writer.submit(int)
    writer.submit(int)  # queue now full
    blocked = threading.Thread(target=writer.submit, args=(int,))
    blocked.start()
    time.sleep(0.1)
    assert blocked.is_alive()  # back-pressure: the producer waits
    release.set()
    blocked.join(timeout=2)
    assert not blocked.is_alive()
    writer.close()


def test_background_writer_body_error_wins():
    with pytest.raises(KeyError):
        with BackgroundWriter() as writer:
            writer.submit(lambda: 1 / 0)
            time.sleep(0.05)
            raise KeyError("body")


