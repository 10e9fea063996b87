"""`python -m vos.run VIDEO --first-mask MASK`: segment the masked objects in every frame.

Parses, calls the engine, reports. Writes one index PNG per frame (the mask's own palette where it
has one, else the DAVIS palette), optionally an overlay mp4 at the source fps and per-object binary
masks. Every file is written under a temporary name and renamed, so an interrupted run leaves only
complete files. User mistakes end with one line on stderr and exit code 2, never a traceback.

Examples:
    python -m vos.run clip.mp4 --first-mask clip_mask.png --weights small --overlay clip_overlay.mp4
    python -m vos.run frames/ --first-mask 00040.png --mask-frame 40 --memory 4 --device cuda
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np
from tqdm import tqdm

from seggpt.cli import EXIT_OK, UserError, run_cli
from seggpt.colors import davis_palette
from seggpt.masks import MaskError, load_mask
from seggpt.settings import ConfigError, option_layers, parse_assignments
from seggpt.weights import WeightsError
from vos.config import RunConfig, load_run_config
from vos.engine import EngineError, VideoSegmenter
from vos.outputs import claim_run_outputs
from vos.video import VideoError, open_source
from vos.writers import (BackgroundWriter, OutputError, OverlayVideoWriter, ensure_output_dir, overlay,
                         read_index_png, save_index_png)

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m vos.run",
        description="Segment the objects of a first-frame mask in every frame of a video (SegGPT).",
        epilog="Settings: the defaults (vos/config.py) < the weights' recommended settings < --config < "
               "flags and --set. Exit code 2 on bad input.",
    )
    ap.add_argument("video", help="video file (mp4, avi, mov, ...) or folder of JPEG/PNG frames")
    ap.add_argument("--first-mask", required=True, metavar="MASK",
                    help="mask of the objects: palette PNG, 0/255 grayscale, or RGB colours (anti-aliased is fine)")
    ap.add_argument("--mask-frame", type=int, default=None, metavar="N",
                    help="frame the mask belongs to (default: --start); frames before it are segmented backwards")
    ap.add_argument("--out", default=None, metavar="DIR", help="folder for the index PNGs (default: <video name>_masks)")
    ap.add_argument("--overlay", default=None, metavar="OUT.mp4", help="also write an overlay video")
    ap.add_argument("--object-masks", action="store_true", help="also write one binary PNG per object and frame")
    ap.add_argument("--overwrite", action="store_true",  # issue 13: vos.outputs
                    help="write into a folder holding other files (only files of our earlier runs are removed)")
    ap.add_argument("--weights", default=None, metavar="ID|PATH",
                    help="BAAI/seggpt-vit-large (official, from the Hub), BAAI/SegGPT, small (packaged), or a file")
    ap.add_argument("--config", default=None, metavar="YAML", help="settings file (weights, device, dtype, engine:)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override any setting, e.g. --set engine.max_annotated=2 (repeatable)")
    ap.add_argument("--device", default=None, metavar="DEV", help="auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:N or mps")
    ap.add_argument("--dtype", default=None, choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--memory", type=int, default=None, metavar="K", help="recent predicted frames kept as prompts")
    ap.add_argument("--memory-stride", type=int, default=None, metavar="S")
    ap.add_argument("--batch-frames", type=int, default=None, metavar="B", help="frames per forward")
    ap.add_argument("--objects", default=None, choices=["joint", "separate"])
    ap.add_argument("--compile", default=None, choices=["default", "reduce-overhead", "max-autotune"],
                    help="torch.compile the model (reduce-overhead: CUDA graphs); pays off on long videos")
    ap.add_argument("--start", type=int, default=0, metavar="N", help="first frame to segment")
    ap.add_argument("--end", type=int, default=None, metavar="N", help="stop before this frame")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def _settings(args: argparse.Namespace) -> RunConfig:
    """Defaults < the weights' recommended settings < --config < flags and --set."""
    flags = option_layers(args, {"weights": "weights", "device": "device", "dtype": "dtype",
                                 "memory": "engine.memory", "memory_stride": "engine.memory_stride",
                                 "batch_frames": "engine.batch_frames", "objects": "engine.objects",
                                 "compile": "engine.compile"})
    try:
        return load_run_config(RunConfig, args.config, [*flags, *parse_assignments(args.set)])
    except (ConfigError, WeightsError) as e:
        raise UserError(str(e)) from None


