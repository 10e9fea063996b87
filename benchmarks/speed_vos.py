"""End-to-end video speed: decode -> SegGPT with K prompts -> index PNGs written.

Ours (vos.VideoSegmenter, streaming, writer thread) against a frame-by-frame loop over transformers'
SegGPT on the same weights, run in this process: decord decode, transformers' image processor,
`SegGptForImageSegmentation` with K prompts (the first frame + the K-1 previous predictions, as the
paper's protocol), its post-processing, a PNG per frame. Model-only frames/s beside each, the FLOPs
per frame, and the achieved TFLOP/s against this device's matmul peak measured in the same run.
Also decode throughput: decord alone against our frame source.

    python -m benchmarks.speed_vos --preset small --ks 1 2 8 --frames 40
    python -m benchmarks.speed_vos --preset vit-large --device cuda --dtype bf16 --ks 1 8 --frames 200
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from PIL import Image

from seggpt import SegGPT, get_config
from seggpt.device import DTYPE_CHOICES, resolve_dtype
from seggpt.io import save_index_png, write_mp4
from seggpt.predictor import SegGPTPredictor
from vos import VideoSegmenter
from vos.data.synthetic import iter_clip, make_clip
from vos.io.video import open_source
from vos.io.writers import BackgroundWriter

from .machine import best_seconds, timed
from .reference import transformers_twin
from .report import claim_json, write_json
from seggpt.cli import ArgumentParser


def matmul_peak(device: torch.device, dtype: Optional[torch.dtype]) -> float:
    """Best TFLOP/s of a square matmul in the compute dtype (the ceiling SegGPT's linear layers can reach)."""
    n = 4096 if device.type == "cuda" else 1536
    dt = dtype or torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)
    best = best_seconds(lambda: [a @ b for _ in range(4)], device, 5) / 4
    return 2 * n**3 / best / 1e12


def decode_speed(path: Path) -> Dict[str, float]:
    out = {}
    try:
        import decord

        vr = decord.VideoReader(str(path))
        t = time.perf_counter()
        for s in range(0, len(vr), 16):
            vr.get_batch(list(range(s, min(s + 16, len(vr))))).asnumpy()
        out["decord_fps"] = len(vr) / (time.perf_counter() - t)
    except ImportError:
        pass
    src = open_source(path)
    t = time.perf_counter()
    n = sum(1 for _ in src.iter_frames())
    out["source_fps"] = n / (time.perf_counter() - t)
    return out


def ours(model: SegGPT, video: Path, mask: np.ndarray, k: int, batch: int, device, dtype, out: Path,
         resize: str = "smooth") -> Dict[str, float]:
    """Our engine end to end; frames/s measured once the memory is full (steady state)."""
    seg = VideoSegmenter(model, config={"memory": k - 1, "batch_frames": batch, "resize": resize},
                         device=device, dtype=dtype)
    state = seg.init_state(video)
    seg.add_mask(state, 0, mask)
    times: List[float] = []
    labels: Dict[int, np.ndarray] = {}
    with BackgroundWriter(maxsize=32) as writer:
        t0 = time.perf_counter()
        for r in seg.propagate(state):
            writer.submit(save_index_png, out / f"{r.frame_idx:05d}.png", r.labels)
            times.append(time.perf_counter())
            if r.frame_idx < 8:
                labels[r.frame_idx] = r.labels
    end = time.perf_counter()  # includes waiting for the last PNGs
    steady = [t for i, t in enumerate(times) if i >= k]
    fps = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 2 else len(times) / (end - t0)
    return {"e2e_fps": fps, "e2e_fps_all": len(times) / (end - t0), "labels": labels}


def model_only(model: SegGPT, k: int, batch: int, device, dtype, reps: int = 3) -> float:
    h, w = model.config.image_size
    g = torch.Generator().manual_seed(0)
    x, p, m = (torch.randn(batch, *shape, generator=g).to(device) for shape in ((3, h, w), (k, 3, h, w), (k, 3, h, w)))
    predictor = SegGPTPredictor(model, dtype=dtype)
    predictor.infer(x, p, m)
    return batch / best_seconds(lambda: predictor.infer(x, p, m), device, reps)


