"""Objects as the user names them: id checks, the ordered id list of a session, masks -> {id: mask}.

The rules (README, "Rules of the engine"), in one place for the session API, live streams and the CLI:
* ids are positive integers (Python or numpy ints; not bools, not 1.5); index PNGs can hold only
  1..255, and the writer refuses more, not the engine;
* a label map gives the objects whose ids it holds; its 0 asserts nothing about other objects;
* a binary mask (bool, or a map holding only 0 and 255 with no id given) is object 1;
* one object's mask (`add_new_mask`, the editor, the SAM 2 shim) is booleans or numbers, nonzero
  being the object (> 0 in the SAM 2 shim, as SAM 2's logits are negative outside), numpy or torch:
  `object_mask` is the one converter, with one message for each thing it refuses;
* an empty mask gives no object: refused for an object not given before (there is nothing to track),
  taken for one already given (the object is absent on that frame, as in DAVIS and SAM 2).
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Container, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from seggpt.errors import EngineError, is_integer  # is_integer: the one integer test, kept here by its name

if TYPE_CHECKING:  # pragma: no cover
    from vos.engine.state import Annotations

MAX_SESSION_OBJECTS = 255  # objects one session tracks at once (colours, and the cost of separate mode)

MAX_OBJECT_ID = 2 ** 63 - 1  # label maps are int64 at most


def check_object_id(obj_id: object, where: str = "object id") -> int:
    """A positive integer id, or EngineError."""
    if not is_integer(obj_id):
        raise EngineError(f"{where}: object ids must be positive integers, got {obj_id!r}")
    if not 1 <= int(obj_id) <= MAX_OBJECT_ID:
        raise EngineError(f"{where}: object ids must be positive integers below 2**63, got {int(obj_id)}")
    return int(obj_id)


def label_dtype(ids: Sequence[int]) -> type:
    """int32 label maps (half the memory) unless an id needs int64."""
    return np.int32 if max(ids, default=0) <= np.iinfo(np.int32).max else np.int64


def check_frame_index(frame_idx: object, num_frames: Optional[int]) -> int:
    """A frame index inside the video (num_frames None: any index >= 0), or EngineError."""
    if not is_integer(frame_idx):
        raise EngineError(f"frame index must be an integer, got {frame_idx!r}")
    idx = int(frame_idx)
    if idx < 0 or (num_frames is not None and idx >= num_frames):
        last = f"0..{num_frames - 1}" if num_frames else "none"
        raise EngineError(f"frame index {idx} is out of range (the video has {num_frames} frames: {last})")
    return idx


def check_frame(frame: object) -> np.ndarray:
    """An (H, W, 3) uint8 RGB frame with H, W > 0, or EngineError."""
    f = np.asarray(frame)
    if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8 or 0 in f.shape:
        raise EngineError(f"a frame must be an (H, W, 3) uint8 RGB array, got {f.dtype} {f.shape}")
    return f


def as_array(mask: object, where: str, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """The mask as a numpy array (a torch tensor's too, on any device), or EngineError: no mask, what is no
    array (a ragged list, an object numpy cannot hold) or, with `size` (H, W), an array of another shape."""
    if mask is None:
        raise EngineError(f"{where}: no mask given")
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported: never imported here
    try:
        m = np.asarray(mask.detach().cpu() if torch is not None and isinstance(mask, torch.Tensor) else mask)
    except (ValueError, TypeError) as e:
        raise EngineError(f"{where}: the mask is not an array ({str(e).splitlines()[0][:80]})") from None
    if size is not None and m.shape != tuple(size):
        raise EngineError(f"{where}: the mask is {describe_shape(m)}, the frame {size[1]}x{size[0]}")
    return m


def describe_shape(m: np.ndarray) -> str:
    """'16x12' (W x H first) for a message; 'a scalar' for 0-d."""
    return "x".join(str(s) for s in m.shape[::-1]) if m.ndim else "a scalar"


def object_mask(mask: object, where: str, size: Optional[Tuple[int, int]] = None,
                above_zero: bool = False) -> np.ndarray:
    """One object's mask as a new bool array: the one converter of what callers give as a mask.

    Booleans, or numbers where nonzero is the object (`above_zero`: > 0 is, SAM 2's rule, whose masks and
    logits are negative outside); numpy or torch, any device; `size` (H, W) checked when given. Anything
    else is EngineError naming `where`: a NaN would otherwise be nonzero, and mark the pixel.
    """
    m = as_array(mask, where, size)
    if m.dtype == bool:
        return m.copy()
    if m.dtype.kind not in "iuf":
        rule = "> 0" if above_zero else "nonzero"
        raise EngineError(f"{where}: a mask must hold booleans or numbers ({rule} is the object), got {m.dtype}")
    if m.dtype.kind == "f" and not np.isfinite(m).all():
        raise EngineError(f"{where}: the mask holds NaN or infinite values")
    return m > 0 if above_zero else m != 0


def masks_from(mask: object, object_ids: Optional[Sequence[int]], size: Tuple[int, int],
               where: str) -> Dict[int, np.ndarray]:
    """A label map, or a binary mask, -> {obj_id: (H, W) bool} by the rules of the module docstring.

    `object_ids` names the id of a binary mask (one id), or restricts a label map to those ids.
    """
    m = as_array(mask, where, size)
    ids = None if object_ids is None else [check_object_id(o, where) for o in object_ids]
    if m.dtype == bool or (np.issubdtype(m.dtype, np.integer) and not ids and _is_0_255(m)):
        if ids is not None and len(ids) != 1:
            raise EngineError(f"{where}: a binary mask is one object: give one object id, not {len(ids)}")
        return {ids[0] if ids else 1: object_mask(m, where)}
    if not np.issubdtype(m.dtype, np.integer):
        raise EngineError(f"{where}: a mask must be a label map of integer ids or a boolean mask, got {m.dtype}")
    if m.size and int(m.min()) < 0:
        raise EngineError(f"{where}: a label map holds object ids >= 1 and 0 for 'not given', found {int(m.min())}")
    present = [int(v) for v in np.unique(m) if v > 0 and (ids is None or int(v) in ids)]
    return {i: m == i for i in present}


def known_or_nonempty(given: Dict[int, np.ndarray], known: Container[int], where: str) -> Dict[int, np.ndarray]:
    """`given` without the empty masks of objects not given before; EngineError when nothing is left.

    The one rule for empty masks (module docstring), for the session API, live streams and the CLI;
    `known` holds the ids given before (a session's `Objects`; the SAM 2 shim's own ids, named as its caller does).
    """
    kept = {o: m for o, m in given.items() if o in known or m.any()}
    if not kept:
        new = [o for o in given if o not in known]
        if len(new) == 1:
            raise EngineError(f"{where}: object {new[0]}'s mask is empty and it has no mask on another frame: "
                              "nothing to track")
        raise EngineError(f"{where}: the mask holds no object")
    return kept


def give(given: Dict[int, np.ndarray], frame_idx: int, objects: Objects, annotations: Annotations
         ) -> Dict[int, np.ndarray]:
    """Masks given on a frame into a session or stream: the rule for empty masks (`known_or_nonempty`), then
    the new objects and every mask kept; returns what was kept. The one way masks enter, for `add_new_mask`,
    `add_mask` and `LiveStream.step`: nothing changes when a mask is refused."""
    kept = known_or_nonempty(given, objects, f"frame {frame_idx}")
    objects.add(list(kept))
    for o, m in kept.items():
        annotations.add(frame_idx, o, m)
    return kept


def _is_0_255(m: np.ndarray) -> bool:
    """A 0/255 map (a grayscale binary mask as image tools save it): object 1, not object 255."""
    values = np.unique(m)
    return bool(len(values) and values[-1] == 255 and set(values.tolist()) <= {0, 255})


class Objects:
    """The object ids of one session or stream, in the order they were first given."""

    def __init__(self) -> None:
        self._ids: List[int] = []

    def add(self, ids: Sequence[int]) -> None:
        new = [i for i in ids if i not in self._ids]
        if len(self._ids) + len(new) > MAX_SESSION_OBJECTS:
            raise EngineError(f"{len(self._ids) + len(new)} objects: at most {MAX_SESSION_OBJECTS} can be "
                              "segmented at once in one session")
        self._ids.extend(new)

    def remove(self, obj_id: int) -> None:
        if obj_id not in self._ids:
            raise EngineError(f"no object {obj_id} in this session (objects: {self._ids})")
        self._ids.remove(obj_id)

    def clear(self) -> None:
        self._ids.clear()

    def ordered(self, subset: "set[int] | Sequence[int]") -> List[int]:
        """The ids of `subset` in session order."""
        return [i for i in self._ids if i in subset]

    def __contains__(self, obj_id: object) -> bool:
        return obj_id in self._ids

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._ids))

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (Objects, list)) else NotImplemented

    def __repr__(self) -> str:
        return f"Objects({self._ids})"


__all__ = ["EngineError", "Objects", "as_array", "describe_shape", "check_object_id", "is_integer", "label_dtype",
           "check_frame_index", "check_frame", "give", "masks_from", "object_mask", "MAX_SESSION_OBJECTS"]
