"""`python -m vos.run VIDEO --first-mask MASK` (or `--masks DIR`): segment the masked objects in every frame.

Parses, calls the engine, reports. Writes one index PNG per frame (the mask's own palette where it
has one, else the DAVIS palette), optionally an overlay mp4 at the source fps, per-object 0/255 PNGs,
RGBA PNGs, a matte video, COCO RLE JSON and a lost-object report (`vos.io.exports`). Every file is
written under a temporary name and renamed, so an interrupted run leaves only complete files. User
mistakes end with one line on stderr and exit code 2, never a traceback.

Masks on several frames (`--masks DIR`, `<frame>.png` by frame index or file stem; 0 = "not given"):
the frames from the first masked frame on are segmented forwards, each object from the first frame
it is given on (absent before it), every mask conditioning what follows; frames before the first
masked frame (with `--start`) are segmented backwards from it with the objects it holds.

Examples:
    python -m vos.run clip.mp4 --first-mask clip_mask.png --weights small --overlay clip_overlay.mp4
    python -m vos.run frames/ --first-mask 00040.png --mask-frame 40 --memory 4 --device cuda
    python -m vos.run judo/ --masks judo_masks/ --alpha rgba/ --matte matte.mkv --soft --rle judo.json
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C during the imports below: one line, exit 130
    from seggpt.cli import quiet_start

    quiet_start()

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from tqdm import tqdm

from seggpt.cli import ArgumentParser, EXIT_OK, run_cli
from seggpt.colors import davis_palette
from seggpt.device import DEVICE_HELP, DTYPE_CHOICES, DTYPE_HELP, describe_precision, set_threads
from seggpt.errors import EngineError, InputError, OutputError, VideoError
from seggpt.settings import option_layers, parse_assignments, read_yaml
from seggpt.weights_file import default_weights_note
from vos.engine.config import EngineConfig, RunConfig, load_run_config
from vos.engine.segmenter import VideoSegmenter
from vos.io.exports import DEFAULT_SOFT_WIDTH, lost_after_for, Exporter, ExportSpec
from seggpt.outputs import OVERWRITE_HELP, check_path_given
from vos.io.outputs import claim_run_outputs
from vos.io.prompts import prompt_frames, read_mask, read_mask_folder
from vos.io.sources import given_fps
from vos.io.video import open_source


def frame_rate(text: str) -> float:
    """--fps as argparse reads it (a bad value is one line, exit 2), by the sources' own rule (`given_fps`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of frames per second, got {text!r}") from None
    try:
        return given_fps(value)
    except VideoError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("fps ")) from None  # argparse names --fps


