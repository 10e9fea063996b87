"""``python -m benchmarks.keeps_object``: is a tracked object still *the* object? Scored on the official example.

The official SegGPT inference code ships ``examples/video_3.mp4`` (66 frames, 854x480, 5 fps) with a
first-frame mask of the small black-and-white dog in front of the handler. A count of frames where
the mask is not empty rewards a tracker that jumps to the large merle dog that passes in front of it
(frames 6-11) and follows that one instead. So this check also asks where the mask is: boxes around
the target dog, marked by hand on every third frame (frames 6 and 9: hidden behind the other dog, not
scored), and a frame counts as "on the object" when most of its mask (``ON_OBJECT``) lies in the box
grown by ``GROW`` pixels.

    python -m vos.run video_3.mp4 --first-mask video_3_target.png --weights small --out OUT
    python -m benchmarks.keeps_object --masks OUT

Prints the frames with a mask (of all 66) and the marked frames on the object (of 20), and the
frames that miss.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple


from seggpt.cli import ArgumentParser
from seggpt.io import read_label_png

FRAMES = 66
SIZE = (480, 854)
#: frame -> (y0, y1, x0, x1) of the target dog, frame pixels, marked by hand (frames 6 and 9: hidden)
BOXES: Dict[int, Tuple[int, int, int, int]] = {
    0: (260, 365, 390, 450), 3: (260, 360, 405, 450), 12: (270, 370, 410, 470), 15: (240, 370, 425, 475),
    18: (210, 380, 405, 470), 21: (230, 380, 405, 485), 24: (270, 380, 410, 500), 27: (280, 390, 425, 495),
    30: (240, 380, 440, 520), 33: (200, 380, 435, 605), 36: (230, 400, 460, 690), 39: (280, 410, 555, 854),
    42: (260, 410, 670, 854), 45: (260, 400, 780, 854), 48: (190, 390, 750, 854), 51: (180, 400, 785, 854),
    54: (180, 420, 740, 854), 57: (180, 420, 780, 854), 60: (160, 410, 770, 854), 63: (180, 420, 735, 854),
}
GROW = 20  # the boxes are marked at half resolution: this much slack on each side
ON_OBJECT = 0.5  # this fraction of the mask inside the grown box


def score(masks: Path) -> Dict[str, object]:
    """Frames with a mask, and the marked frames where the mask is on the target dog."""
    files = sorted(masks.glob("*.png"))
    if len(files) != FRAMES:
        raise SystemExit(f"{masks}: {len(files)} PNGs, video_3.mp4 has {FRAMES} frames")
    present: List[int] = []
    on, off = [], []
    for t, f in enumerate(files):
        mask = read_label_png(f) > 0
        if mask.shape != SIZE:
            raise SystemExit(f"{f}: {mask.shape[1]}x{mask.shape[0]}, video_3.mp4 is {SIZE[1]}x{SIZE[0]}")
        if mask.any():
            present.append(t)
        if t in BOXES:
            y0, y1, x0, x1 = BOXES[t]
            inside = mask[max(0, y0 - GROW):y1 + GROW, max(0, x0 - GROW):x1 + GROW].sum()
            (on if mask.any() and inside >= ON_OBJECT * mask.sum() else off).append(t)
    return {"present": len(present), "frames": FRAMES, "empty_frames": [t for t in range(FRAMES) if t not in present],
            "on_object": len(on), "marked": len(BOXES), "off_object_frames": off}


def main(argv: Optional[List[str]] = None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.keeps_object", description=__doc__.splitlines()[0])
    p.add_argument("--masks", required=True, help="vos.run's --out for video_3.mp4 (66 index PNGs)")
    args = p.parse_args(argv)
    if not Path(args.masks).is_dir():
        p.error(f"--masks {args.masks}: not a folder")
    result = score(Path(args.masks))
    print(f"mask present on {result['present']} of {FRAMES} frames (empty: {result['empty_frames']}); "
          f"on the object on {result['on_object']} of {result['marked']} marked frames "
          f"(missed or elsewhere: {result['off_object_frames']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
