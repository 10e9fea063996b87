"""PromptMemory: the recent predicted frames SegGPT sees as prompts, besides the annotated frames.

As in the paper's video protocol, a frame is segmented against the user's annotated frames (kept by
the session, `vos.engine.state.Annotations`) plus a FIFO of the K most recent predictions, memorised with a
stride and a confidence gate (an unsure prediction used as a prompt spreads its errors).

Prompts are stored at model resolution (a normalised image and a label map of object ids), so memory
is bounded by K whatever the video length; with the engine's zoom on, each also keeps its frame and
frame-size labels (the crops around each object are cut from them): K frames. Object ids are stored, not colours: colours are assigned
when the prompts are used, so objects can come and go.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Deque, List, Optional

import numpy as np
import torch


@dataclass
class Prompt:
    """One prompt frame at model resolution."""

    frame_idx: int
    image: torch.Tensor  # (3, h, w) ImageNet-normalised
    labels: torch.Tensor  # (h, w) long, object ids, 0 = background
    frame: Optional[np.ndarray] = None  # (H, W, 3) uint8 RGB: kept for the zoom's crops only
    full_labels: Optional[np.ndarray] = None  # (H, W) object ids at frame size: the zoom's crops only


class PromptMemory:
    """A FIFO of recent predictions with a stride and a confidence gate (see the module docstring)."""

    def __init__(self, capacity: int = 8, stride: int = 1, confidence_gate: Optional[float] = None):
        self.capacity = capacity
        self.stride = stride
        self.confidence_gate = confidence_gate
        self.recent: Deque[Prompt] = deque(maxlen=max(capacity, 1))
        self._since_last = 0

    def __len__(self) -> int:
        return len(self.recent)

    def offer(self, prompt: Prompt, confidence: float) -> bool:
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
        """The memorised predictions, oldest first."""
        return list(self.recent)

    def remove_object(self, obj_id: int) -> None:
        """Forget an object: its pixels become background in every memorised prediction."""
        for p in self.recent:
            p.labels = torch.where(p.labels == obj_id, torch.zeros_like(p.labels), p.labels)
            if p.full_labels is not None:
                p.full_labels = np.where(p.full_labels == obj_id, 0, p.full_labels).astype(p.full_labels.dtype)

    def clear(self) -> None:
        """Forget every prediction (after a correction: they were made with the mistake)."""
        self.recent.clear()
        self._since_last = 0


__all__ = ["Prompt", "PromptMemory"]
