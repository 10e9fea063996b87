"""``python -m training --config configs/train_small.yaml [key=value ...] [--resume | --overwrite]``: train SegGPT.

Settings: a YAML file of ``training.config.TrainConfig`` keys (a path, or a packaged config's name),
overridden by ``key=value`` (values read as YAML), e.g. ``davis_roots=[path/to/DAVIS] out_dir=runs/small
steps=200``. An out_dir that holds another run's files is refused unless ``--resume`` (go on from its
last.pt) or ``--overwrite`` (remove that run's files, only those). Multi-GPU:
``torchrun --nproc_per_node=8 -m training --config ...``.

Exit codes (``seggpt.cli``): 0 done; 2 a bad setting, data folder, checkpoint or out_dir (one line);
130 Ctrl-C and 143 SIGTERM, each after a whole checkpoint is written (go on with ``--resume``).
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C during the imports below: one line, exit 130
    from seggpt.cli import quiet_start

    quiet_start()

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from seggpt.cli import ArgumentParser, run_cli

from .config import load_config
from .trainer import Trainer


class _Outcome:
    """The interruption line, known only once the run has written (or not) its checkpoint."""

    def __init__(self) -> None:
        self.text = "no checkpoint was written"

    def __str__(self) -> str:
        return self.text


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML file of training settings (see TrainConfig), or a packaged config's name")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", nargs="?", const="auto", default=None,
                      help="go on from a checkpoint (default: <out_dir>/last.pt)")
    mode.add_argument("--overwrite", action="store_true",
                      help="out_dir holds another run: remove its files (last.pt, final/best.safetensors, "
                           "log.jsonl; nothing else) and start afresh")
    p.add_argument("overrides", nargs="*", help="key=value settings that override the file")
    return p


def train(args: argparse.Namespace, outcome: Optional[_Outcome] = None) -> Dict[str, Any]:
    """Load the settings and run (the CLI's work; errors are raised, not printed)."""
    cfg = load_config(args.config, args.overrides)
    trainer = Trainer(cfg, resume=args.resume, overwrite=args.overwrite)
    try:
        result = trainer.run()
    except KeyboardInterrupt:
        if outcome is not None and trainer.interrupted_checkpoint is not None:
            outcome.text = (f"checkpoint {trainer.interrupted_checkpoint} is whole (step {trainer.step}); "
                            f"go on with --resume")
        raise
    return {"step": result["step"], "best": result["best"], "scores": result["scores"], "out_dir": cfg.out_dir}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.resume is not None and "=" in args.resume and not Path(args.resume).exists():
        # "--resume key=value": the optional value swallowed an override
        args.overrides.insert(0, args.resume)
        args.resume = "auto"
    outcome = _Outcome()

    def work() -> int:
        try:
            summary = train(args, outcome)
        finally:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(summary))
        return 0

    return run_cli(work, interrupted=outcome)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
