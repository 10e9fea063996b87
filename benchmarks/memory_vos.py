"""Memory stays bounded on long videos: peak RSS after 1,000 frames against after N frames.

Writes a long synthetic mp4 (streamed: the generator never holds the clip), runs the engine over it
with a small model and the full prompt memory, writes every index PNG through the writer thread, and
reads the process's peak resident set (VmHWM) at checkpoints. A streaming engine's peak at 10,000
frames is within a few percent of its peak at 1,000.

    python -m benchmarks.memory_vos --frames 10000 --preset test-tiny --size 96 128
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from seggpt import SegGPT, get_config
from seggpt.io import save_index_png, write_mp4
from vos import VideoSegmenter
from vos.data.synthetic import iter_clip, make_clip
from vos.io.writers import BackgroundWriter
from seggpt.cli import ArgumentParser

from .report import claim_json, write_json


def rss_mib(field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process, MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not found in /proc/self/status")


def main(argv=None) -> int:
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--preset", default="test-tiny")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--size", type=int, nargs=2, default=[96, 128], metavar=("H", "W"))
    ap.add_argument("--memory", type=int, default=8)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    claimed = claim_json(ap, args.json, "benchmarks.memory_vos")
    torch.manual_seed(0)
    model = SegGPT.from_pretrained(args.weights) if args.weights else SegGPT(get_config(args.preset)).eval()
    h, w = args.size
    marks = sorted(set(c for c in args.checkpoints if c < args.frames) | {args.frames})
    readings = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        video = write_mp4(tmp / "long.mp4", (f for f, _ in iter_clip(5, args.frames, (h, w), 3)), fps=30)
        print(f"wrote {args.frames} frames in {time.perf_counter() - t:.0f} s; RSS {rss_mib('VmRSS'):.0f} MiB",
              flush=True)
        _, first = make_clip(5, 1, size=(h, w), num_objects=3)
        seg = VideoSegmenter(model, config={"memory": args.memory}, device="cpu")
        state = seg.init_state(video)
        seg.add_mask(state, 0, first[0].astype(np.int64))
        (tmp / "out").mkdir()
        t = time.perf_counter()
        with BackgroundWriter(maxsize=32) as writer:
            for n, r in enumerate(seg.propagate(state), start=1):
                writer.submit(save_index_png, tmp / "out" / f"{r.frame_idx:05d}.png", r.labels)
                if n in marks:
                    readings[n] = dict(peak_rss_mib=rss_mib("VmHWM"), rss_mib=rss_mib("VmRSS"),
                                       seconds=time.perf_counter() - t)
                    print(f"frame {n}: peak RSS {readings[n]['peak_rss_mib']:.1f} MiB, "
                          f"RSS {readings[n]['rss_mib']:.1f} MiB, {n / readings[n]['seconds']:.1f} frames/s", flush=True)
    first_mark, last_mark = marks[0], marks[-1]
    growth = readings[last_mark]["peak_rss_mib"] / readings[first_mark]["peak_rss_mib"] - 1
    print(f"peak RSS growth from frame {first_mark} to frame {last_mark}: {100 * growth:+.2f}%")
    write_json(claimed, args.json, dict(args=vars(args), readings=readings, growth=growth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
