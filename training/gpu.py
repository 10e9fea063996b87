"""``python -m training.gpu --out DIR``: the GPU training run as one command.

Trains ``configs/train_gpu.yaml`` (preset ``medium``, bf16) with the same trainer as every run, within
a wall-time budget for the whole command (``--budget-s``, default 480: start to files written), on the
synthetic generator plus DAVIS 2016 train at 240p read from ``data/davis2016-train-240p`` inside the
working tree (``--data``); without it, synthetic pairs only, with a warning. Writes to ``--out``
(default: the folder ``$OUT`` names):

* ``model.safetensors`` -- fp16 weights of the last step, our format (``SegGPT.from_pretrained`` reads it);
* ``log.jsonl`` -- the trainer's log (losses, evaluations: pair mIoU and the engine's J&F);
* ``summary.json`` -- what ran and how it ended: model, steps, minutes, pairs/s, data, scores, files.

The checkpoint (with the optimizer state, several times the weights) stays in ``--work`` (default: a
fresh temporary folder; one holding another run is refused), never in ``--out``. Interrupted (Ctrl-C, SIGTERM: ``timeout`` in
``training/gpu_train.sh``), the weights of the last whole step and the summary are written anyway.
``--smoke`` (or ``SEGGPT_GPU_SMOKE=1``): the same code for a few CPU steps of a tiny model (the test).
Settings after the options (``key=value``) override the config, as in ``python -m training``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from seggpt.cli import ArgumentParser, run_cli
from seggpt.config import get_config
from seggpt.errors import InputError
from seggpt.io import atomic_write_text
from seggpt.outputs import OVERWRITE_HELP, claim_folder
from seggpt.weights import save_state

from .config import load_config
from .trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path("data") / "davis2016-train-240p"
#: seconds kept from the budget for what follows the training: the last checkpoint, the final
#: evaluation, the fp16 export (a few seconds on a GPU), and the loader's start before the clock runs
RESERVE_S = 75.0
SMOKE = ["model=test-tiny", "steps=3", "batch_size=2", "num_workers=0", "device=cpu", "amp=off", "threads=1",
         "warmup_steps=1", "eval_every=2", "eval_pairs=2", "eval_clips=1", "eval_clip_frames=4",
         "eval_clip_size=[48, 64]", "synthetic_size=[48, 64]", "ckpt_every=2", "log_every=1", "curriculum=[]",
         "max_minutes=null"]


def _workers_for_shared_memory(cfg, image_size) -> Optional[int]:
    """Fewer loader workers where /dev/shm cannot hold their batches in flight (4 per worker, as the
    trainer's loader prefetches; a small /dev/shm kills workers with a bus error); None: as configured."""
    try:
        free = shutil.disk_usage("/dev/shm").free
    except OSError:
        return None
    h, w = image_size
    batch_bytes = cfg.batch_size * 2 * h * w * 7 * 4  # imgs, tgts (3 channels each), valid: float32 canvases
    fits = int(free // (2 * 4 * batch_bytes))
    return None if fits >= cfg.num_workers else max(0, fits)


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m training.gpu", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT"), help="folder for the weights, log and summary (default: $OUT)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--data", default=str(DEFAULT_DATA), help=f"DAVIS 2016 train 240p root (default: {DEFAULT_DATA})")
    p.add_argument("--budget-s", type=float, default=480.0, help="wall time for the whole command (default 480)")
    p.add_argument("--work", help="the run's own folder (checkpoint); default: a fresh temporary folder")
    p.add_argument("--smoke", action="store_true", default=os.environ.get("SEGGPT_GPU_SMOKE") == "1",
                   help="a few CPU steps of a tiny model (also SEGGPT_GPU_SMOKE=1)")
    p.add_argument("overrides", nargs="*", help="key=value settings over configs/train_gpu.yaml")
    return p


