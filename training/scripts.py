"""The console script of the training package (setup.cfg ``[options.entry_points]``): ``seggpt-train``
is ``python -m training`` (training/__main__.py).

A tiny function rather than ``training.__main__.main``: the quiet start (Ctrl-C during the torch
import: one line, exit 130) comes before that module's import (`seggpt.cli.run_module`). Here, not in
seggpt.scripts, because seggpt never imports training (training builds on seggpt and vos).
"""
from __future__ import annotations

from seggpt.cli import run_module


def seggpt_train() -> int:
    """``seggpt-train``: train or fine-tune SegGPT (`python -m training`)."""
    return run_module("training.__main__")


__all__ = ["seggpt_train"]
