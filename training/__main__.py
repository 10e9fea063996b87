"""``python -m training --config configs/train_small.yaml [key=value ...] [--resume]``: train SegGPT.

Settings: a YAML file of ``training.config.TrainConfig`` keys, overridden by ``key=value`` (values
parsed as YAML), e.g. ``davis_roots=[path/to/DAVIS] out_dir=runs/small steps=200``. Multi-GPU:
``torchrun --nproc_per_node=8 -m training --config ...``. Exit code 2 on a bad setting.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from .config import TrainError, load_config
from .data import TrainDataError
from .trainer import Trainer


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file of training settings (see TrainConfig)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from a checkpoint (default: <out_dir>/last.pt)")
    parser.add_argument("overrides", nargs="*", help="key=value settings that override the file")
    args = parser.parse_args(argv)
    if args.resume is not None and "=" in args.resume and not Path(args.resume).exists():
        # "--resume key=value": the optional value swallowed an override
        args.overrides.insert(0, args.resume)
        args.resume = "auto"
    try:
        cfg = load_config(args.config, args.overrides)
        result = Trainer(cfg, resume=args.resume).run()
    except (TrainError, TrainDataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"step": result["step"], "best": result["best"], "scores": result["scores"],
                          "out_dir": cfg.out_dir}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
