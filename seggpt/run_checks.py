"""Checks of `python -m seggpt.run`'s arguments before any image is decoded or a model is loaded (issue 13).

* ``--batch-size`` is a positive integer (0 crashed in ``range``, -1 segmented nothing and exited 0);
* every image is smaller than Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``; read
  from the header only), or one line says which is not;
* no two queries write the same output (``a/x.jpg`` and ``b/x.jpg`` both wrote ``x_mask.png``);
* no output (``<stem>_mask.png``, ``<stem>_overlay.png``) is an input or, without ``--overwrite``, an
  existing file, and ``--out`` is not an input
  file or inside the weights (real paths: symlinks and ``..`` do not hide a clash).

`preflight(args)` raises `RunArgumentError` (a ValueError, one line); `seggpt.run.run` turns it into
its one-line error, exit code 2. Torch-free.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable, List, Tuple


class RunArgumentError(ValueError):
    """A bad argument of seggpt.run (one line naming it)."""


def check_batch_size(value: object, option: str = "--batch-size") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RunArgumentError(f"{option} {value}: expected a positive integer (images per forward)")
    return value


def check_image_size(path: "str | os.PathLike") -> Tuple[int, int]:
    """(width, height) from the header; RunArgumentError for a missing file, a non-image or a decompression bomb."""
    from PIL import Image, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                size = im.size
    except FileNotFoundError:
        raise RunArgumentError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RunArgumentError(f"{path}: is a folder, not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RunArgumentError(f"{path}: the image has more pixels than the limit of {limit:,} "
                               "(PIL.Image.MAX_IMAGE_PIXELS; a decompression bomb?)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise RunArgumentError(f"{path}: not a readable image ({type(e).__name__})") from None
    return size


def _real(path: "str | os.PathLike") -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def output_names(inputs: Iterable[str]) -> List[Tuple[str, str, str]]:
    """(input, mask file name, overlay file name) per query, as seggpt.run names them."""
    return [(p, f"{Path(p).stem}_mask.png", f"{Path(p).stem}_overlay.png") for p in inputs]


def preflight(args) -> None:
    """Every check of the module docstring on parsed seggpt.run arguments."""
    check_batch_size(args.batch_size)
    prompts = [p for pair in args.prompt or [] for p in pair]
    for path in [*prompts, *args.inputs]:
        check_image_size(path)
    seen = {}
    for query, mask_name, _ in output_names(args.inputs):
        if mask_name in seen and _real(seen[mask_name]) != _real(query):
            raise RunArgumentError(f"{seen[mask_name]} and {query} would both be written as {mask_name}: "
                                   "give the queries distinct file names (or run them in two calls)")
        seen[mask_name] = query
    out = _real(args.out)
    inputs = {_real(p): p for p in [*prompts, *args.inputs]}
    if out in inputs:
        raise RunArgumentError(f"--out {args.out} is the input {inputs[out]}: outputs never replace inputs")
    weights = getattr(args, "weights", None)
    from .weights_check import packaged_weights

    if weights and packaged_weights(weights) is None and os.path.lexists(os.path.expanduser(str(weights))):
        w = _real(weights)
        if out == w or w in out.parents:
            raise RunArgumentError(f"--out {args.out} is inside the weights {weights}: choose another --out")
    for query, mask_name, overlay_name in output_names(args.inputs):
        for name in (mask_name, overlay_name):
            target = out / name
            if target in inputs:
                raise RunArgumentError(f"--out {args.out}: {name} would replace the input {inputs[target]}; "
                                       "choose another --out")
            if target.is_dir():
                raise RunArgumentError(f"--out {args.out}: {name} is a folder where this run writes a file")
            if target.exists() and not getattr(args, "overwrite", False):
                raise RunArgumentError(f"--out {args.out}: {name} exists; pass --overwrite to replace it, or choose "
                                       "another --out")


__all__ = ["RunArgumentError", "preflight", "check_batch_size", "check_image_size", "output_names"]
