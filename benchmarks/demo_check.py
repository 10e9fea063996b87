"""``python -m benchmarks.demo_check``: the README's main job, scored against the generator's truth.

The README's first command writes the example clip (``python -m vos.demo``, seed 7, 2 objects, 48
frames) and segments it with ``python -m vos.run ... --weights small``. This runs exactly that (the
CLI in a subprocess, on the mp4 the demo writes) and scores the index PNGs against the label maps
the generator rendered for the same seed: J&F as the official DAVIS tool computes it
(``vos.data.metrics``: first and last frames left out) and, per object, the frames where the object is
visible in the truth but empty in the prediction (the "present in every frame" criterion).

    python -m benchmarks.demo_check --out /tmp/demo_check
    python -m benchmarks.demo_check --out /tmp/demo_check --seed 1234 --set engine.refine.enabled=false

Other seeds (``--seed``) score fresh clips the same way; the model card's held-out synthetic seed is
one of them. Extra ``--set`` options go to ``vos.run`` unchanged.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from seggpt.io import read_label_png
from vos.demo import write_example
from vos.data.metrics import evaluate_sequence
from vos.data.synthetic import iter_clip
from seggpt.cli import ArgumentParser
from seggpt.io import atomic_write_text
from seggpt.outputs import OutputRefused, claim_folder

DEMO_SIZE = (240, 432)  # vos.demo.write_example's frame size


def score(pred_dir: Path, seed: int, frames: int, objects: int) -> Dict[str, object]:
    """J&F of the index PNGs in `pred_dir` against the generator's truth, and each object's missed frames."""
    truth = np.stack([labels for _, labels in iter_clip(seed, frames, DEMO_SIZE, objects)])
    files = sorted(pred_dir.glob("*.png"))
    if len(files) != frames:
        raise SystemExit(f"{pred_dir}: {len(files)} PNGs, the clip has {frames} frames")
    pred = np.stack([read_label_png(f) for f in files])
    ids = [int(i) for i in np.unique(truth[0]) if i > 0]
    per_object = evaluate_sequence(truth, pred, object_ids=ids)
    j, f = (float(np.mean([per_object[o][measure].mean() for o in ids])) for measure in ("J", "F"))
    missed = {o: [t for t in range(frames) if (truth[t] == o).any() and not (pred[t] == o).any()] for o in ids}
    return {"seed": seed, "frames": frames, "objects": ids, "J&F": (j + f) / 2, "J": j, "F": f,
            "missed_frames": {str(o): m for o, m in missed.items()},
            "visible_frames": {str(o): int(sum((truth[t] == o).any() for t in range(frames))) for o in ids}}


def main(argv: Optional[List[str]] = None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.demo_check", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="working folder (the clip, the masks, result.json)")
    p.add_argument("--seed", type=int, default=7, help="generator seed (7: the README demo)")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--objects", type=int, default=2)
    p.add_argument("--weights", default="small")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed on to vos.run")
    args = p.parse_args(argv)
    out = Path(args.out)
    try:  # the working folder holds this check's files alone (seggpt.outputs)
        claimed = claim_folder(out, "benchmarks.demo_check", patterns=["clip.mp4", "clip_mask.png", "masks/",
                                                                      "result.json"], register=False)
    except OutputRefused as e:
        p.error(str(e))
    video, mask = write_example(out, args.frames, objects=args.objects, seed=args.seed)
    masks = out / "masks"
    cmd = [sys.executable, "-m", "vos.run", str(video), "--first-mask", str(mask), "--weights", args.weights,
           "--out", str(masks), "--overwrite"] + [a for s in args.set for a in ("--set", s)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    result = score(masks, args.seed, args.frames, args.objects)
    result.update(seconds=round(time.perf_counter() - started, 1), command=" ".join(cmd[1:]))
    atomic_write_text(out / "result.json", json.dumps(result, indent=1))
    claimed.finish(0)
    missed = ", ".join(f"object {o}: {len(m)} of {result['visible_frames'][o]} visible frames empty"
                       for o, m in result["missed_frames"].items())
    print(f"seed {args.seed}: J&F {result['J&F']:.3f} (J {result['J']:.3f}, F {result['F']:.3f}); {missed}; "
          f"{result['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
