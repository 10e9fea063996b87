"""The editor's results (`vos.editing.editor.Editor`): each frame's label map, scores and soft alpha, kept packed, and
what is made of them: the preview, the timeline (given, present, empty, lost, not segmented per object).

A propagated frame keeps the model's soft edges (`vos.io.exports.soft_alpha`, default width) for the soft
export; a mask the user drew is hard there (alpha 255 on it, 0 for the other objects under it).
"""
from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from seggpt.colors import davis_palette
from seggpt.errors import InputError, is_integer
from seggpt.io import overlay

from vos.io.exports import DEFAULT_SOFT_WIDTH, LostObjectReport, lost_after_for, margins_of_alpha, soft_alpha


@dataclass
class KeptResult:
    labels: bytes  # zlib of the (H, W) uint8 label map
    scores: Dict[int, Optional[float]]  # per object: mean confidence over its pixels (None where empty)
    object_ids: List[int]  # the session's objects when the frame was segmented, in `alpha` order
    #: zlib of the (N, H, W) uint8 soft alpha (`vos.io.exports.soft_alpha`, default width) of `object_ids`:
    #: 0 or 255 away from the edges, so it packs small; the soft exports are made from it
    alpha: bytes
    #: the ids its label map holds, worked out once when the timeline first asks (`Editor._present`)
    present: Optional[frozenset] = None


@dataclass
class TimelineRow:
    """One object over the video, for the app's timeline: runs of frames in one state each."""

    obj_id: int
    label: str
    color: str  # the object's overlay colour (#rrggbb)
    #: [start, stop) frame ranges with their state: "given" (a mask given there), "present", "empty",
    #: "lost" (in an empty run longer than the threshold) or "none" (not segmented yet, or absent there)
    runs: List[Tuple[int, int, str]]
    lost: List[Tuple[int, int]]  # inclusive [first, last] frames of its lost runs
    empty: int  # frames segmented where it is empty


