"""Model-only speed as a fraction of the machine's own peak, ours beside transformers' SegGPT.

For each dtype (fp32, bf16) it measures the machine's matmul peak (`benchmarks.machine`), then for each
K (prompts per query) the seconds per query of our SegGPT and of transformers' SegGPT on identical
random weights, interleaved (ours, theirs, ours, ...) so that machine noise hits both alike. transformers
gets its weights in the same dtype, as its users load it (``torch_dtype=torch.bfloat16``); ours runs as
`SegGPTPredictor(dtype=...)` does (fp32, or a copy with its matrix weights cast once).

The score is FLOPs per second of the FLOPs `SegGPTConfig.flops_per_query(K)` counts (fixed per
configuration, so moving work between kernels cannot change it), as a fraction of the peak in that
dtype; transformers' row uses the same FLOPs (the useful work, not what it spends). Reference
semantics: with K = 1 transformers' own forward; with K > 1 transformers' layers driven with the
official ensemble flags (benchmarks/reference.py), since transformers' own ensemble differs from the
official code at the merge block. The relative output error is against our fp32 output.

    python -m benchmarks.speed_model --preset vit-large --ks 1 3 9 --dtypes fp32 bf16 --json speed.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from seggpt import SegGPT, get_config
from seggpt.cli import ArgumentParser
from seggpt.device import DTYPES, DeviceError, resolve_device, set_threads
from seggpt.predictor import SegGPTPredictor

from .report import claim_json, write_json
from .machine import describe, machine_facts, peak_gflops, timed
from .reference import official_ensemble, transformers_loop, transformers_twin


def _relative(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-12)).item()


def run(preset: str, ks: List[int], dtypes: List[str], reps: int, device: str, image_size: Optional[int] = None,
        reference: bool = True) -> Dict[str, Any]:
    """Every (dtype, K) row, the peaks and the machine; printed as it goes."""
    dev = torch.device(device)
    torch.manual_seed(0)
    cfg = get_config(preset)
    if image_size is not None:
        cfg = cfg.replace(image_size=(image_size, image_size))
    model = SegGPT(cfg).eval().to(dev)
    facts = machine_facts(dev)
    peaks = {name: peak_gflops(DTYPES[name] or torch.float32, dev) for name in dtypes}
    print(describe(facts, peaks), flush=True)
    h, w = cfg.image_size
    rows = []
    fp32_out: Dict[int, torch.Tensor] = {}
    for name in dtypes:
        dtype = DTYPES[name]
        predictor = SegGPTPredictor(model, dtype=dtype)
        hf = transformers_twin(model).to(device=dev, dtype=dtype or torch.float32) if reference else None
        for k in ks:
            g = torch.Generator().manual_seed(k)
            img, pimg, pmask = (torch.randn(1, *shape, generator=g).to(dev)
                                for shape in ((3, h, w), (k, 3, h, w), (k, 3, h, w)))
            ours_fn = lambda: predictor.infer(img, pimg, pmask)[0]  # noqa: E731
            theirs = [t.to(dtype or torch.float32) for t in (img, pimg, pmask)]
            ref_fn = ((lambda: transformers_loop(hf, *theirs)[0]) if k == 1 else
                      (lambda: official_ensemble(hf, theirs[0][0], theirs[1][0], theirs[2][0])))
            if k == ks[0]:  # first calls pay for allocation, the bf16 copy and kernel selection
                ours_fn()
                if reference:
                    ref_fn()
            t_ours = t_ref = float("inf")
            out = ref = None
            for _ in range(reps):  # interleaved
                t, out = timed(ours_fn, dev)
                t_ours = min(t_ours, t)
                if reference:
                    t, ref = timed(ref_fn, dev)
                    t_ref = min(t_ref, t)
            if dtype is None:
                fp32_out[k] = out.float()
            flops = cfg.flops_per_query(k)
            row: Dict[str, Any] = dict(preset=preset, image_size=h, dtype=name, k=k, flops=flops, ours_s=t_ours,
                                       ours_fraction_of_peak=flops / t_ours / 1e9 / peaks[name])
            if k in fp32_out and dtype is not None:
                row["ours_relative_error_vs_fp32"] = _relative(out, fp32_out[k])
            text = (f"{name:5s} K={k:2d}  ours {t_ours:8.2f} s/query ({row['ours_fraction_of_peak']:6.1%} of the "
                    f"{name} peak)")
            if reference:
                row.update(transformers_s=t_ref, transformers_fraction_of_peak=flops / t_ref / 1e9 / peaks[name],
                           ratio=t_ours / t_ref, relative_diff_vs_transformers=_relative(out, ref))
                text += (f"  transformers {t_ref:8.2f} s/query ({row['transformers_fraction_of_peak']:6.1%})  "
                         f"ours/transformers {row['ratio']:.3f}  rel. diff {row['relative_diff_vs_transformers']:.1e}")
            if "ours_relative_error_vs_fp32" in row:
                text += f"  vs our fp32 {row['ours_relative_error_vs_fp32']:.2%}"
            print(text, flush=True)
            rows.append(row)
        del hf, predictor
    return dict(machine=facts, peak_gflops=peaks, rows=rows)


def main(argv=None) -> int:
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="vit-large")
    ap.add_argument("--image-size", type=int, default=None, metavar="S",
                    help="input size per half (default: the preset's, 448 for vit-large)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 3, 9], help="prompts per query (default: 1 3 9)")
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"],
                    help="default: fp32 bf16 (fp32 first: the bf16 rows report their error against it)")
    ap.add_argument("--reps", type=int, default=1, help="timed calls per side, best kept (default: 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: the machine's cores)")
    ap.add_argument("--no-reference", action="store_true", help="ours only (no transformers beside it)")
    ap.add_argument("--json", help="also write the machine, the peaks and the rows to this JSON file")
    args = ap.parse_args(argv)
    if any(k < 1 for k in args.ks) or args.reps < 1:
        ap.error("--ks and --reps must be >= 1")
    try:
        set_threads(args.threads)
        dev = resolve_device(args.device)
        cfg = get_config(args.preset)
        if args.image_size is not None:
            if args.image_size < cfg.patch_size:
                raise ValueError(f"--image-size must be at least the patch size {cfg.patch_size}, got {args.image_size}")
            cfg.replace(image_size=(args.image_size, args.image_size))
        if args.json is not None and (Path(args.json).is_dir() or not Path(args.json).parent.is_dir()):
            raise ValueError(f"--json {args.json}: not a file in an existing folder")
    except (DeviceError, ValueError) as e:
        ap.error(str(e))
    claimed = claim_json(ap, args.json, "benchmarks.speed_model")
    if dev.type == "cpu" and "fp16" in args.dtypes:
        ap.error("--dtypes fp16 is for a GPU (CPUs have no fast fp16 matmul)")
    result = run(args.preset, args.ks, args.dtypes, args.reps, args.device, args.image_size, not args.no_reference)
    write_json(claimed, args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
