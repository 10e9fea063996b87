"""Checks of `python -m seggpt.run`'s arguments before any image is decoded or a model is loaded.

* ``--batch-size`` is a positive integer (0 crashed in ``range``, -1 segmented nothing and exited 0);
* every image is smaller than Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``; read
  from the header only), or one line says which is not;
* no two queries write the same output (``a/x.jpg`` and ``b/x.jpg`` both wrote ``x_mask.png``);
* ``--out`` is not an input, does not lie inside one (the weights) nor hold one (the queries' folder),
  and holds no file that is not ours (`seggpt.outputs`; real paths: symlinks and ``..`` do not hide a
  clash).

`preflight(args)` raises `seggpt.errors.InputError` (one line): the CLI's one-line error, exit code 2.
Torch-free.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable, List, Tuple

from .errors import InputError, check_input_file, is_integer


def check_batch_size(value: object, option: str = "--batch-size") -> int:
    if not is_integer(value) or value < 1:
        raise InputError(f"{option} {value}: expected a positive integer (images per forward)")
    return int(value)


def check_image_size(path: "str | os.PathLike") -> Tuple[int, int]:
    """(width, height) from the header; InputError for a missing file, a non-image or a decompression bomb."""
    from PIL import Image, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS
    check_input_file(path, "image")  # a missing file, a folder, a FIFO or a device (it would block Pillow): first
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                size = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: the image has more pixels than the limit of {limit:,} "
                         "(PIL.Image.MAX_IMAGE_PIXELS; a decompression bomb?)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: not a readable image ({type(e).__name__})") from None
    return size


def output_names(inputs: Iterable[str]) -> List[Tuple[str, str, str]]:
    """(input, mask file name, overlay file name) per query, as seggpt.run names them."""
    return [(p, f"{Path(p).stem}_mask.png", f"{Path(p).stem}_overlay.png") for p in inputs]


def preflight(args) -> None:
    """Every check of the module docstring on parsed seggpt.run arguments."""
    from .outputs import real

    check_batch_size(args.batch_size)
    for path in [*(p for pair in args.prompt or [] for p in pair), *args.inputs]:  # prompt images and masks, queries
        check_image_size(path)
    seen = {}
    for query, mask_name, _ in output_names(args.inputs):
        if mask_name in seen and real(seen[mask_name]) != real(query):
            raise InputError(f"{seen[mask_name]} and {query} would both be written as {mask_name}: "
                             "give the queries distinct file names (or run them in two calls)")
        seen[mask_name] = query
    if getattr(args, "prompt_file", None) is not None:
        try:
            check_input_file(args.prompt_file, "tuned prompt")  # before the model loads; a FIFO would block
        except InputError as e:
            raise InputError(f"--prompt-file {e}") from None
    claim_output(args, dry_run=True)


#: what seggpt.run writes into --out
OUT_PATTERNS = ["*_mask.png", "*_overlay.png"]


def claim_output(args, dry_run: bool = False):
    """--out: never an input nor a folder holding one, never a folder holding files not ours (`seggpt.outputs`).

    dry_run: the checks only (before the model loads); else our earlier run there is emptied and the
    manifest written (an `OutputFolder`, finished when the CLI run ends).
    """
    from .outputs import check_not_inputs, claim_folder
    from .weights_file import weights_input

    inputs = {f"query image {n}": p for n, p in enumerate(args.inputs, 1)}
    for n, (image, mask) in enumerate(args.prompt or [], 1):
        inputs.update({f"prompt image {n}": image, f"prompt mask {n}": mask})
    inputs.update({"prompt file": getattr(args, "prompt_file", None),
                   "weights": weights_input(getattr(args, "weights", None))})
    check_not_inputs({"--out": args.out}, inputs, folders=("--out",))
    return claim_folder(args.out, "seggpt.run", overwrite=bool(getattr(args, "overwrite", False)),
                        patterns=OUT_PATTERNS, dry_run=dry_run)

__all__ = ["preflight", "claim_output", "OUT_PATTERNS", "check_batch_size", "check_image_size", "output_names"]
