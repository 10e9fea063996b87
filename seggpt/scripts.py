"""The console scripts of the seggpt package (setup.cfg ``[options.entry_points]``): ``seggpt-run`` is
``python -m seggpt.run``, ``seggpt-tune`` is ``python -m seggpt.tune``.

Each entry is a tiny function, not the module's own ``main``: a console script imports its module, so
the quiet start (Ctrl-C during the torch import: one line, exit 130) must come before that import
(`seggpt.cli.run_module`). This module imports nothing heavy and nothing of vos or training.
"""
from __future__ import annotations

from .cli import run_module


def seggpt_run() -> int:
    """``seggpt-run``: in-context segmentation of images (`seggpt.run`)."""
    return run_module("seggpt.run")


def seggpt_tune() -> int:
    """``seggpt-tune``: tune a prompt for a set of examples (`seggpt.tune`)."""
    return run_module("seggpt.tune")


__all__ = ["seggpt_run", "seggpt_tune"]