def transformers_loop(hf, video: Path, mask: np.ndarray, k: int, frames: int, device, dtype, out: Path) -> Dict:
    """What a user of transformers writes: decode, process, forward with K prompts, post-process, save."""
    import decord  # optional readers and the transformers oracle: imported where this comparison runs
    from transformers import SegGptImageProcessor

    h, w = hf.config.image_size[0] // 2, hf.config.image_size[1]
    proc = SegGptImageProcessor(size={"height": h, "width": w})
    vr = decord.VideoReader(str(video))
    n = min(frames, len(vr))
    num_labels = int(mask.max())
    memory = [(vr[0].asnumpy(), mask)]
    model_time, labels = 0.0, {}
    t0 = time.perf_counter()
    steady_start = None
    for i in range(1, n):
        if i == k:
            steady_start = time.perf_counter()
        frame = vr[i].asnumpy()
        prompts = memory[:1] + memory[1:][-(k - 1):] if k > 1 else memory[:1]
        inputs = proc(images=[Image.fromarray(frame)] * len(prompts),
                      prompt_images=[Image.fromarray(p) for p, _ in prompts],
                      prompt_masks=[m for _, m in prompts], num_labels=num_labels, return_tensors="pt")
        inputs = {kk: v.to(device) for kk, v in inputs.items()}
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            seconds, outputs = timed(lambda: hf(**inputs, feature_ensemble=len(prompts) > 1), device)
        model_time += seconds
        outputs.pred_masks = outputs.pred_masks[:1].float()
        result = proc.post_process_semantic_segmentation(outputs, target_sizes=[frame.shape[:2]],
                                                         num_labels=num_labels)[0].cpu().numpy().astype(np.uint8)
        Image.fromarray(result).save(out / f"{i:05d}.png")
        memory.append((frame, result))
        memory = memory[:1] + memory[1:][-max(k - 1, 0):] if k > 1 else memory[:1]
        if i < 8:
            labels[i] = result
    end = time.perf_counter()
    steady_frames = n - max(k, 1)
    fps = steady_frames / (end - steady_start) if steady_start and steady_frames > 0 else (n - 1) / (end - t0)
    return {"e2e_fps": fps, "model_fps": (n - 1) / model_time, "labels": labels}


def main(argv=None) -> int:
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--weights", default=None, help="a checkpoint (default: random weights of --preset)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 8])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=int, nargs=2, default=[480, 854], metavar=("H", "W"))
    ap.add_argument("--batch-frames", type=int, default=1)
    ap.add_argument("--resize", default="smooth", choices=["smooth", "nearest"],
                    help="how our labels go back to frame size (engine setting)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES)
    ap.add_argument("--reference-frames", type=int, default=None,
                    help="frames for the transformers loop (default: same as --frames; 0 skips it)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    dtype = resolve_dtype(args.dtype, device, get_config(args.preset).embed_dim)
    claimed = claim_json(ap, args.json, "benchmarks.speed_vos")
    torch.manual_seed(0)
    model = SegGPT.from_pretrained(args.weights) if args.weights else SegGPT(get_config(args.preset))
    model = model.eval().to(device)
    ref_frames = args.frames if args.reference_frames is None else args.reference_frames
    info = dict(machine=f"{platform.machine()} {platform.processor()}".strip(), torch=torch.__version__,
                threads=torch.get_num_threads(), device=str(device),
                gpu=torch.cuda.get_device_name(0) if device.type == "cuda" else None,
                dtype=str(dtype or torch.float32), resize=args.resize, preset=args.preset, weights=args.weights or "random",
                frames=args.frames, size=args.size)
    print(json.dumps(info), flush=True)
    peak = matmul_peak(device, dtype)
    print(f"matmul peak: {peak:.2f} TFLOP/s ({info['dtype']})", flush=True)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        h, w = args.size
        video = write_mp4(tmp / "clip.mp4", (f for f, _ in iter_clip(11, args.frames, (h, w), 3)), fps=24)
        _, first = make_clip(11, 1, size=(h, w), num_objects=3)
        mask = first[0].astype(np.int64)
        dec = decode_speed(video)
        print("decode: " + ", ".join(f"{k} {v:.1f}" for k, v in dec.items()), flush=True)
        hf = transformers_twin(model).to(device) if ref_frames else None
        for k in args.ks:
            (tmp / f"ours{k}").mkdir()
            o = ours(model, video, mask, k, args.batch_frames, device, dtype, tmp / f"ours{k}", args.resize)
            mo = model_only(model, k, args.batch_frames, device, dtype)
            flops = model.config.flops_per_query(k)
            row = dict(k=k, ours_e2e_fps=o["e2e_fps"], ours_model_fps=mo, e2e_over_model=o["e2e_fps"] / mo,
                       flops_per_frame=flops, tflops_achieved=flops * mo / 1e12,
                       fraction_of_peak=flops * mo / 1e12 / peak)
            if hf is not None:
                (tmp / f"ref{k}").mkdir()
                r = transformers_loop(hf, video, mask, k, ref_frames, device, dtype, tmp / f"ref{k}")
                common = sorted(set(o["labels"]) & set(r["labels"]))
                agree = float(np.mean([(o["labels"][i] == r["labels"][i]).mean() for i in common])) if common else None
                row.update(ref_e2e_fps=r["e2e_fps"], ref_model_fps=r["model_fps"],
                           e2e_speedup=o["e2e_fps"] / r["e2e_fps"], pixel_agreement=agree,
                           ref_flops_per_frame=model.config.flops_per_query(k, shared_query=False))
            rows.append(row)
            print(" ".join(f"{key}={val:.4g}" if isinstance(val, float) else f"{key}={val}" for key, val in row.items()),
                  flush=True)
    write_json(claimed, args.json, dict(info=info, matmul_peak_tflops=peak, decode=dec, rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