class EditorResults:
    """The part of `Editor` that keeps the results (`self.results`: frame -> `KeptResult`) and shows them."""

    def labels(self, frame_idx: int) -> np.ndarray:
        """The frame's label map (uint8; zeros where no propagation has reached it yet)."""
        r = self.results.get(frame_idx)
        return self._unpack(r) if r else np.zeros(self.size, np.uint8)

    def _shown_labels(self, frame_idx: int, hidden: Sequence[int]) -> np.ndarray:
        """The frame's label map without the objects in `hidden`."""
        labels = self.labels(frame_idx)
        return np.where(np.isin(labels, list(hidden)), 0, labels).astype(np.uint8) if len(hidden) else labels

    def preview(self, frame_idx: int, hide: Sequence[int] = ()) -> np.ndarray:
        """The frame with every object's overlay but the objects in `hide` (an id or ids)."""
        hidden = [hide] if is_integer(hide) else [int(h) for h in hide if h is not None]
        return overlay(self.frame(frame_idx), self._shown_labels(frame_idx, hidden), davis_palette())

    def done_frames(self) -> int:
        return len(self.results)

    def _present(self, r: KeptResult) -> frozenset:
        if r.present is None:
            r.present = frozenset(int(v) for v in np.unique(self._unpack(r)) if v)
        return r.present

    @property
    def lost_after(self) -> int:
        """More empty frames in a row than this and an object is lost: the rule of `vos.run --lost-after`
        (`vos.io.exports.lost_after_for`), for this video's length."""
        return lost_after_for(self.num_frames)

    def timeline(self) -> List[TimelineRow]:
        """Per object, where it is given, present, empty, lost or not segmented (`TimelineRow`), so an editor
        sees where to correct. An object exists on the frames whose result has it (from its first mask on,
        and before it where a backward pass reached); lost is the CLI's rule (`lost_after`)."""
        # snapshots: a propagation adds results meanwhile, and objects may be added from another view
        results, objects = dict(self.results), dict(self.objects)
        given = {a: set(self.given(a)) for a in list(self.annotated_frames())}
        prompts = {o: sorted(a for a in given if o in given[a]) for o in objects}
        report = LostObjectReport({o: obj.name for o, obj in objects.items()}, prompts, self.lost_after)
        for t, r in sorted(results.items()):
            report.add_present(t, set(self._present(r)), [o for o in r.object_ids if o in objects])
        rows = []
        for o, obj in objects.items():
            track = report.tracks[o]
            lost = track.lost_frames(report.after)
            states = ["given" if o in given.get(t, ()) else "lost" if t in lost else "empty" if t in track.empty
                      else "present" if t in track.frames else "none" for t in range(self.num_frames)]
            runs: List[Tuple[int, int, str]] = []
            for state, run in itertools.groupby(states):
                start = runs[-1][1] if runs else 0
                runs.append((start, start + len(list(run)), state))
            lost_runs = [(a, b - 1) for a, b, state in runs if state == "lost"]
            rows.append(TimelineRow(o, obj.label, obj.hex, runs, lost_runs, len(track.empty)))
        return rows

    def _keep(self, r) -> None:
        """Keep a frame's result as the engine hands it over (`vos.engine.segmenter.FrameResult`), packed."""
        labels = r.labels
        if labels.size and int(labels.max()) > 255:
            raise InputError("object ids above 255 cannot be kept")
        present = set(np.unique(labels).tolist())
        conf = r.confidence
        scores = {o: (round(float(conf[labels == o].mean()), 4) if o in present else None) for o in r.object_ids}
        alpha = soft_alpha(r.margins, DEFAULT_SOFT_WIDTH)
        self.results[r.frame_idx] = KeptResult(self._pack(labels.astype(np.uint8)), scores, list(r.object_ids),
                                               self._pack(alpha), frozenset(int(o) for o in present if o))

    @staticmethod
    def _pack(labels: np.ndarray) -> bytes:
        return zlib.compress(np.ascontiguousarray(labels, dtype=np.uint8).tobytes(), 1)

    def _unpack(self, r: KeptResult) -> np.ndarray:
        return np.frombuffer(zlib.decompress(r.labels), np.uint8).reshape(self.size).copy()

    def _unpack_alpha(self, r: KeptResult) -> np.ndarray:
        return np.frombuffer(zlib.decompress(r.alpha), np.uint8).reshape(len(r.object_ids), *self.size).copy()

    def _drawn(self, old: Optional[KeptResult], labels: np.ndarray, scores: Dict[int, Optional[float]], obj_id: int,
               m: np.ndarray) -> KeptResult:
        """A frame's result after the user drew `m` for `obj_id`: hard there (alpha 255 on it, 0 for the others
        under it), the model's soft edges elsewhere kept."""
        ids = list(old.object_ids) if old else []
        alpha = self._unpack_alpha(old) if old else np.zeros((0, *self.size), np.uint8)
        if obj_id not in ids:
            ids.append(obj_id)
            alpha = np.concatenate([alpha, np.zeros((1, *self.size), np.uint8)])
        alpha[:, m] = 0
        alpha[ids.index(obj_id)] = np.where(m, 255, 0).astype(np.uint8)
        return KeptResult(self._pack(labels), scores, ids, self._pack(alpha))

    def _show_given(self, frame_idx: int, r: KeptResult) -> KeptResult:
        """`r` with the frame's given masks shown where no object is (after an object's pixels were taken
        away: a mask given for another object under them shows again, hard)."""
        labels, alpha = self._unpack(r), self._unpack_alpha(r)
        ids = list(r.object_ids)
        for o, m in self.given(frame_idx).items():
            fill = m & (labels == 0)
            if o in ids and fill.any():
                labels[fill] = o
                alpha[:, fill] = 0
                alpha[ids.index(o)][fill] = 255
        return KeptResult(self._pack(labels), r.scores, ids, self._pack(alpha))

    def _drop_results_of(self, obj_id: int) -> None:
        """A removed object's pixels, scores and soft alpha taken out of every result (an id used again starts
        clean); a mask given for another object under its pixels shows again."""
        for idx, r in list(self.results.items()):
            if obj_id not in r.object_ids:
                continue
            labels = self._unpack(r)
            labels[labels == obj_id] = 0
            keep = [k for k, o in enumerate(r.object_ids) if o != obj_id]
            kept = KeptResult(self._pack(labels), {o: v for o, v in r.scores.items() if o != obj_id},
                              [r.object_ids[k] for k in keep], self._pack(self._unpack_alpha(r)[keep]))
            self.results[idx] = self._show_given(idx, kept)

    def _margins(self, r: Optional[KeptResult], ids: List[int]) -> np.ndarray:
        """(len(ids), H, W) margins giving back the kept alpha (`margins_of_alpha`); -1 (absent) for objects
        not segmented on the frame."""
        out = np.full((len(ids), *self.size), -1.0, np.float32)
        if r is None:
            return out
        margins = margins_of_alpha(self._unpack_alpha(r), DEFAULT_SOFT_WIDTH)
        for k, o in enumerate(ids):
            if o in r.object_ids:
                out[k] = margins[r.object_ids.index(o)]
        return out
