"""``python -m benchmarks.offline_levers``: test-time adaptation and edge-aware upsampling, measured.

Runs the current ``vos.VideoSegmenter`` with (a) a copy of the model adapted on the first frame
(``seggpt.adapt``) and/or (b) the guided-filter refinement (``seggpt.refine``) of its score maps,
on DAVIS sequences or fresh synthetic clips, and scores J and F as the official DAVIS tool does
(``vos.metrics``: first and last frames left out, global means over objects).

One adaptation run per sequence gives every requested step count (snapshots of a constant-lr
run: the first N steps of a longer run are the N-step run); every snapshot runs the engine once
per memory size and refinement setting.

    python -m benchmarks.offline_levers davis --root DAVIS16_TRAIN --resolution 240p --split train \\
        --sequences bear bus --steps 0 50 100 --memory 0 8 --refine off 1:1e-2 --out /tmp/levers.jsonl
    python -m benchmarks.offline_levers synthetic --seeds 9001 9002 --steps 0 100 --out /tmp/synth.jsonl
    python -m benchmarks.offline_levers time --folder DAVIS/JPEGImages/480p/dog --mask DAVIS/.../00000.png \\
        --steps 100 --refine 1:1e-2 --threads 2

Refinement settings are ``off`` or ``M:EPS[:colour]``: radius M model pixels (``refine.auto_params``),
eps EPS, grey guide unless ``colour``; they run through the engine's own ``refine`` option.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from seggpt import SegGPT
from seggpt.adapt import AdaptProgress, adapt, merge_lora
from seggpt.refine import auto_params, refine_argmax
from seggpt.cli import ArgumentParser

__all__ = ["RefineSetting", "run_engine", "score", "main"]


# ----------------------------------------------------------------------------- refinement hook


class RefineSetting:
    """``off`` or ``M:EPS[:colour]`` (see the module docstring)."""

    def __init__(self, text: str):
        self.text = text
        if text == "off":
            self.model_pixels = None
            return
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("grey", "colour")):
            raise argparse.ArgumentTypeError(f"refine setting {text!r}: expected off or M:EPS[:colour]")
        self.model_pixels, self.eps = float(parts[0]), float(parts[1])
        self.guide = parts[2] if len(parts) == 3 else "grey"

    def labels(self, frames: Sequence[np.ndarray], scores: torch.Tensor, ids: torch.Tensor) -> np.ndarray:
        size = frames[0].shape[:2]
        if self.model_pixels is None:
            from seggpt.predictor import SegGPTPredictor

            return SegGPTPredictor.resize_argmax(scores, size, values=ids.to(torch.int32)).cpu().numpy()
        radius, sub = auto_params(size, scores.shape[-2:], self.model_pixels)
        return refine_argmax(scores, frames, radius, self.eps, sub, self.guide, values=ids.to(torch.int32)).cpu().numpy()

    def __repr__(self) -> str:
        return self.text

    def engine(self) -> dict:
        """This setting as the engine's `refine` section."""
        if self.model_pixels is None:
            return {"enabled": False}
        return {"enabled": True, "model_pixels": self.model_pixels, "eps": self.eps, "guide": self.guide}


def run_engine(model: SegGPT, frames, first_labels: np.ndarray, memory: int, refine: Sequence[RefineSetting],
               objects: str = "joint") -> Tuple[Dict[str, np.ndarray], float]:
    """Propagate from frame 0 with `first_labels` once per refinement setting (the engine's own
    `refine` option); labels (T, H, W) per setting, and the seconds of the first run."""
    from vos import EngineConfig, VideoSegmenter

    out, seconds = {}, None
    for setting in refine:
        config = EngineConfig.load({"memory": memory, "objects": objects, "refine": setting.engine()})
        seg = VideoSegmenter(model, config=config, device="cpu")
        start = time.perf_counter()
        state = seg.init_state(frames)
        seg.add_mask(state, 0, first_labels.astype(np.int32))
        labels = [r.labels for r in seg.propagate(state)]
        seconds = time.perf_counter() - start if seconds is None else seconds
        out[setting.text] = np.stack(labels).astype(np.uint8)
    return out, seconds or 0.0


def score(gt: np.ndarray, pred: np.ndarray, object_ids: List[int]) -> Dict[int, Dict[str, float]]:
    from vos.metrics import evaluate_sequence

    res = evaluate_sequence(gt, pred, object_ids=object_ids)
    return {obj: {"J": float(np.nanmean(v["J"])), "F": float(np.nanmean(v["F"]))} for obj, v in res.items()}


# ----------------------------------------------------------------------------- data