def version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version as dist_version

        return dist_version("seggpt-vos")
    except (ImportError, PackageNotFoundError):  # a source checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    run, eng = RunConfig(), EngineConfig()
    ap = ArgumentParser(
        prog="python -m vos.run",
        description="Segment the objects of one or more masks in every frame of a video (SegGPT).",
        epilog="Settings: the defaults (vos/engine/config.py) < the weights' recommended settings < --config < "
               "flags and --set. Exit code 2 on bad input.",
    )
    ap.add_argument("video", help="video file (mp4, avi, mov, ...) or folder of JPEG/PNG frames")
    given = ap.add_mutually_exclusive_group(required=True)
    given.add_argument("--first-mask", metavar="MASK", default=None,
                       help="mask of the objects on one frame: palette PNG, 0/255 grayscale, or RGB colours "
                            "(anti-aliased is fine) (default: none; this or --masks is required)")
    given.add_argument("--masks", metavar="DIR", default=None,
                       help="folder of masks on several frames, <frame>.png by frame index or file stem; 0 = "
                            "'not given', so objects may first appear on later frames and masks may correct "
                            "(default: none)")
    ap.add_argument("--mask-frame", type=int, default=None, metavar="N",
                    help="frame --first-mask belongs to; frames before it are segmented backwards "
                         "(default: --start)")
    ap.add_argument("--out", default=None, metavar="DIR",
                    help="folder for the index PNGs (default: <video name>_masks)")
    ap.add_argument("--overlay", default=None, metavar="OUT.mp4", help="also write an overlay video (default: none)")
    ap.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    ap.add_argument("--object-masks", action="store_true",
                    help="also write one 0/255 grey PNG per object and frame, in --out's objects/<id:03d>/<frame>.png, "
                         "e.g. objects/001/00000.png (default: off)")
    ap.add_argument("--alpha", default=None, metavar="DIR",
                    help="also write RGBA PNGs (the frame with the object's alpha): DIR/<frame>.png with one "
                         "object, DIR/<id>/<frame>.png with several (default: none)")
    ap.add_argument("--matte", default=None, metavar="OUT",
                    help="also write a grey matte video of all objects: .mkv (FFV1, lossless) or .mov "
                         "(ProRes 4444) (default: none)")
    ap.add_argument("--soft", action="store_true",
                    help="soft edges in --alpha and --matte, from the model's per-object scores (default: off, "
                         "hard 0/255)")
    ap.add_argument("--soft-width", type=float, default=DEFAULT_SOFT_WIDTH, metavar="W",
                    help="score margin over which a soft edge goes from alpha 0.5 to 1: alpha = clip(0.5 + "
                         "margin / 2W), W from 0.001 to 1 (default: %(default)s)")
    ap.add_argument("--rle", default=None, metavar="OUT.json",
                    help="also write COCO RLE JSON per object per frame with names, area and score "
                         "(needs the 'coco' extra) (default: none)")
    ap.add_argument("--report", default=None, metavar="OUT.json",
                    help="also write the lost-object report as JSON (default: none)")
    ap.add_argument("--lost-after", type=int, default=None, metavar="N",
                    help="warn when an object is empty on more than N frames in a row (default: fits the clip, "
                         "min(10, max(2, frames / 8)): 2 on a 16-frame clip, 10 from 80 frames on)")
    ap.add_argument("--names", default=None, metavar="ID=NAME,...",
                    help="object names for the RLE JSON and the report, e.g. 1=judoka,2=referee "
                         "(default: 'object <id>')")
    ap.add_argument("--fps", type=frame_rate, default=None, metavar="FPS",
                    help="frame rate of a folder of frames, for the videos (default: 24; a video file has its own)")
    ap.add_argument("--weights", default=None, metavar="ID|PATH",
                    help="BAAI/seggpt-vit-large (official, from the Hub), BAAI/SegGPT, small (packaged, offline), or "
                         f"a file (default: {run.weights}: the best masks; a 1.5 GB download the first time)")
    ap.add_argument("--config", default=None, metavar="YAML",
                    help="settings file (weights, device, dtype, engine:) or a packaged config's name "
                         "(default: none)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override any setting, e.g. --set engine.max_annotated=2 (repeatable) (default: none)")
    ap.add_argument("--device", default=None, metavar="DEV", help=f"{DEVICE_HELP} (default: {run.device})")
    ap.add_argument("--dtype", default=None, choices=DTYPE_CHOICES, help=f"{DTYPE_HELP} (default: {run.dtype})")
    ap.add_argument("--threads", type=int, default=None, metavar="N",
                    help="CPU threads (default: the machine's cores)")
    ap.add_argument("--memory", type=int, default=None, metavar="K",
                    help=f"recent predicted frames kept as prompts (default: {eng.memory}, or what the weights "
                         "recommend)")
    ap.add_argument("--memory-stride", type=int, default=None, metavar="S",
                    help=f"memorise every S-th predicted frame (default: {eng.memory_stride})")
    ap.add_argument("--batch-frames", type=int, default=None, metavar="B",
                    help=f"frames per forward (default: {eng.batch_frames})")
    ap.add_argument("--objects", default=None, choices=["joint", "separate"],
                    help="joint: all objects in one pass; separate: one pass per object (default: "
                         f"{eng.objects}, or what the weights recommend)")
    ap.add_argument("--adapt-steps", type=int, default=None, metavar="N",
                    help="test-time adaptation: fine-tune a copy of the model on the annotated frames for N steps "
                         f"first (default: {eng.adapt.steps}, or what the weights recommend)")
    ap.add_argument("--refine", action="store_const", const=True, default=None,
                    help="edge-aware upsampling: boundaries follow the frame's edges (default: "
                         f"{'on' if eng.refine.enabled else 'off'}, or what the weights recommend)")
    ap.add_argument("--compile", default=None, choices=["default", "reduce-overhead", "max-autotune"],
                    help="torch.compile the model (reduce-overhead: CUDA graphs), for a GPU: on a CPU the eager "
                         "model call measured faster (benchmarks/RESULTS.md) (default: off)")
    ap.add_argument("--start", type=int, default=0, metavar="N", help="first frame to segment (default: %(default)s)")
    ap.add_argument("--end", type=int, default=None, metavar="N",
                    help="stop before this frame (default: the end of the video)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar, warnings only (default: off)")
    ap.add_argument("--version", action="version", version=f"%(prog)s (seggpt-vos {version()})")
    return ap


def _settings(args: argparse.Namespace) -> RunConfig:
    """Defaults < the weights' recommended settings < --config < flags and --set."""
    flags = option_layers(args, {"weights": "weights", "device": "device", "dtype": "dtype", "threads": "threads",
                                 "memory": "engine.memory", "memory_stride": "engine.memory_stride",
                                 "batch_frames": "engine.batch_frames", "objects": "engine.objects",
                                 "compile": "engine.compile", "adapt_steps": "engine.adapt.steps",
                                 "refine": "engine.refine.enabled"})
    return load_run_config(RunConfig, args.config, [*flags, *parse_assignments(args.set)])


