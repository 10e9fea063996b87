"""The console scripts of the vos package (setup.cfg ``[options.entry_points]``): ``vos-run``,
``vos-app`` and ``vos-demo`` are ``python -m vos.run``, ``vos.app`` and ``vos.demo``.

Tiny functions rather than the modules' own ``main``: the quiet start (Ctrl-C during the torch import:
one line, exit 130) comes before the module's import (`seggpt.cli.run_module`). Torch-free itself.
"""
from __future__ import annotations

from seggpt.cli import run_module


def vos_run() -> int:
    """``vos-run``: segment the masked objects in every frame of a video (`vos.run`)."""
    return run_module("vos.run")


def vos_app() -> int:
    """``vos-app``: the local web app to make, correct and export masks (`vos.app`)."""
    return run_module("vos.app")


def vos_demo() -> int:
    """``vos-demo``: write the example clip and its first-frame mask (`vos.demo`)."""
    return run_module("vos.demo")


__all__ = ["vos_run", "vos_app", "vos_demo"]