def davis_clips(root: str, split: str, resolution: str, names: Optional[Sequence[str]]):
    from PIL import Image

    from vos.datasets import DAVIS

    reader = DAVIS(root, year=2016, split=split, resolution=resolution)
    for name in names or reader.names:
        seq = reader[name]
        frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in seq.frame_paths])
        gt = seq.load_ground_truth(seq.frame_names)
        yield name, frames, gt, seq.object_ids


def synthetic_clips(seeds: Sequence[int], frames: int = 30, size=(240, 432), objects=(2, 4)):
    from vos.synthetic import make_clip

    for seed in seeds:
        if seed in (7, 20240607):
            raise SystemExit(f"seed {seed} is the README demo's or the held-out set's: use fresh seeds")
        count = int(np.random.default_rng(seed).integers(objects[0], objects[1] + 1))
        f, labels = make_clip(seed, frames, size=size, num_objects=count)
        yield f"synth{seed}", f, labels, sorted(int(v) for v in np.unique(labels[0]) if v)


# ----------------------------------------------------------------------------- sweeps


def sweep(clips, model: SegGPT, args) -> None:
    refine = [RefineSetting(t) for t in args.refine]
    out = open(args.out, "a")
    for name, frames, gt, object_ids in clips:
        first = gt[0]
        snaps: Dict[int, SegGPT] = {}
        wanted = sorted(set(args.steps))
        if 0 in wanted:
            snaps[0] = model
        times: Dict[int, float] = {0: 0.0}

        def keep(p: AdaptProgress) -> None:
            if p.step in wanted:
                snap = merge_lora(copy.deepcopy(p.model)).eval()
                snaps[p.step] = snap
                times[p.step] = p.seconds

        top = max(wanted)
        if top > 0:
            adapt(model, [frames[0]], [first], steps=top, lr=args.lr, params=args.params, batch_size=args.batch,
                  seed=args.seed, objects=args.objects, object_ids=object_ids, progress=keep,
                  prompt_dream_prob=args.prompt_dream_prob)
        for steps in wanted:
            for memory in args.memory:
                labels, seconds = run_engine(snaps[steps], frames, first, memory, refine, args.objects)
                for text, pred in labels.items():
                    rec = {"seq": name, "steps": steps, "lr": args.lr, "params": args.params, "batch": args.batch,
                           "memory": memory, "refine": text, "objects": args.objects, "tag": args.tag,
                           "adapt_seconds": round(times[steps], 2), "engine_seconds": round(seconds, 2),
                           "frames": len(frames), "scores": score(gt, pred, object_ids)}
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
                js = score(gt, labels[refine[0].text], object_ids)
                jf = np.mean([(v["J"] + v["F"]) / 2 for v in js.values()])
                print(f"{name} steps {steps} mem {memory} {refine[0].text}: J&F {jf:.3f} "
                      f"(adapt {times[steps]:.0f}s, engine {seconds:.1f}s)", flush=True)
    out.close()


def summarize(paths: Sequence[str], group: Sequence[str]) -> None:
    """Mean J, F, J&F over all objects of all sequences per group of settings (official global means)."""
    rows: Dict[tuple, List[Tuple[float, float]]] = {}
    seqs: Dict[tuple, set] = {}
    for path in paths:
        for line in open(path):
            rec = json.loads(line)
            key = tuple(rec.get(k) for k in group)
            for v in rec["scores"].values():
                rows.setdefault(key, []).append((v["J"], v["F"]))
            seqs.setdefault(key, set()).add(rec["seq"])
    print(" | ".join(group) + " | objects | J | F | J&F")
    for key in sorted(rows, key=lambda k: tuple(str(x) for x in k)):
        j, f = np.mean(rows[key], axis=0)
        print(" | ".join(str(k) for k in key) + f" | {len(rows[key])} ({len(seqs[key])} seq) | {j:.3f} | {f:.3f} | "
              f"{(j + f) / 2:.3f}")


