"""PromptMemory (recent predictions) and Annotations.conditioning (which annotated frames condition a frame).

The permanent user prompts moved from the memory to the session's annotations (vos/engine/state.py): these
tests were changed to the redesign's rule table, which the model-level tests in test_rules.py check too.
"""
import numpy as np
import torch

from vos.engine.memory import Prompt, PromptMemory
from vos.engine.state import Annotations


def _p(i, objects=(1,)):
    labels = torch.zeros(4, 4, dtype=torch.long)
    for o in objects:
        labels[0, o % 4] = o
    return Prompt(i, torch.zeros(3, 4, 4), labels)


def frames(mem):
    return [p.frame_idx for p in mem.prompts()]


def test_fifo_keeps_the_k_most_recent():
    mem = PromptMemory(capacity=3)
    for i in range(1, 7):
        assert mem.offer(_p(i), confidence=1.0)
    assert frames(mem) == [4, 5, 6]


def test_stride_memorises_every_nth_prediction():
    mem = PromptMemory(capacity=8, stride=3)
    taken = [i for i in range(1, 10) if mem.offer(_p(i), 1.0)]
    assert taken == [3, 6, 9]
    assert frames(mem) == [3, 6, 9]


def test_confidence_gate_skips_unsure_frames():
    mem = PromptMemory(capacity=8, confidence_gate=0.5)
    assert mem.offer(_p(1), 0.9)
    assert not mem.offer(_p(2), 0.2)
    assert mem.offer(_p(3), 0.5)
    assert frames(mem) == [1, 3]


def test_zero_capacity_keeps_nothing():
    mem = PromptMemory(capacity=0)
    assert not mem.offer(_p(1), 1.0)
    assert frames(mem) == []


def test_remove_object_clears_its_pixels_everywhere():
    mem = PromptMemory(capacity=2)
    mem.offer(_p(2, (1, 2)), 1.0)
    mem.offer(_p(3, (2,)), 1.0)
    mem.remove_object(2)
    assert frames(mem) == [2, 3]
    assert all((p.labels != 2).all() for p in mem.prompts())
    mem.clear()
    assert frames(mem) == []


def _annotations(spec):
    ann = Annotations()
    for frame_idx, objects in spec:
        for o in objects:
            ann.add(frame_idx, o, np.ones((2, 2), bool))
    return ann


def test_conditioning_is_the_annotated_frames_on_the_side_of_t():
    ann = _annotations([(0, (1, 2)), (3, (3,)), (8, (4,))])
    assert ann.conditioning(5, reverse=False, limit=None) == [0, 3]
    assert ann.conditioning(3, reverse=False, limit=None) == [0, 3]
    assert ann.conditioning(3, reverse=False, limit=None, include_t=False) == [0]
    assert ann.conditioning(5, reverse=True, limit=None) == [8]
    assert ann.conditioning(0, reverse=True, limit=None) == [8, 3, 0]
    assert ann.objects_at(5, reverse=False) == {1, 2, 3} and ann.objects_at(5, reverse=True) == {4}


def test_a_correction_retires_older_frames_holding_that_object_in_its_direction():
    ann = _annotations([(0, (1, 2)), (3, (3,)), (6, (1,))])  # frame 6 gives object 1 again
    assert ann.corrects(6, reverse=False) == {1} and ann.corrects(3, reverse=False) == set()
    assert ann.conditioning(9, reverse=False, limit=None) == [6]  # 0 and 3 held object 1 (it existed there)
    assert ann.conditioning(5, reverse=False, limit=None) == [0, 3]  # before the correction: unchanged
    assert ann.conditioning(2, reverse=True, limit=None) == [6, 3]  # backwards nothing is corrected at 3..6
    assert ann.conditioning(0, reverse=True, limit=None) == [0]  # frame 0 gives object 1 again, backwards


def test_limit_keeps_the_first_and_the_closest():
    ann = _annotations([(a, (a + 1,)) for a in (0, 2, 4, 6, 8)])
    assert ann.conditioning(9, reverse=False, limit=3) == [0, 6, 8]
    assert ann.conditioning(9, reverse=False, limit=1) == [0]
    assert ann.conditioning(0, reverse=True, limit=2) == [8, 0]