def _load_first_mask(path: str, size, log: logging.Logger):
    """The user's mask as a label map at frame size, and the palette to write with."""
    try:
        parsed = load_mask(path)
    except MaskError as e:
        raise UserError(str(e)) from None
    for w in parsed.warnings:
        log.warning("%s: %s", path, w)
    labels = parsed.labels
    h, w = size
    if labels.shape != (h, w):
        mh, mw = labels.shape
        if abs(mh / mw - h / w) > 0.01:
            raise UserError(f"{path}: mask is {mw}x{mh} but the frames are {w}x{h} (a different aspect ratio)")
        log.warning("%s: mask is %dx%d, frames are %dx%d: resized with nearest neighbour", path, mw, mh, w, h)
        labels = cv2.resize(labels.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
        if not labels.any():
            raise UserError(f"{path}: the mask is empty after resizing to the frame size")
    return labels, parsed.palette


def run(args: argparse.Namespace, log: logging.Logger) -> Dict[str, object]:
    settings = _settings(args)
    try:
        source = open_source(args.video)
    except VideoError as e:
        raise UserError(str(e)) from None
    n = source.num_frames
    start = args.start
    end = n if args.end is None else (min(args.end, n) if n is not None else args.end)
    if start < 0 or (n is not None and start >= n):
        raise UserError(f"{args.video}: --start {start} is out of range (the video has {n} frames)")
    if end is not None and end <= start:
        raise UserError(f"--end {args.end} must be after --start {start}")
    mask_frame = start if args.mask_frame is None else args.mask_frame
    if mask_frame < start or (end is not None and mask_frame >= end):
        raise UserError(f"--mask-frame {mask_frame} is outside the frames to segment ({start}..{(end or 0) - 1})")

    labels, mask_palette = _load_first_mask(args.first_mask, source.size, log)
    pal = mask_palette if mask_palette is not None else davis_palette()
    out_dir = Path(args.out) if args.out else Path(f"{Path(args.video).stem}_masks")
    outputs = claim_run_outputs(args, settings.weights, out_dir)  # issue 13: never an input, never a mix of runs
    try:
        out_dir = ensure_output_dir(out_dir)
        if args.overlay:
            ensure_output_dir(Path(args.overlay).resolve().parent)
    except OutputError as e:
        raise UserError(str(e)) from None
    names = getattr(source, "frame_names", None)

    def name(idx: int) -> str:
        return names[idx] if names else f"{idx:05d}"

    try:
        seg = VideoSegmenter(settings.weights, config=settings.engine, device=settings.device, dtype=settings.dtype)
    except (WeightsError, EngineError) as e:
        raise UserError(str(e)) from None
    state = seg.init_state(source)
    try:
        ids = seg.add_mask(state, mask_frame, labels)
    except EngineError as e:
        raise UserError(f"{args.first_mask}: {e}") from None
    log.info("%d object(s) %s from frame %d; weights %s on %s", len(ids), ids, mask_frame, settings.weights, seg.device)
    outputs.claim()  # issue 13: our earlier run emptied, the manifest written, right before the first frame

    total = (end - start) if end is not None else None
    bar = tqdm(total=total, unit="frame", disable=args.quiet, desc=Path(args.video).name)
    binary_palette = np.zeros((256, 3), np.uint8)
    binary_palette[1] = 255
    t0 = time.perf_counter()
    written = 0

    def emit(writer: BackgroundWriter, idx: int, frame_labels: np.ndarray) -> None:
        writer.submit(save_index_png, out_dir / f"{name(idx)}.png", frame_labels, pal)
        if args.object_masks:
            for o in ids:
                path = out_dir / "objects" / f"{o:03d}" / f"{name(idx)}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                writer.submit(save_index_png, path, (frame_labels == o).astype(np.uint8), binary_palette)

    video: Optional[OverlayVideoWriter] = None
    try:
        if mask_frame > start:  # backwards first: the frames before the mask
            with BackgroundWriter(maxsize=32) as writer:
                for r in seg.propagate(state, mask_frame, max_frames=mask_frame - start + 1, reverse=True):
                    if r.frame_idx != mask_frame:
                        emit(writer, r.frame_idx, r.labels)
                        written += 1
                        bar.update(1)
        if args.overlay:
            video = OverlayVideoWriter(args.overlay, source.fps, source.size)
            # the frames segmented backwards go into the video in order, from the PNGs just written
            for idx, frame in source.iter_frames(start, mask_frame):
                video.write(overlay(frame, read_index_png(out_dir / f"{name(idx)}.png"), pal))
        with BackgroundWriter(maxsize=32) as writer:
            fwd = None if end is None else end - mask_frame
            for r in seg.propagate(state, mask_frame, max_frames=fwd):
                emit(writer, r.frame_idx, r.labels)
                if video is not None:  # composed and encoded on the writer thread, in order
                    writer.submit(_write_overlay, video, r.frame, r.labels, pal)
                written += 1
                bar.update(1)
        if video is not None:
            video.close()
    except BaseException:
        if video is not None:
            video.abort()
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    return dict(frames=written, seconds=seconds, fps=written / max(seconds, 1e-9), out=str(out_dir),
                overlay=args.overlay, objects=ids)


def _write_overlay(video, frame: np.ndarray, labels: np.ndarray, pal: np.ndarray) -> None:
    video.write(overlay(frame, labels, pal))


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s: %(message)s")

    def work() -> int:
        summary = run(args, logging.getLogger("vos.run"))
        print(f"{summary['frames']} frames in {summary['seconds']:.1f} s ({summary['fps']:.2f} frames/s); "
              f"objects {summary['objects']}; masks in {summary['out']}"
              + (f"; overlay {summary['overlay']}" if summary["overlay"] else ""))
        return EXIT_OK

    return run_cli(work)


if __name__ == "__main__":
    sys.exit(main())