def time_video(model: SegGPT, args) -> None:
    """End to end on one video: read the first frame and mask, adapt, propagate (frames streamed)."""
    from PIL import Image

    from vos import EngineConfig, VideoSegmenter
    from vos.datasets import read_label_png

    t0 = time.perf_counter()
    mask = read_label_png(args.mask, binary=True) if args.mask.endswith(".png") else None
    seg = VideoSegmenter(model, config=EngineConfig(memory=args.memory[0], objects=args.objects), device="cpu")
    state = seg.init_state(args.folder)
    first = next(state.source.iter_frames(0, 1))[1]
    if mask.shape != first.shape[:2]:
        mask = np.asarray(Image.fromarray(mask).resize(first.shape[1::-1], Image.NEAREST))
    t1 = time.perf_counter()
    steps = args.steps[0]
    adapted = adapt(model, [first], [mask], steps=steps, lr=args.lr, params=args.params, batch_size=args.batch,
                    seed=args.seed, objects=args.objects) if steps else model
    t2 = time.perf_counter()
    setting = RefineSetting(args.refine[0])
    config = EngineConfig.load({"memory": args.memory[0], "objects": args.objects, "refine": setting.engine()})
    seg = VideoSegmenter(adapted, config=config, device="cpu")
    state = seg.init_state(args.folder)
    seg.add_mask(state, 0, mask.astype(np.int32))
    present = 0
    areas = []
    save = Path(args.save) if args.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    n = 0
    for r in seg.propagate(state):
        n += 1
        area = int((r.labels > 0).sum())
        areas.append(area)
        present += area > 0
        if save and r.frame_idx % args.save_every == 0:
            over = r.frame.copy()
            over[r.labels > 0] = (0.5 * over[r.labels > 0] + [127, 0, 0]).astype(np.uint8)
            Image.fromarray(over).save(save / f"{r.frame_idx:05d}.png")
    t3 = time.perf_counter()
    print(json.dumps({"frames": n, "object_present": present, "load_s": round(t1 - t0, 2),
                      "adapt_s": round(t2 - t1, 2), "adapt_steps": steps,
                      "propagate_s": round(t3 - t2, 2), "total_s": round(t3 - t0, 2),
                      "fps_propagate": round(n / (t3 - t2), 2), "threads": torch.get_num_threads(),
                      "mask_area_first_last": [areas[0], areas[-1]], "refine": setting.text}))


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m benchmarks.offline_levers", description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("davis", "synthetic", "time", "summary"),
                   help="davis: DAVIS sequences; synthetic: fresh generated clips; time: one video end to end; "
                        "summary: tables from earlier JSONL results")
    p.add_argument("--weights", default="small", help="weights to measure (default: %(default)s)")
    p.add_argument("--root", help="davis: the DAVIS root")
    p.add_argument("--split", default="train", help="davis: the split (default: %(default)s; never choose settings on val)")
    p.add_argument("--resolution", default="240p", help="davis: the resolution folder (default: %(default)s)")
    p.add_argument("--sequences", nargs="+", help="davis: these sequences only (default: the whole split)")
    p.add_argument("--seeds", nargs="+", type=int, help="synthetic: one clip per scene seed")
    p.add_argument("--steps", nargs="+", type=int, default=[0],
                   help="adaptation steps to measure, e.g. 0 25 50 (snapshots of one run; default: 0)")
    p.add_argument("--lr", type=float, default=1e-4, help="adaptation learning rate (default: %(default)s)")
    p.add_argument("--params", default="all", help="adapted parameters, as engine.adapt.params (default: %(default)s)")
    p.add_argument("--batch", type=int, default=8, help="adaptation batch size (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="adaptation seed (default: %(default)s)")
    p.add_argument("--prompt-dream-prob", type=float, default=0.25,
                   help="share of adaptation pairs whose prompt is a dreamed view too (default: %(default)s)")
    p.add_argument("--memory", nargs="+", type=int, default=[8], help="recent-frame memory sizes to measure (default: 8)")
    p.add_argument("--refine", nargs="+", default=["off"], help="refinement settings: off or M:EPS[:colour] (default: off)")
    p.add_argument("--objects", default="joint", choices=("joint", "separate"),
                   help="one joint colouring or one pass per object (default: %(default)s)")
    p.add_argument("--tag", default="", help="a label stored with each result line")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default: %(default)s)")
    p.add_argument("--out", default="offline_levers.jsonl", help="JSONL file results are appended to (default: %(default)s)")
    p.add_argument("--folder", help="time: frame folder")
    p.add_argument("--mask", help="time: first-frame mask PNG")
    p.add_argument("--save", help="time: write overlay PNGs here")
    p.add_argument("--save-every", type=int, default=10, help="time: every N-th frame's overlay (default: %(default)s)")
    p.add_argument("--inputs", nargs="+", help="summary: JSONL files")
    p.add_argument("--group", nargs="+", default=["steps", "memory", "refine"],
                   help="summary: the result fields a table row groups by (default: steps memory refine)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    for text in args.refine:
        RefineSetting(text)
    if args.mode == "summary":
        summarize(args.inputs, args.group)
        return 0
    torch.set_num_threads(args.threads)
    try:
        import cv2

        cv2.setNumThreads(args.threads)
    except ImportError:  # pragma: no cover
        pass
    model = SegGPT.from_pretrained(args.weights)
    if args.mode == "time":
        time_video(model, args)
    elif args.mode == "davis":
        sweep(davis_clips(args.root, args.split, args.resolution, args.sequences), model, args)
    else:
        sweep(synthetic_clips(args.seeds), model, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