def _export(trainer: Trainer, out: Path, summary: Dict[str, Any]) -> None:
    """fp16 weights, the log and the summary into `out` (each written whole)."""
    state = {k: (v.detach().to(torch.float16) if v.is_floating_point() else v)
             for k, v in trainer.model.state_dict().items()}
    weights = save_state(state, trainer.model.config, out / "model.safetensors")
    log = trainer.out_dir / "log.jsonl"
    if log.is_file():
        atomic_write_text(out / "log.jsonl", log.read_text(encoding="utf-8"))
    summary["files"] = {p.name: p.stat().st_size for p in (weights, out / "log.jsonl") if p.is_file()}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")


def train(args: argparse.Namespace, started: float) -> Dict[str, Any]:
    if not args.out:
        raise InputError("--out: give the output folder (or set OUT)")
    if not args.smoke and args.budget_s - (time.time() - started) - RESERVE_S < 30:
        raise InputError(f"--budget-s {args.budget_s:g}: leaves under half a minute to train")
    # --out holds this run's files alone (seggpt.outputs: nothing that is not ours is touched)
    # (made, and writable: the claim has written the folder's manifest)
    out = claim_folder(args.out, "training.gpu", patterns=["model.safetensors", "log.jsonl", "summary.json"],
                       overwrite=bool(getattr(args, "overwrite", False))).folder
    data = Path(args.data)
    overrides: List[str] = list(SMOKE) if args.smoke else []
    sources = ["synthetic"]
    if all((data / part / "240p").is_dir() for part in ("JPEGImages", "Annotations")):
        overrides.append(f"davis_roots=[{data}]")
        sources.append(f"DAVIS 2016 train 240p ({data})")
    else:
        print(f"warning: {data}: no DAVIS 2016 train 240p here; training on synthetic pairs only",
              file=sys.stderr, flush=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="seggpt-gpu-train-"))
    overrides.append(f"out_dir={work}")
    if not args.smoke:
        overrides.append(f"max_minutes={(args.budget_s - (time.time() - started) - RESERVE_S) / 60.0:.2f}")
    overrides.extend(args.overrides)
    local = ROOT / "configs" / "train_gpu.yaml"
    cfg = load_config(str(local) if local.is_file() else "train_gpu", overrides)  # installed: the packaged config
    workers = _workers_for_shared_memory(cfg, get_config(cfg.model).image_size if not cfg.init_from else (448, 448))
    if workers is not None:
        print(f"warning: /dev/shm holds the batches of {workers} loader workers only, not {cfg.num_workers}",
              file=sys.stderr, flush=True)
        cfg = dataclasses.replace(cfg, num_workers=workers)
    trainer = Trainer(cfg)
    device = str(trainer.device)
    summary: Dict[str, Any] = {
        "model": cfg.model, "params": trainer.model.num_parameters(), "config": trainer.model.config.to_dict(),
        "device": device, "gpu": torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda" else None,
        "amp": str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else "fp32",
        "torch": torch.__version__, "python": platform.python_version(), "data": sources,
        "max_minutes": cfg.max_minutes, "batch_size": cfg.batch_size, "work": str(work),
    }
    result: Dict[str, Any] = {}
    interrupted = True
    try:
        result = trainer.run()
        interrupted = False
    finally:
        elapsed = trainer._elapsed()
        summary.update({
            "interrupted": interrupted, "steps": trainer.step, "train_minutes": round(elapsed / 60.0, 3),
            "pairs_per_s": round(trainer.step * cfg.batch_size * cfg.accum_steps / elapsed, 1) if elapsed else None,
            "scores": result.get("scores", {}), "best": trainer.best,
            "final_loss": trainer.losses[-1] if trainer.losses else None,
            "wall_minutes": round((time.time() - started) / 60.0, 3),
        })
        _export(trainer, out, summary)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    started = time.time()
    args = parser().parse_args(argv)

    def work() -> int:
        summary = train(args, started)
        print(json.dumps({k: summary[k] for k in ("model", "steps", "train_minutes", "pairs_per_s", "scores", "files")}))
        return 0

    return run_cli(work, interrupted="the weights of the last whole step, the log and the summary were written")


if __name__ == "__main__":
    sys.exit(main())
