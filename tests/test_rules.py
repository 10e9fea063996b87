"""The engine's rule table (README, "Rules of the engine"), each rule against a stub model.

The stub copies its last prompt's mask into the query and records which frames were its prompts,
so a test sees exactly what conditioned each frame. Frames are flat images whose grey level encodes
their index, so a prompt image tells which frame it was.
"""
import numpy as np
import pytest
import torch

from seggpt import SegGPT
from seggpt.colors import IMAGENET_MEAN, IMAGENET_STD
from vos import EngineError, VideoSegmenter

H, W, N = 32, 48, 10


class CopyModel(SegGPT):
    """Predicts the last prompt's mask for every query; `calls` logs (query frames, prompt frames)."""

    def __init__(self):
        super().__init__("test-tiny")
        self.calls = []

    @staticmethod
    def _frame_index(images: torch.Tensor) -> list:
        grey = images[:, 0].mean(dim=(-1, -2)) * IMAGENET_STD[0] * 255 + IMAGENET_MEAN[0] * 255
        return [int(round(v / 20.0)) for v in grey.tolist()]

    def infer(self, images, prompt_images, prompt_masks, embedding_type="instance"):
        self.calls.append((self._frame_index(images), self._frame_index(prompt_images[0])))
        return prompt_masks[:, -1].clone()


def flat_frames():
    return np.stack([np.full((H, W, 3), 20 * t, np.uint8) for t in range(N)])


def box(x0, x1):
    m = np.zeros((H, W), bool)
    m[4:20, x0:x1] = True
    return m


def session(config):
    seg = VideoSegmenter(CopyModel().eval(), config=config)
    return seg, seg.init_state(flat_frames())


@pytest.fixture()
def seg():
    return VideoSegmenter(CopyModel().eval(), config={"memory": 0})


@pytest.fixture()
def st(seg):
    return seg.init_state(flat_frames())


def prompts_of(seg, frame_idx):
    """The prompt frames the model saw when it segmented `frame_idx` (the last call that did)."""
    return [p for q, p in seg.model.calls if frame_idx in q][-1]


def test_every_annotation_conditions_a_propagation_from_a_later_frame(seg, st):
    """The redesign's bug: masks on frame 0 (object 1) and 5 (object 2); forward from frame 5 lost object 1."""
    seg.add_new_mask(st, 0, 1, box(2, 10))
    seg.add_new_mask(st, 5, 2, box(30, 40))
    res = {r.frame_idx: r for r in seg.propagate(st, start_frame_idx=5)}
    assert sorted(res) == [5, 6, 7, 8, 9]
    for t in (6, 7):
        assert np.array_equal(res[t].labels == 1, box(2, 10)), t  # object 1 is tracked
        assert np.array_equal(res[t].labels == 2, box(30, 40)), t
        assert prompts_of(seg, t) == [0, 5]
    assert res[6].object_ids == [1, 2]


def test_objects_exist_from_their_first_mask_in_each_direction(seg, st):
    seg.add_new_mask(st, 2, 1, box(2, 10))
    seg.add_new_mask(st, 6, 2, box(30, 40))
    forward = {r.frame_idx: set(np.unique(r.labels)) - {0} for r in seg.propagate(st, start_frame_idx=0)}
    assert [forward[t] for t in range(N)] == [set()] * 2 + [{1}] * 4 + [{1, 2}] * 4
    backward = {r.frame_idx: set(np.unique(r.labels)) - {0} for r in seg.propagate(st, start_frame_idx=9, reverse=True)}
    assert [backward[t] for t in range(N)] == [{1, 2}] * 3 + [{2}] * 4 + [set()] * 3
    # absent objects are still listed (with empty masks), as SAM 2 lists every object
    assert all(ids == [1, 2] and masks.shape == (2, H, W) for _, ids, masks in seg.propagate_in_video(st))


def test_the_first_and_the_closest_annotated_frames_condition_a_frame():
    seg, st = session({"memory": 0, "max_annotated": 3})
    for a, obj in ((0, 1), (2, 2), (4, 3), (6, 4), (7, 5)):
        seg.add_new_mask(st, a, obj, box(2 * obj, 2 * obj + 4))
    list(seg.propagate(st))
    assert prompts_of(seg, 9) == [0, 6, 7]  # not 2 and 4: at most 3, the first kept
    assert prompts_of(seg, 5) == [0, 2, 4]
    list(seg.propagate(st, start_frame_idx=9, reverse=True))
    assert prompts_of(seg, 1) == [7, 4, 2]  # backwards the first is the last frame


def test_recent_predictions_follow_the_annotated_prompts():
    seg, st = session({"memory": 2})
    seg.add_new_mask(st, 0, 1, box(2, 10))
    list(seg.propagate(st))
    assert prompts_of(seg, 4) == [0, 2, 3]