def weights_chosen_by(args: argparse.Namespace) -> Optional[str]:
    """Who set the weights, by the settings' precedence (--set, then --weights, then --config), or None:
    the default's note then says why it is the default (`seggpt.weights_file.default_weights_note`)."""
    for item in reversed(args.set):
        if item.partition("=")[0].strip() == "weights":
            return f"--set {item}"
    if args.weights is not None:
        return "--weights"
    if args.config and "weights" in read_yaml(args.config):  # read before, by _settings: no new error here
        return f"--config {args.config}"
    return None


def _names(spec: Optional[str], ids: List[int]) -> Dict[int, str]:
    names = {o: f"object {o}" for o in ids}
    named: Dict[int, str] = {}
    for item in filter(str.strip, (spec or "").split(",")):  # blank items skipped
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isdigit() or not value.strip():
            raise InputError(f"--names: '{item}' is not ID=NAME")
        if int(key) not in names:
            raise InputError(f"--names: no object {int(key)} (objects: {ids})")
        if int(key) in named:
            raise InputError(f"--names: object {int(key)} is named twice ({named[int(key)]!r} and {value.strip()!r})")
        names[int(key)] = named[int(key)] = value.strip()
    return names


def describe_device(asked: Optional[str], seg: VideoSegmenter, threads: int) -> str:
    """The device, dtype and threads a run uses, and why (the `auto` choices are explained)."""
    dev = seg.device
    precision = describe_precision(dev, seg.predictor.dtype, threads, seg.dtype_reason)
    if asked in (None, "auto"):
        why = {"cuda": "auto: CUDA", "mps": "auto: Apple MPS, no CUDA", "cpu": "auto: no CUDA GPU, no Apple MPS"}
        return f"{dev} ({why.get(dev.type, 'auto')}){precision}"
    return f"{dev}{precision}"


def _masks(args: argparse.Namespace, source, start: int, log: logging.Logger):
    """{frame: label map} and the palette to write with, from --first-mask/--mask-frame or --masks."""
    if args.masks is not None:
        if args.mask_frame is not None:
            raise InputError("--mask-frame goes with --first-mask; --masks names the frames by file name")
        return read_mask_folder(args.masks, source.size, getattr(source, "frame_names", None), source.num_frames, log)
    labels, palette = read_mask(args.first_mask, source.size, log)
    return {start if args.mask_frame is None else args.mask_frame: labels}, palette


