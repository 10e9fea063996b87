"""Tests for vos.io.sources, as vos.io.video re-exports it: the bounded prefetcher, chunk plans, natural order,
arrays and iterators as frame sources, the frame rate a source is given."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from vos.io.sources import _Prefetcher
from vos.io.video import ArraySource, IteratorSource, VideoError, chunk_plan, natural_key, open_source


# --------------------------------------------------------------------------- prefetch


def test_prefetcher_reraises_producer_error_after_items():
    def produce():
        yield 1
        yield 2
        raise RuntimeError("disk on fire")

    prefetcher = _Prefetcher(produce, 1, "vos-prefetch:test")
    got = []
    with pytest.raises(RuntimeError, match="disk on fire"):
        for item in prefetcher:
            got.append(item)
    prefetcher.close()
    assert got == [1, 2]
    assert not prefetcher.thread.is_alive()


def test_prefetcher_close_unblocks_a_full_queue():
    prefetcher = _Prefetcher(lambda: iter(range(10**9)), 2, "vos-prefetch:test")
    time.sleep(0.05)
    assert prefetcher.queue.qsize() == 2
    start = time.monotonic()
    prefetcher.close()
    assert time.monotonic() - start < 1.0
    assert not prefetcher.thread.is_alive()


def test_chunk_plan():
    assert chunk_plan(3, 12, 4, False) == [range(3, 7), range(7, 11), range(11, 12)]
    assert chunk_plan(3, 12, 4, True) == [range(8, 12), range(4, 8), range(3, 4)]
    assert chunk_plan(5, 5, 4, True) == []


def test_natural_key():
    names = ["frame_10.png", "frame_2.png", "Frame_1.png", "b.png", "a10.png", "a9.png"]
    assert sorted(names, key=natural_key) == ["a9.png", "a10.png", "b.png", "Frame_1.png",
                                             "frame_2.png", "frame_10.png"]


# --------------------------------------------------------------------------- arrays and iterators


def test_array_source():
    video = np.stack([np.full((6, 5, 3), i, np.uint8) for i in range(10)])
    source = open_source(video, fps=12)
    assert isinstance(source, ArraySource)
    assert (source.num_frames, source.size, source.fps) == (10, (6, 5), 12.0)
    assert [(i, int(f[0, 0, 0])) for i, f in source.iter_frames(3, 6, reverse=True)] == [(5, 5), (4, 4), (3, 3)]
    gray = ArraySource(np.zeros((4, 6, 5), np.uint8))
    assert next(gray.iter_frames())[1].shape == (6, 5, 3)
    listed = open_source([np.zeros((6, 5), np.uint8), np.zeros((6, 5, 4), np.uint8)])
    assert [f.shape for _, f in listed.iter_frames()] == [(6, 5, 3), (6, 5, 3)]


def test_array_source_errors():
    with pytest.raises(VideoError, match="uint8"):
        ArraySource(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(VideoError, match="differ in size"):
        ArraySource([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)])
    with pytest.raises(VideoError, match="no frames"):
        ArraySource([])
    source = ArraySource(np.zeros((3, 4, 4, 3), np.uint8))
    with pytest.raises(VideoError, match=r"start frame 4 is out of range \(video has 3 frames\)"):
        source.iter_frames(4)
    with pytest.raises(VideoError, match=r"stop frame 5 is out of range"):
        source.iter_frames(0, 5)


def test_iterator_source():
    def gen():
        for i in range(8):
            yield np.full((4, 6, 3), i, np.uint8)

    source = open_source(gen(), fps=10)
    assert isinstance(source, IteratorSource)
    assert source.num_frames is None
    assert source.size == (4, 6)  # peeks the first frame without losing it
    first = [(i, int(f[0, 0, 0])) for i, f in itertools.islice(source.iter_frames(), 3)]
    assert first == [(0, 0), (1, 1), (2, 2)]
    # resumes where it stopped; may skip ahead
    assert [i for i, _ in source.iter_frames(5)] == [5, 6, 7]
    with pytest.raises(VideoError, match=r"cannot go back to frame 0, the iterator is already at frame 8"):
        source.iter_frames(0)
    with pytest.raises(VideoError, match="cannot read an iterator backwards"):
        source.iter_frames(0, 4, reverse=True)


def test_iterator_source_len_and_errors():
    frames = (np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8))
    source = IteratorSource(frames)
    assert source.num_frames == 2
    with pytest.raises(VideoError, match="frame 1 has size"):
        list(source.iter_frames())
    short = IteratorSource(iter([np.zeros((4, 4, 3), np.uint8)]))
    with pytest.raises(VideoError, match=r"start frame 3 is out of range \(the iterator ended after 1 frames\)"):
        list(short.iter_frames(3))


def test_a_given_frame_rate_is_checked_where_sources_read_it(tmp_path):
    """fps=0 (or NaN) became 24 fps silently in every source that carries no rate; one rule now (given_fps)."""
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    assert open_source(frames).fps == 24.0 and open_source(frames, fps=12.5).fps == 12.5
    for bad in (0, -1, float("nan"), float("inf"), 1e9):
        with pytest.raises(VideoError, match="fps must be a number > 0"):
            open_source(frames, fps=bad)
        with pytest.raises(VideoError, match="fps must be a number > 0"):
            open_source(iter(frames), fps=bad)