def test_a_correction_replaces_older_prompts_of_that_object_and_the_recent_predictions():
    seg, st = session({"memory": 3})
    seg.add_new_mask(st, 0, 1, box(2, 10))
    seg.add_new_mask(st, 4, 1, box(20, 30))  # object 1 again: a correction
    res = {r.frame_idx: r for r in seg.propagate(st)}
    assert prompts_of(seg, 3) == [0, 1, 2]
    assert prompts_of(seg, 5) == [4]  # frame 0 retired, the predictions of frames 1..3 forgotten
    assert prompts_of(seg, 6) == [4, 5]
    assert np.array_equal(res[7].labels == 1, box(20, 30))
    # backwards, the correction at frame 0 retires frame 4 for frames <= 0 only
    list(seg.propagate(st, start_frame_idx=9, reverse=True))
    assert prompts_of(seg, 2) == [4, 3]


def test_an_annotation_with_only_a_new_object_keeps_the_others():
    """YouTube-VOS: frame 5 gives only object 2; object 1 is predicted there, not made background."""
    seg, st = session({"memory": 1})
    seg.add_new_mask(st, 0, 1, box(2, 10))
    seg.add_mask(st, 5, np.where(box(30, 40), 2, 0))
    res = {r.frame_idx: r for r in seg.propagate(st)}
    assert np.array_equal(res[5].labels == 1, box(2, 10)) and np.array_equal(res[5].labels == 2, box(30, 40))
    assert np.array_equal(res[8].labels == 1, box(2, 10))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1", None])
def test_object_ids_are_positive_integers(seg, bad, st):
    with pytest.raises(EngineError, match="positive integers"):
        seg.add_new_mask(st, 0, bad, box(2, 10))


def test_any_positive_integer_id_in_the_library(seg, st):
    seg.add_new_mask(st, 0, 2 ** 40, box(2, 10))
    seg.add_new_mask(st, 0, np.int64(300), box(20, 30))
    res = list(seg.propagate(st, max_frames=3))
    assert res[2].object_ids == [2 ** 40, 300]
    assert np.array_equal(res[2].masks[0], box(2, 10)) and np.array_equal(res[2].masks[1], box(20, 30))


@pytest.mark.parametrize("mask", [box(2, 10), box(2, 10).astype(np.uint8) * 255])
def test_a_binary_mask_is_object_1_everywhere(seg, mask, st):
    assert seg.add_mask(st, 0, mask) == [1]
    r = seg.stream().step(flat_frames()[0], mask)
    assert r.object_ids == [1] and np.array_equal(r.labels == 1, box(2, 10))
    assert seg.step(flat_frames()[0], mask).object_ids == [1]


def test_a_label_map_0_asserts_nothing_about_other_objects(seg, st):
    seg.add_mask(st, 0, np.where(box(2, 10), 1, 0) + np.where(box(20, 30), 2, 0))
    seg.add_mask(st, 3, np.where(box(30, 40), 3, 0))  # 0 here does not erase objects 1 and 2
    res = {r.frame_idx: r for r in seg.propagate(st)}
    assert set(np.unique(res[3].labels)) == {0, 1, 2, 3}


def test_streams_on_one_model_are_independent(seg):
    frames = flat_frames()
    a, b = seg.stream(), seg.stream()
    a.step(frames[0], box(2, 10))
    b.step(frames[0], np.where(box(30, 40), 7, 0))
    ra, rb = a.step(frames[1]), b.step(frames[1])
    assert ra.object_ids == [1] and rb.object_ids == [7]
    assert np.array_equal(ra.labels == 1, box(2, 10)) and np.array_equal(rb.labels == 7, box(30, 40))
    a.remove_object(1)
    assert a.step(frames[2]).object_ids == [] and b.step(frames[2]).object_ids == [7]


def test_stream_refuses_frames_of_another_size_and_empty_masks(seg):
    s = seg.stream()
    s.step(flat_frames()[0], box(2, 10))
    for args, match in [((np.zeros((16, 16, 3), np.uint8),), "the stream's frames are 48x32"),
                        ((flat_frames()[1], np.zeros((H, W), np.uint8)), "holds no object"),
                        ((np.zeros((0, 0, 3), np.uint8),), "uint8 RGB")]:
        with pytest.raises(EngineError, match=match):
            s.step(*args)


def test_one_mask_converter_for_every_entry(seg, st):
    """add_new_mask, add_mask and a stream take a mask through one converter (vos.engine.objects.object_mask):
    the same messages, torch tensors too, and a refused mask changes nothing (a stream does not advance)."""
    from seggpt.errors import is_integer
    from vos.engine import objects
    assert objects.is_integer is is_integer  # the one integer test, under its documented name
    nan = box(2, 10).astype(np.float32)
    nan[0, 0] = np.nan
    for bad, words in [(nan, "NaN or infinite"), (np.zeros((10, 10), bool), "the mask is 10x10, the frame 48x32"),
                       (None, "no mask given"), ([[1], [1, 2]], "not an array"),
                       (np.full((H, W), "x"), "booleans or numbers")]:
        with pytest.raises(EngineError, match=f"^object 1 on frame 0: .*{words}"):
            seg.add_new_mask(st, 0, 1, bad)
    with pytest.raises(EngineError, match="^frame 0: the mask is 10x10, the frame 48x32"):
        seg.add_mask(st, 0, np.zeros((10, 10), np.int64))
    seg.add_new_mask(st, 0, 1, torch.from_numpy(box(2, 10)).float())  # nonzero is the object
    assert st.object_ids == [1] and np.array_equal(st.annotations[0].given[1], box(2, 10))
    with pytest.raises(EngineError, match="max_frames must be a positive integer, got 3.0"):
        seg.propagate(st, max_frames=3.0)
    s = seg.stream()
    with pytest.raises(EngineError, match="at most 255"):
        s.step(flat_frames()[0], np.arange(H * W).reshape(H, W) % 300)
    assert s.frame_idx == 0 and len(s.objects) == 0


