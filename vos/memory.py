"""PromptMemory: which frames SegGPT sees as prompts for the next frame.

Two kinds of prompts, as in the paper's VOS protocol:
* permanent prompts: the user's masks (the first-frame mask and any mask given later), kept for the
  whole run, except that a correction of an object retires the older prompts holding that object;
* a FIFO of the K most recent predicted frames, with a stride and a confidence gate.

Prompts are stored at model resolution (a normalised image tensor and a label map of object ids), so
memory is bounded by K + the number of user masks whatever the video length. Object ids are stored,
not colours: colours are assigned when the prompts are used, so objects can come and go.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Deque, List, Optional, Set

import torch


@dataclass
class Prompt:
    """One prompt frame at model resolution."""

    frame_idx: int
    image: torch.Tensor  # (3, h, w) ImageNet-normalised
    labels: torch.Tensor  # (h, w) long, object ids, 0 = background
    permanent: bool = False
    objects: Set[int] = field(default_factory=set)  # ids present (annotated) in this prompt


class PromptMemory:
    """Permanent user prompts + a FIFO of recent predictions (see the module docstring)."""

    def __init__(self, capacity: int = 8, stride: int = 1, confidence_gate: Optional[float] = None):
        self.capacity = capacity
        self.stride = stride
        self.confidence_gate = confidence_gate
        self.permanent: List[Prompt] = []
        self.recent: Deque[Prompt] = deque(maxlen=capacity if capacity > 0 else 1)
        self._since_last = 0

    def __len__(self) -> int:
        return len(self.permanent) + len(self.recent)

    def add_user_prompt(self, prompt: Prompt, corrected: Set[int] = frozenset()) -> None:
        """Store a user mask as a permanent prompt.

        `corrected` are objects this mask redefines: older permanent prompts that hold any of them are
        retired (they would keep teaching the old, wrong shape), and the recent predictions, made with
        that mistake, are forgotten. The new prompt holds every object (the caller merges the
        prediction for the others), so no object loses its anchor.
        """
        prompt.permanent = True
        if corrected:
            self.permanent = [p for p in self.permanent if not (p.objects & set(corrected))]
            self.recent.clear()
            self._since_last = 0
        self.permanent.append(prompt)

    def offer_prediction(self, prompt: Prompt, confidence: float) -> bool:
        """Memorise a predicted frame if the stride and the confidence gate allow; return whether it was."""
        if self.capacity <= 0:
            return False
        self._since_last += 1
        if self._since_last < self.stride:
            return False
        if self.confidence_gate is not None and confidence < self.confidence_gate:
            return False
        self._since_last = 0
        self.recent.append(prompt)
        return True

    def prompts(self) -> List[Prompt]:
        """All prompts for the next frame: permanent first (prompt 0 is read at the decoder seam), then recent."""
        return list(self.permanent) + list(self.recent)

    def remove_object(self, obj_id: int) -> None:
        """Forget an object: its pixels become background in every stored prompt."""
        for p in self.prompts():
            p.labels = torch.where(p.labels == obj_id, torch.zeros_like(p.labels), p.labels)
            p.objects.discard(obj_id)
        self.permanent = [p for p in self.permanent if p.objects or not p.permanent]

    def clear_recent(self) -> None:
        self.recent.clear()
        self._since_last = 0

    def clear(self) -> None:
        self.permanent.clear()
        self.clear_recent()


__all__ = ["Prompt", "PromptMemory"]
