"""`vos.run`'s outputs: its --out and --alpha folders and its single files, checked before the model loads.

The rules are `seggpt.outputs`' (never an input, never over a file that is not ours); this module
gathers what one `vos.run` writes and claims it in one step, right before the first frame is written.

Torch-free, like `seggpt.cli`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

from seggpt.errors import InputError
from seggpt.outputs import (OutputFolder, PathLike, is_within, check_not_inputs, check_video_output, claim_folder,
                            real)
from seggpt.weights_file import weights_input

# ---------------------------------------------------------------------------------------------- the CLIs


@dataclass
class PendingClaim:
    """Checks passed, nothing touched yet: `claim()` empties our earlier runs and writes the manifests."""

    folders: List[tuple]  # (folder, tool, options of claim_folder)

    def claim(self) -> List[OutputFolder]:
        # checked again: a folder may have changed since
        runs = [claim_folder(folder, tool, **options) for folder, tool, options in self.folders]
        assert None not in runs
        return runs  # type: ignore[return-value]


#: what `vos.run` writes: in --out the index PNGs and objects/<id>/<frame>.png; in --alpha RGBA PNGs,
#: <frame>.png with one object, <id:03d>/<frame>.png with several
OUT_PATTERNS = ["*.png", "objects/"]
ALPHA_PATTERNS = ["*.png", "*/*.png"]


def claim_run_outputs(args, weights: Optional[str], out_dir: PathLike) -> PendingClaim:
    """`vos.run`: --out, --alpha and the single files checked against its inputs and for files not ours.

    Runs before the model is loaded. Nothing is removed until `.claim()`, called once the model is
    loaded and the mask accepted, right before the first frame is written: a run that fails before
    that leaves an earlier run's files alone.
    """
    overlay = getattr(args, "overlay", None)
    if overlay is not None:
        check_video_output("--overlay", overlay)
    video_label = "frames folder" if os.path.isdir(str(args.video)) else "video"
    inputs = {video_label: args.video, "mask": getattr(args, "first_mask", None),
              "masks folder": getattr(args, "masks", None), "weights": weights_input(weights),
              "config": getattr(args, "config", None)}
    outputs = {"--out": out_dir, "--overlay": overlay}
    outputs.update({f"--{name}": getattr(args, name, None) for name in ("alpha", "matte", "rle", "report")})
    check_not_inputs(outputs, inputs, folders=("--out", "--alpha"))
    alpha = getattr(args, "alpha", None)
    if alpha is not None and (is_within(real(alpha), real(out_dir)) or is_within(real(out_dir), real(alpha))):
        raise InputError(f"--alpha {alpha}: is, or lies inside or around, --out {out_dir}: the RGBA PNGs would "
                         f"replace the index PNGs; one folder cannot hold two outputs")
    files = {k: v for k, v in outputs.items() if v is not None and k in ("--overlay", "--matte", "--rle", "--report")}
    for option, file in files.items():
        if alpha is not None and is_within(real(file), real(alpha)):
            raise InputError(f"{option} {file} lies inside --alpha {alpha}, where the RGBA PNGs go; choose another "
                             f"name")
    overwrite = bool(getattr(args, "overwrite", False))
    folders = [(out_dir, "vos.run", dict(overwrite=overwrite, patterns=OUT_PATTERNS, files=files))]
    if alpha is not None:
        folders.append((alpha, "vos.run", dict(overwrite=overwrite, patterns=ALPHA_PATTERNS, option="--alpha")))
    for folder, tool, options in folders:
        claim_folder(folder, tool, dry_run=True, **options)  # type: ignore[arg-type]
    return PendingClaim(folders)


__all__ = ["claim_run_outputs", "PendingClaim", "OUT_PATTERNS", "ALPHA_PATTERNS"]
