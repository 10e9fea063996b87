"""Model-only speed: our SegGPT against transformers' SegGPT on identical random weights.

Both run in this process, interleaved (ours, theirs, ours, ...) so that machine noise hits both alike.
For each K (prompts per query) it prints seconds per query, the ratio ours/transformers and the max
abs difference of the outputs. Reference semantics: with K = 1 transformers' own forward; with K > 1
transformers' layers driven with the official ensemble flags (benchmarks/reference.py), since transformers'
own ensemble differs from the official code at the merge block.

    python -m benchmarks.speed_model --preset vit-large --ks 1 4 8 --reps 1
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import List

import torch

from seggpt import SegGPT, get_config

from .reference import official_ensemble, transformers_loop, transformers_twin
from seggpt.cli import ArgumentParser


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # GPU kernels run asynchronously: time them to completion


def _time(fn, reps: int) -> tuple:
    best, out = float("inf"), None
    for _ in range(reps):
        _sync()
        t = time.perf_counter()
        out = fn()
        _sync()
        best = min(best, time.perf_counter() - t)
    return best, out


def run(preset: str, ks: List[int], reps: int, device: str, threads: int | None) -> list:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = get_config(preset)
    model = SegGPT(cfg).eval().to(device)
    hf = transformers_twin(model).to(device)
    h, w = cfg.image_size
    rows = []
    for k in ks:
        g = torch.Generator().manual_seed(k)
        img = torch.randn(1, 3, h, w, generator=g).to(device)
        pimg = torch.randn(1, k, 3, h, w, generator=g).to(device)
        pmask = torch.randn(1, k, 3, h, w, generator=g).to(device)
        if k == 1:
            ref_fn = lambda: transformers_loop(hf, img, pimg, pmask)[0]  # noqa: E731
        else:
            ref_fn = lambda: official_ensemble(hf, img[0], pimg[0], pmask[0])  # noqa: E731
        ours_fn = lambda: model.infer(img, pimg, pmask)[0]  # noqa: E731
        t_ours, t_ref = float("inf"), float("inf")
        if torch.device(device).type == "cuda":  # first calls pay for kernel selection and allocation
            ours_fn(), ref_fn()
        for _ in range(reps):  # interleaved
            t, out = _time(ours_fn, 1)
            t_ours = min(t_ours, t)
            t, ref = _time(ref_fn, 1)
            t_ref = min(t_ref, t)
        diff = (out - ref).abs().max().item()
        row = dict(preset=preset, k=k, ours_s=t_ours, transformers_s=t_ref, ratio=t_ours / t_ref, max_abs_diff=diff)
        rows.append(row)
        print(f"K={k:2d}  ours {t_ours:8.2f} s/query  transformers {t_ref:8.2f} s/query  "
              f"ratio {t_ours / t_ref:.3f}  max|diff| {diff:.2e}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="vit-large")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {args.device}", flush=True)
    rows = run(args.preset, args.ks, args.reps, args.device, args.threads)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