def run(args: argparse.Namespace, log: logging.Logger) -> Dict[str, object]:
    for option, value in (("the video", args.video), ("--first-mask", args.first_mask), ("--masks", args.masks),
                          ("--out", args.out), ("--config", getattr(args, "config", None))):
        check_path_given(option, value)  # '' is never the current folder nor "the default"
    settings = _settings(args)
    try:
        source = open_source(args.video, fps=args.fps)
    except VideoError:
        raise
    except ValueError as e:  # --fps for a video file
        raise InputError(f"--fps: {e}") from None
    n = source.num_frames
    start = args.start
    end = n if args.end is None else (min(args.end, n) if n is not None else args.end)
    if start < 0 or (n is not None and start >= n):
        raise InputError(f"{args.video}: --start {start} is out of range (the video has {n} frames)")
    if end is not None and end <= start:
        raise InputError(f"--end {args.end} must be after --start {start}")
    if args.mask_frame is not None and (args.mask_frame < start or (end is not None and args.mask_frame >= end)):
        raise InputError(f"--mask-frame {args.mask_frame} is outside the frames to segment ({start}..{(end or 0) - 1})")

    masks, mask_palette = _masks(args, source, start, log)
    outside = [f for f in masks if f < start or (end is not None and f >= end)]
    if outside:
        raise InputError(f"{args.masks}: masks on frames {outside} are outside the frames to segment "
                         f"({start}..{(end or 0) - 1})")
    pal = mask_palette if mask_palette is not None else davis_palette()
    out_dir = Path(args.out) if args.out is not None else Path(f"{Path(args.video).stem}_masks")
    # never an input, never a mix of runs (checked before the model loads; nothing removed yet)
    outputs = claim_run_outputs(args, settings.weights, out_dir)
    def path(option: Optional[str]) -> Optional[Path]:
        return None if option is None else Path(option)

    spec = ExportSpec(index_dir=out_dir, object_dir=out_dir / "objects" if args.object_masks else None,
                      alpha_dir=path(args.alpha), matte=path(args.matte), overlay=path(args.overlay),
                      rle=path(args.rle), report=path(args.report), soft=args.soft, soft_width=args.soft_width,
                      lost_after=args.lost_after if args.lost_after is not None  # else fits the frames segmented
                      else lost_after_for(None if end is None else end - start))
    spec.check_values()  # before the model loads; the folders are made once every check has passed
    frame_names = getattr(source, "frame_names", None)

    def name(idx: int) -> str:
        return frame_names[idx] if frame_names else f"{idx:05d}"

    threads = set_threads(settings.threads, "--threads")
    # which weights and why, before a first run downloads them
    log.info("%s", default_weights_note(settings.weights, weights_chosen_by(args)))
    seg = VideoSegmenter(settings.weights, config=settings.engine, device=settings.device, dtype=settings.dtype)
    device = describe_device(settings.device, seg, threads)
    state = seg.init_state(source)
    where = args.masks or args.first_mask
    for f, labels in masks.items():
        try:
            seg.add_mask(state, f, labels)
        except EngineError as e:
            raise InputError(f"{where}: {e}") from None
    ids = state.object_ids
    if max(ids) > 255:
        raise InputError(f"{where}: object id {max(ids)}: the index PNGs hold ids 1..255")
    given = prompt_frames(masks)
    names = _names(args.names, ids)
    first = min(masks)
    log.info("%d object(s) %s on frame(s) %s; weights %s on %s", len(ids), ids, sorted(masks), settings.weights,
             device)
    outputs.claim()  # our earlier run emptied, the manifest written, right before the first frame
    # the Exporter checks every folder writable, pycocotools there (`ExportSpec.check`): before any inference, after
    # every refusal
    try:
        exporter = Exporter(spec, size=source.size, fps=source.fps, first_frame=start, frame_name=name, names=names,
                            prompt_frames=given, palette=pal, read_frames=source.iter_frames,
                            video_name=Path(args.video).stem, num_frames=n)
    except OutputError as e:  # before any work a folder we cannot write is bad input (exit 2), not failed work
        raise InputError(str(e)) from None
    try:
        adapt_seconds = _adapt(seg, state, args)
        total = (end - start) if end is not None else None
        with tqdm(total=total, unit="frame", disable=args.quiet, desc=Path(args.video).name) as bar:
            t0 = time.perf_counter()
            if first > start:  # backwards first: the frames before the first mask, with the objects it holds
                back = seg.init_state(source)
                first_ids = sorted(given_ids for given_ids in given if given[given_ids][0] == first)
                for f, labels in masks.items():
                    sub = np.where(np.isin(labels, first_ids), labels, 0)
                    if sub.any():
                        seg.add_mask(back, f, sub)
                for r in seg.propagate(back, first, max_frames=first - start + 1, reverse=True):
                    if r.frame_idx != first:
                        exporter.add(r, existing=back.annotations.objects_at(r.frame_idx, True))
                        bar.update(1)
            fwd = None if end is None else end - first
            for r in seg.propagate(state, first, max_frames=fwd):
                exporter.add(r, existing=state.annotations.objects_at(r.frame_idx, False))
                bar.update(1)
            report = exporter.close()
    except BaseException:
        exporter.abort()
        raise
    for warning in exporter.report.warnings():
        log.warning("%s", warning)
    seconds = time.perf_counter() - t0
    return dict(frames=exporter.frames, seconds=seconds, adapt_seconds=adapt_seconds, fps=exporter.frames / max(seconds, 1e-9), out=str(out_dir),
                overlay=args.overlay, objects=ids, device=device, report=report,
                lost=exporter.report.summary(), outputs=[str(p) for p in (spec.alpha_dir, spec.matte, spec.rle,
                                                                          spec.report) if p is not None])


def _adapt(seg: VideoSegmenter, state, args: argparse.Namespace) -> float:
    """Test-time adaptation (when the settings ask for it) with its own progress bar; returns the seconds."""
    steps = seg.config.adapt.steps
    if not steps:
        return 0.0
    with tqdm(total=steps, unit="step", disable=args.quiet, desc="adapting") as bar:
        def progress(p) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{p.loss:.4f}")
        return seg.adapt(state, progress=progress)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s: %(message)s")

    def work() -> int:
        summary = run(args, logging.getLogger("vos.run"))  # a disk that fills up mid-run: run_cli says exit 1
        adapted = f"adaptation {summary['adapt_seconds']:.1f} s, then " if summary["adapt_seconds"] else ""
        print(f"{adapted}{summary['frames']} frames in {summary['seconds']:.1f} s ({summary['fps']:.2f} frames/s) on "
              f"{summary['device']}; objects {summary['objects']}; {summary['lost']}; masks in {summary['out']}"
              + (f"; overlay {summary['overlay']}" if summary["overlay"] else "")
              + "".join(f"; {o}" for o in summary["outputs"]))
        return EXIT_OK

    return run_cli(work)


if __name__ == "__main__":
    sys.exit(main())
