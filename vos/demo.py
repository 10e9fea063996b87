"""`python -m vos.demo DIR`: write a small example clip and its first-frame mask, made by our generator.

The README's first command runs the engine on it, so a fresh machine needs no download at all:
    python -m vos.demo example && python -m vos.run example/clip.mp4 --first-mask example/clip_mask.png --weights small
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C during the imports below (cv2, av): one line, exit 130
    from seggpt.cli import quiet_start

    quiet_start()

import sys
from pathlib import Path
from typing import List, Optional

from seggpt.cli import ArgumentParser, run_cli
from seggpt.errors import InputError, is_integer
from seggpt.io import save_index_png, write_mp4
from seggpt.outputs import check_path_given, claim_files

from vos.data.synthetic import iter_clip, make_clip


def write_example(folder: Path, frames: int = 48, size=(240, 432), objects: int = 2, seed: int = 7,
                  fps: float = 12.0) -> tuple:
    """Write `clip.mp4` (streamed, any length) and `clip_mask.png` (frame 0's objects) into folder.

    Either file, where it exists, is replaced only when an earlier run of ours wrote it, unchanged
    since (`seggpt.outputs`); the folder's other files are never touched.
    """
    if not is_integer(frames) or frames < 1:
        raise InputError(f"--frames: at least 1 frame, got {frames}")
    _, first_labels = make_clip(seed, 1, size=size, num_objects=objects)  # checks the object count first
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder; name a folder for the example")
    claimed = claim_files({"the clip": folder / "clip.mp4", "the mask": folder / "clip_mask.png"}, "vos.demo",
                          register=False)
    folder.mkdir(parents=True, exist_ok=True)
    video = write_mp4(folder / "clip.mp4", (f for f, _ in iter_clip(seed, frames, size, objects)), fps=fps)
    mask = folder / "clip_mask.png"
    save_index_png(mask, first_labels[0])
    claimed.finish(0)
    return video, mask


def main(argv: Optional[List[str]] = None) -> int:
    ap = ArgumentParser(prog="python -m vos.demo", description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default="example")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--objects", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    def work() -> int:
        check_path_given("the folder", args.folder)
        video, mask = write_example(Path(args.folder), args.frames, objects=args.objects, seed=args.seed)
        print(f"wrote {video} and {mask}; now run:\n  python -m vos.run {video} --first-mask {mask} --weights small "
              f"--overlay {Path(args.folder) / 'overlay.mp4'}")
        return 0

    return run_cli(work)


if __name__ == "__main__":
    sys.exit(main())
