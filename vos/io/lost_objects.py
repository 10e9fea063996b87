"""Which objects were lost: the frames where each exists but its mask is empty, and the rule that calls it lost.

Lost-object report: an object whose mask on its prompt frame is not empty, but is empty on more than
`lost_after` consecutive frames, is reported lost: a warning, the summary line, and ``lost: true`` in
the JSON. The threshold fits the clip unless given (`--lost-after`): `lost_after_for` (the app's
timeline uses the same rule).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set

import numpy as np

from seggpt.errors import InputError

#: the lost-object threshold of a long (or unknown-length) video: more than this many empty frames in a row
MAX_LOST_AFTER = 10


def lost_after_for(num_frames: Optional[int]) -> int:
    """The lost-object threshold that fits a clip of `num_frames`: min(10, max(2, frames // 8)).

    A fixed 10 never flagged anything on a short clip (an object gone for the last 7 of 16 frames);
    a clip of 16 frames flags 3 empty frames in a row, one of 80 frames or more 11. At least 2, so one
    or two frames of a missed thin part do not count as lost. Unknown length: 10. One rule for the
    CLI (`--lost-after`, its default) and the app's timeline.
    """
    if num_frames is None or num_frames <= 0:
        return MAX_LOST_AFTER
    return min(MAX_LOST_AFTER, max(2, int(num_frames) // 8))



def _ranges(frames: Sequence[int]) -> List[List[int]]:
    out: List[List[int]] = []
    for f in sorted(frames):
        if out and f == out[-1][1] + 1:
            out[-1][1] = f
        else:
            out.append([f, f])
    return out


@dataclass
class ObjectTrack:
    """What happened to one object over the frames processed."""

    obj_id: int
    name: str
    prompt_frames: List[int] = field(default_factory=list)
    frames: Set[int] = field(default_factory=set)  # processed frames where the object exists
    empty: Set[int] = field(default_factory=set)  # ... and where its mask is empty
    prompt_empty: bool = False  # its mask on its (first) prompt frame is empty (nothing to lose)

    def longest_empty_run(self) -> int:
        return max((b - a + 1 for a, b in _ranges(list(self.empty))), default=0)

    def lost(self, after: int) -> bool:
        return not self.prompt_empty and self.longest_empty_run() > after

    def lost_frames(self, after: int) -> Set[int]:
        """The frames of every empty run longer than `after` (none when its prompt mask is empty)."""
        if self.prompt_empty:
            return set()
        return {f for a, b in _ranges(list(self.empty)) if b - a + 1 > after for f in range(a, b + 1)}

    def as_json(self, after: int) -> dict:
        return {"id": self.obj_id, "name": self.name, "prompt_frames": sorted(self.prompt_frames),
                "frames": len(self.frames), "empty_frames": _ranges(list(self.empty)), "empty": len(self.empty),
                "longest_empty_run": self.longest_empty_run(), "lost": self.lost(after)}


class LostObjectReport:
    """Per object, the frames where it exists but is empty; lost = empty on more than `after` frames in a row."""

    def __init__(self, names: Mapping[int, str], prompt_frames: Mapping[int, Sequence[int]],
                 after: int = MAX_LOST_AFTER):
        if after < 0:
            raise InputError(f"lost-after must be >= 0, got {after}")
        self.after = after
        self.tracks: Dict[int, ObjectTrack] = {
            o: ObjectTrack(o, names.get(o, f"object {o}"), sorted(prompt_frames.get(o, []))) for o in names}

    def add(self, frame_idx: int, labels: np.ndarray, existing: Iterable[int]) -> None:
        """One frame's label map; `existing`: the objects that exist there (absent ones are not empty)."""
        self.add_present(frame_idx, set(np.unique(labels).tolist()), existing)

    def add_present(self, frame_idx: int, present: Set[int], existing: Iterable[int]) -> None:
        """One frame, as the ids its label map holds (`add` without the map: the app keeps them per frame)."""
        for t in (self.tracks[o] for o in existing if o in self.tracks):
            t.frames.add(frame_idx)
            if t.obj_id not in present:
                t.empty.add(frame_idx)
                if t.prompt_frames and frame_idx == t.prompt_frames[0]:
                    t.prompt_empty = True
            else:
                t.empty.discard(frame_idx)

    def lost(self) -> List[ObjectTrack]:
        return [t for t in self.tracks.values() if t.lost(self.after)]

    def summary(self) -> str:
        """One clause for the summary line: every object with empty frames, and the lost ones."""
        parts = []
        for t in self.tracks.values():
            if t.empty:
                spans = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in _ranges(list(t.empty)))
                parts.append(f"object {t.obj_id} empty on {len(t.empty)} frame(s) ({spans})"
                             + (" LOST" if t.lost(self.after) else ""))
        return "; ".join(parts) if parts else "no object lost"

    def warnings(self) -> List[str]:
        return [f"object {t.obj_id} ({t.name}) is empty on {t.longest_empty_run()} frames in a row "
                f"(more than {self.after}): it is probably lost; give a mask where it reappears"
                for t in self.lost()]

    def as_json(self) -> List[dict]:
        return [t.as_json(self.after) for t in self.tracks.values()]


__all__ = ["MAX_LOST_AFTER", "lost_after_for", "ObjectTrack", "LostObjectReport"]
