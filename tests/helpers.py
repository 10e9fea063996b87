"""What several test files share: the shared data folder (and a skip where it lacks a path), random model
inputs, a session given one mask and propagated, tiny training settings and video files written with PyAV."""
from __future__ import annotations

from pathlib import Path

import av
import cv2
import pytest
import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: the settings of a tiny training run: test-tiny, batches of 2, no loader worker, no evaluation, no checkpoint
TINY_TRAIN = {"model": "test-tiny", "batch_size": 2, "num_workers": 0, "eval_every": 0, "ckpt_every": 0,
              "log_every": 1, "progress": "false", "synthetic_size": "[48, 64]", "threads": 1}


def require(path: Path) -> Path:
    """`path`, or the test skipped where the shared data lacks it."""
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def write_frames(folder: Path, frames, suffix: str = ".png", params=()) -> Path:
    """RGB frames saved as 00000.png, 00001.png, ... (or another suffix, with cv2.imwrite's params) in a new
    `folder`."""
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}{suffix}"), frame[:, :, ::-1], params)
    return folder


def random_inputs(b: int, k: int, cfg, seed: int = 0) -> tuple:
    """Queries (b, 3, h, w), prompt images and prompt masks (b, k, 3, h, w) at the config's image size."""
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.image_size
    return (torch.randn(b, 3, h, w, generator=g), torch.randn(b, k, 3, h, w, generator=g),
            torch.randn(b, k, 3, h, w, generator=g))


def start(seg, source, frame_idx: int, mask, obj_id: int | None = None):
    """A session of `seg` on `source`, given `mask` on one frame (a label map, or object `obj_id`'s mask)."""
    state = seg.init_state(source)
    if obj_id is None:
        seg.add_mask(state, frame_idx, mask)
    else:
        seg.add_new_mask(state, frame_idx, obj_id, mask)
    return state


def segment(seg, source, frame_idx: int, mask, obj_id: int | None = None, **kw) -> tuple:
    """start's session and the results of one propagation (keywords: propagate's): (state, [FrameResult, ...])."""
    state = start(seg, source, frame_idx, mask, obj_id)
    return state, list(seg.propagate(state, **kw))


def tiny_train(out_dir, **settings) -> list[str]:
    """The `key=value` overrides of a tiny training run into `out_dir`, `settings` on top of TINY_TRAIN."""
    return [f"{k}={v}" for k, v in {**TINY_TRAIN, "out_dir": out_dir, **settings}.items()]


def encode_video(path: Path, frames, codec: str, rate, options=None, container_options=None) -> Path:
    """RGB uint8 frames encoded with PyAV (yuv420p) into `path`."""
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