def test_iterator_sources_keep_the_annotated_frames_they_pass(seg):
    """A read-once source: the annotated frame is kept when it is read, and a second
    propagation over the same annotations is refused with one line instead of silently dropping it."""
    frames = flat_frames()
    st = seg.init_state(iter(list(frames)))
    seg.add_new_mask(st, 0, 1, box(2, 10))
    seg.add_new_mask(st, 4, 2, box(30, 40))
    res = {r.frame_idx: r for r in seg.propagate(st, start_frame_idx=0, max_frames=6)}
    assert np.array_equal(res[5].labels == 1, box(2, 10)) and np.array_equal(res[5].labels == 2, box(30, 40))
    assert st.annotations[0].frame is not None and st.annotations[4].frame is not None
    seg.add_new_mask(st, 8, 3, box(12, 16))
    with pytest.raises(EngineError, match="iterator"):
        list(seg.propagate(st, start_frame_idx=9))


def test_an_empty_mask_gives_no_new_object_but_marks_a_known_one_absent(seg, st):
    """An empty mask was accepted by add_new_mask and refused by the CLI, add_mask and step().
    One rule now: refused for an object not given before (nothing to track), taken for a known one."""
    empty = np.zeros((H, W), bool)
    with pytest.raises(EngineError, match="object 1's mask is empty and it has no mask on another frame"):
        seg.add_new_mask(st, 0, 1, empty)
    with pytest.raises(EngineError, match="the mask holds no object"):
        seg.add_mask(st, 0, np.zeros((H, W), np.int32))
    assert list(st.objects) == []
    seg.add_new_mask(st, 0, 1, box(2, 10))
    seg.add_new_mask(st, 4, 1, empty)  # the object is out of view on frame 4: a correction
    res = {r.frame_idx: r for r in seg.propagate(st)}
    assert (res[3].labels == 1).any() and not (res[4].labels == 1).any() and not (res[6].labels == 1).any()
    live = seg.stream()
    with pytest.raises(EngineError, match="object 1's mask is empty"):
        live.step(flat_frames()[0], mask=empty)
    live.step(flat_frames()[0], mask=box(2, 10))
    assert not (live.step(flat_frames()[1], mask=empty).labels == 1).any()  # known object: absent from here


def test_the_objects_and_masks_cannot_change_while_a_propagation_runs():
    """Adversarial: remove_object during a propagation still showed the object on the next frame (finished one
    batch behind), and add_new_mask of a later frame made the pass fail with 'never read' on an array source.
    A pass keeps the objects it started with: every change is refused at the call, from `propagate` until the
    generator ends, is closed or is dropped, and the session is left as it was."""
    seg, st = session({"memory": 0, "batch_frames": 2})
    seg.add_new_mask(st, 0, 1, box(2, 10))
    seg.add_new_mask(st, 0, 2, box(30, 40))
    changes = [lambda: seg.remove_object(st, 2), lambda: seg.add_new_mask(st, 3, 3, box(12, 16)),
               lambda: seg.add_mask(st, 3, np.where(box(12, 16), 3, 0)), lambda: seg.reset_state(st)]
    seen = []
    for r in seg.propagate(st):
        seen.append((r.frame_idx, sorted(set(np.unique(r.labels)) - {0}), r.masks.shape[0]))
        if r.frame_idx == 4:
            for change in changes:
                with pytest.raises(EngineError, match=r"a propagation of this session is in progress.*close\(\) it"):
                    change()
    assert seen == [(t, [1, 2], 2) for t in range(N)]  # every frame: the objects it started with
    assert st.object_ids == [1, 2] and list(st.annotations) == [0]
    run = seg.propagate(st)  # refused from the call on, before the first frame (it read the masks already)
    with pytest.raises(EngineError, match="remove_object\\(2\\): a propagation"):
        seg.remove_object(st, 2)
    next(run)
    run.close()
    seg.add_new_mask(st, 3, 3, box(12, 16))  # closed: the next pass has the new object on its every frame
    assert all(r.object_ids == [1, 2, 3] for r in seg.propagate(st, start_frame_idx=3))
    next(seg.propagate(st))  # a pass dropped unfinished ends with it
    seg.remove_object(st, 2)
    assert st.object_ids == [1, 3]
