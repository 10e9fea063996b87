"""PromptMemory: which prompts each frame sees."""
import torch

from vos.memory import Prompt, PromptMemory


def _p(i, objects=(1,)):
    labels = torch.zeros(4, 4, dtype=torch.long)
    for o in objects:
        labels[0, o % 4] = o
    return Prompt(i, torch.zeros(3, 4, 4), labels, objects=set(objects))


def frames(mem):
    return [p.frame_idx for p in mem.prompts()]


def test_fifo_keeps_the_k_most_recent_after_the_permanent_prompts():
    mem = PromptMemory(capacity=3)
    mem.add_user_prompt(_p(0))
    for i in range(1, 7):
        assert mem.offer_prediction(_p(i), confidence=1.0)
    assert frames(mem) == [0, 4, 5, 6]  # the user's mask first: it is prompt 0, read at the decoder seam


def test_stride_memorises_every_nth_prediction():
    mem = PromptMemory(capacity=8, stride=3)
    mem.add_user_prompt(_p(0))
    taken = [i for i in range(1, 10) if mem.offer_prediction(_p(i), 1.0)]
    assert taken == [3, 6, 9]
    assert frames(mem) == [0, 3, 6, 9]


def test_confidence_gate_skips_unsure_frames():
    mem = PromptMemory(capacity=8, confidence_gate=0.5)
    mem.add_user_prompt(_p(0))
    assert mem.offer_prediction(_p(1), 0.9)
    assert not mem.offer_prediction(_p(2), 0.2)
    assert mem.offer_prediction(_p(3), 0.5)
    assert frames(mem) == [0, 1, 3]


def test_zero_capacity_keeps_only_user_prompts():
    mem = PromptMemory(capacity=0)
    mem.add_user_prompt(_p(0))
    assert not mem.offer_prediction(_p(1), 1.0)
    assert frames(mem) == [0]


def test_correction_retires_older_prompts_of_that_object_and_the_fifo():
    mem = PromptMemory(capacity=4)
    mem.add_user_prompt(_p(0, (1, 2)))
    mem.add_user_prompt(_p(3, (3,)))  # a later object, other prompts untouched
    for i in (4, 5):
        mem.offer_prediction(_p(i, (1, 2, 3)), 1.0)
    assert frames(mem) == [0, 3, 4, 5]
    mem.add_user_prompt(_p(6, (1, 2, 3)), corrected={1})
    assert frames(mem) == [3, 6]  # frame 0 held object 1: retired; predictions made with the mistake: gone
    mem.offer_prediction(_p(7, (1, 2, 3)), 1.0)
    assert frames(mem) == [3, 6, 7]


def test_remove_object_clears_its_pixels_everywhere():
    mem = PromptMemory(capacity=2)
    mem.add_user_prompt(_p(0, (1, 2)))
    mem.add_user_prompt(_p(1, (2,)))
    mem.offer_prediction(_p(2, (1, 2)), 1.0)
    mem.remove_object(2)
    assert frames(mem) == [0, 2]  # frame 1 held only object 2
    assert all((p.labels != 2).all() for p in mem.prompts())
    assert all(2 not in p.objects for p in mem.prompts())
