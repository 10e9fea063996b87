"""VideoSegmenter on small random-weight models: sources, ids, objects added/corrected, reverse, batching."""
import gc
import threading
import weakref

import numpy as np
import pytest
import torch

from seggpt.io import write_mp4
from seggpt.predictor import SegGPTPredictor
from vos import EngineConfig, EngineError, VideoSegmenter
from vos.engine.config import ConfigError
from vos.data.synthetic import make_clip
from helpers import segment, start, write_frames


@pytest.fixture(scope="module")
def frames():
    return make_clip(3, 10, size=(48, 64), num_objects=2)[0]


@pytest.fixture(scope="module")
def labels():
    return make_clip(3, 10, size=(48, 64), num_objects=2)[1].astype(np.int64)  # the same seed: the same clip


def _ids_of(labels):
    return sorted(int(v) for v in np.unique(labels) if v)


def test_every_source_gives_the_same_result(tiny_model, frames, labels, tmp_path):
    seg = VideoSegmenter(tiny_model, config={"memory": 2})
    _, from_array = segment(seg, frames, 0, labels[0])
    _, from_iter = segment(seg, iter(list(frames)), 0, labels[0])
    _, from_folder = segment(seg, write_frames(tmp_path / "frames", frames), 0, labels[0])
    assert [r.frame_idx for r in from_array] == list(range(10))
    for a, b, c in zip(from_array, from_iter, from_folder):
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.labels, c.labels)
    # an mp4 written with PyAV decodes lossy: same number of frames and sizes, ids from the mask
    write_mp4(tmp_path / "clip.mp4", frames, fps=10)
    st, from_mp4 = segment(seg, tmp_path / "clip.mp4", 0, labels[0])
    assert st.fps == pytest.approx(10)
    assert len(from_mp4) == 10 and from_mp4[3].labels.shape == (48, 64)


def test_caller_ids_are_kept(tiny_model, frames, labels):
    relabelled = np.where(labels[0] == 1, 7, np.where(labels[0] == 2, 42, 0))
    seg = VideoSegmenter(tiny_model, config={"memory": 2})
    st = start(seg, frames, 0, relabelled)
    for idx, ids, masks in seg.propagate_in_video(st):
        assert ids == [7, 42]
        assert masks.shape == (2, 48, 64) and masks.dtype == bool
    res = list(seg.propagate(st))
    assert set(_ids_of(np.stack([r.labels for r in res]))) <= {7, 42}
    assert np.array_equal(res[0].labels, relabelled)  # the annotated frame returns the user's mask


def test_object_added_mid_video(tiny_model, frames, labels):
    seg = VideoSegmenter(tiny_model, config={"memory": 2})
    st = start(seg, frames, 0, np.where(labels[0] == 1, 1, 0))
    later = np.where(labels[4] == 2, 2, 0)  # YouTube-VOS style: only the new object, 0 = not given
    seg.add_mask(st, 4, later)
    res = {r.frame_idx: r for r in seg.propagate(st)}
    for i in range(4):
        assert 2 not in _ids_of(res[i].labels)
        assert res[i].object_ids == [1, 2]
    assert np.array_equal(res[4].labels == 2, later == 2)
    # object 1 was predicted on frame 4, not erased by the later annotation
    assert res[4].confidence[later == 2].min() == 1.0


def test_correction_replaces_the_prompt_from_that_frame_on(tiny_model, frames, labels):
    seg = VideoSegmenter(tiny_model, config={"memory": 3})
    stream = seg.stream()
    first = np.where(labels[0] == 1, 1, 0)
    stream.step(frames[0], first)
    for f in frames[1:4]:
        stream.step(f)
    mem = stream._tracker.memory
    assert [p.frame_idx for p in mem.prompts()] == [1, 2, 3]
    assert stream.annotations.conditioning(4, reverse=False, limit=None) == [0]
    fixed = np.where(labels[4] == 1, 1, 0)
    res = stream.step(frames[4], fixed)
    assert np.array_equal(res.labels == 1, fixed == 1)
    # the old prompt of object 1 is retired, the recent predictions (made with the mistake) forgotten
    assert [p.frame_idx for p in mem.prompts()] == []
    assert stream.annotations.conditioning(5, reverse=False, limit=None) == [4]
    stream.step(frames[5])
    assert [p.frame_idx for p in mem.prompts()] == [5]


def test_reverse_propagation_from_a_later_mask(tiny_model, frames, labels):
    seg = VideoSegmenter(tiny_model, config={"memory": 2})
    st = start(seg, frames, 6, labels[6])
    back = list(seg.propagate(st, reverse=True))
    assert [r.frame_idx for r in back] == [6, 5, 4, 3, 2, 1, 0]
    fwd = list(seg.propagate(st))
    assert [r.frame_idx for r in fwd] == [6, 7, 8, 9]
    # reverse over a reversed clip is forward over the clip
    _, mirrored = segment(seg, frames[::-1].copy(), 3, labels[6])
    for a, b in zip(back, mirrored):
        assert np.array_equal(a.labels, b.labels)
    assert [r.frame_idx for r in seg.propagate(st, reverse=True, max_frames=3)] == [6, 5, 4]


@pytest.mark.parametrize("objects", ["joint", "separate"])
def test_batching_equals_frame_by_frame_when_memory_cannot_differ(tiny_model, frames, labels, objects):
    a, b = (segment(VideoSegmenter(tiny_model, config={"memory": 0, "batch_frames": n, "objects": objects}), frames, 0,
                    labels[0])[1] for n in (1, 4))
    for x, y in zip(a, b):
        assert (x.labels != y.labels).mean() < 1e-3
        assert np.allclose(x.confidence, y.confidence, atol=1e-3)


def test_step_api_streams_and_resets(tiny_model, frames, labels):
    seg = VideoSegmenter(tiny_model, config={"memory": 2})
    r0 = seg.step(frames[0], labels[0] == 1, object_ids=[5])
    assert r0.object_ids == [5] and np.array_equal(r0.masks[0], labels[0] == 1)
    r1 = seg.step(frames[1])
    assert r1.frame_idx == 1 and r1.labels.shape == (48, 64)
    assert 0.0 <= r1.confidence.min() and r1.confidence.max() <= 1.0
    seg.reset()
    assert seg.step(frames[0]).object_ids == []  # nothing to track yet: an empty result, no model call


@pytest.mark.parametrize("batch_frames", [1, 3])
def test_pipelined_propagation_equals_the_streaming_core(tiny_model, frames, labels, batch_frames):
    """propagate finishes each batch on a worker thread one batch late; results must not change."""
    threads_before = torch.get_num_threads()
    session = VideoSegmenter(tiny_model, config={"memory": 2, "batch_frames": batch_frames})
    _, piped = segment(session, frames, 0, labels[0])
    assert torch.get_num_threads() == threads_before  # the worker's one-thread setting stays on the worker
    assert not [t for t in threading.enumerate() if t.name.startswith("vos-finish")]
    live = VideoSegmenter(tiny_model, config={"memory": 2, "batch_frames": 1})
    streamed = [live.step(frames[0], labels[0])] + [live.step(f) for f in frames[1:]]
    assert [r.frame_idx for r in piped] == list(range(len(frames)))
    for a, b in zip(piped, streamed):
        if batch_frames == 1:
            assert np.array_equal(a.labels, b.labels)
            assert np.array_equal(a.confidence, b.confidence)
        else:  # frames of one batch share a memory state: equal only up to the prompts they saw
            assert a.labels.shape == b.labels.shape
    # a consumer that stops early leaves no worker behind
    gen = session.propagate(start(session, frames, 0, labels[0]))
    next(gen), next(gen)
    gen.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("vos-finish")]


def test_bf16_engine_follows_fp32_and_does_not_leak_into_the_next_engine(tiny_model, frames, labels):
    """bf16 autocast (the CUDA default) through the whole engine, here on the CPU."""
    fp32, bf16 = (segment(VideoSegmenter(tiny_model, config={"memory": 2}, device="cpu", dtype=dtype), frames, 0,
                          labels[0])[1] for dtype in ("fp32", "bf16"))
    assert not hasattr(tiny_model, "autocast_dtype")  # the dtype is the engine's (its predictor's), not the model's
    agree = np.mean([(a.labels == b.labels).mean() for a, b in zip(fp32, bf16)])
    assert 0.97 < agree  # bf16 rounding flips only near-tie pixels
    again_seg = VideoSegmenter(tiny_model, config={"memory": 2}, device="cpu")
    _, again = segment(again_seg, frames, 0, labels[0])
    assert again_seg.predictor.dtype is None
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(fp32, again))


def test_joint_colours_distinct_or_palette(tiny_model, frames, labels):
    """Two objects are painted in other colours by the two settings; one object is white in both."""
    runs = {}
    for colors in ("distinct", "palette"):
        seg = VideoSegmenter(tiny_model, config={"memory": 2, "colors": colors})
        _, runs[colors] = segment(seg, frames, 0, labels[0])
        _, runs[colors + "-one"] = segment(seg, frames, 0, (labels[0] == 1).astype(np.int64))
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(runs["distinct-one"], runs["palette-one"]))
    assert any(not np.array_equal(a.labels, b.labels) for a, b in zip(runs["distinct"], runs["palette"]))
    with pytest.raises(ConfigError):
        EngineConfig(colors="rainbow")


def test_separate_mode_runs_each_object(tiny_model, frames, labels):
    seg = VideoSegmenter(tiny_model, config={"memory": 1, "objects": "separate"})
    _, res = segment(seg, frames, 0, labels[0])
    assert len(res) == 10 and set(_ids_of(np.stack([r.labels for r in res]))) <= {1, 2}


def test_bad_use_gives_clear_errors(tiny_model, frames, labels):
    seg = VideoSegmenter(tiny_model)
    st = seg.init_state(frames)
    with pytest.raises(EngineError, match="add a mask first"):
        list(seg.propagate(st))
    with pytest.raises(EngineError, match="frame index 10 is out of range"):
        seg.add_mask(st, 10, labels[0])
    with pytest.raises(EngineError, match="the mask is 10x10, the frame 64x48"):
        seg.add_mask(st, 0, np.zeros((10, 10), np.int64))
    with pytest.raises(EngineError, match="no object 3"):
        seg.remove_object(st, 3)
    with pytest.raises(EngineError, match="at most 255"):
        seg.add_mask(st, 0, np.arange(48 * 64).reshape(48, 64) % 300)
    with pytest.raises(ConfigError, match="unknown setting .memroy."):
        EngineConfig.load({"memroy": 3})
    with pytest.raises(ConfigError, match="objects must be"):
        EngineConfig.load({"objects": "both"})


def test_remove_and_reset(tiny_model, frames, labels):
    seg = VideoSegmenter(tiny_model, config={"memory": 1})
    st = start(seg, frames, 0, labels[0])
    seg.remove_object(st, 2)
    res = list(seg.propagate(st, max_frames=3))
    assert all(r.object_ids == [1] for r in res) and all(2 not in _ids_of(r.labels) for r in res)
    seg.reset_state(st)
    assert st.object_ids == [] and len(st.annotations) == 0


def test_nearest_resize_decides_at_model_size(tiny_model, frames, labels):
    a, b = (segment(VideoSegmenter(tiny_model, config={"memory": 1, "resize": resize}), frames, 0, labels[0],
                    max_frames=3)[1] for resize in ("smooth", "nearest"))
    h, w = tiny_model.config.image_size
    # nearest: every output pixel repeats a model-size decision, so the map has at most h*w distinct cells
    for r in b:
        small = torch.nn.functional.interpolate(torch.from_numpy(r.labels)[None, None].float(), size=(h, w),
                                                mode="nearest-exact")[0, 0]
        back = torch.nn.functional.interpolate(small[None, None], size=r.labels.shape, mode="nearest-exact")[0, 0]
        assert np.array_equal(back.numpy().astype(np.int32), r.labels)
    assert np.mean([(x.labels == y.labels).mean() for x, y in zip(a, b)]) > 0.8


def test_adaptation_learns_the_session_and_leaves_the_shared_model_alone(tiny_model, frames, labels):
    """engine.adapt: a copy is fine-tuned on the annotated frames, kept by the engine for the session (not in
    its state, and not past it); a correction goes on from it; the shared model's weights stay bit-identical;
    the same seed gives the same labels."""
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    cfg = {"memory": 1, "adapt": {"steps": 2, "batch_size": 2, "lr": 1e-3}}
    seg = VideoSegmenter(tiny_model, config=cfg)
    st, res = segment(seg, frames, 0, labels[0], max_frames=4)
    assert seg.adapted(st) is not None and seg.adapted(st).model is not tiny_model
    assert len(seg.adapted(st).model.adapt_history) == 1
    assert all(torch.equal(v, before[k]) for k, v in tiny_model.state_dict().items())
    assert seg.adapt(st) == 0.0  # nothing new to learn
    seg.add_mask(st, 5, labels[5])  # a correction: adaptation goes on from the adapted copy
    list(seg.propagate(st, max_frames=2))
    assert len(seg.adapted(st).model.adapt_history) == 2
    assert not any(isinstance(v, SegGPTPredictor) for v in vars(st).values())  # the state holds data only
    gone = weakref.ref(st)
    del st
    gc.collect()
    assert gone() is None and not seg._adapted  # the engine does not keep a session alive, nor its model after it
    _, again = segment(VideoSegmenter(tiny_model, config=cfg), frames, 0, labels[0], max_frames=4)
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(res, again))
    _, plain = segment(VideoSegmenter(tiny_model, config={"memory": 1}), frames, 0, labels[0], max_frames=4)
    assert any(not np.array_equal(a.labels, b.labels) for a, b in zip(res, plain))


def test_refinement_follows_the_frame(tiny_model, frames, labels):
    """engine.refine: labels from the guided-filtered scores, at frame size; the annotated frame stays the mask."""
    _, refined = segment(VideoSegmenter(tiny_model, config={"memory": 1, "refine": {"enabled": True}}), frames, 0,
                      labels[0], max_frames=4)
    _, smooth = segment(VideoSegmenter(tiny_model, config={"memory": 1}), frames, 0, labels[0], max_frames=4)
    assert np.array_equal(refined[0].labels, labels[0])
    assert all(r.labels.shape == (48, 64) and set(np.unique(r.labels)) <= {0, 1, 2} for r in refined)
    assert any(not np.array_equal(a.labels, b.labels) for a, b in zip(refined[1:], smooth[1:]))


def test_another_input_size_runs_the_same_weights_and_leaves_the_shared_model_alone(tiny_model, frames, labels):
    """engine.image_size: the predictor (and adaptation) run the model's own weights at that size; the
    given model keeps its size and its weights; a size the patch does not divide is one EngineError."""
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    cfg = {"memory": 1, "image_size": 96, "adapt": {"steps": 1, "batch_size": 2}}
    seg = VideoSegmenter(tiny_model, config=cfg)
    assert seg.predictor.image_size == (96, 96) and tiny_model.config.image_size == (64, 64)
    assert seg.model.pos_embed is tiny_model.pos_embed  # shared, not copied
    st, res = segment(seg, frames, 0, labels[0], max_frames=4)
    assert seg.adapted(st).model.config.image_size == (96, 96)
    assert all(r.labels.shape == (48, 64) for r in res) and np.array_equal(res[0].labels, labels[0])
    assert all(torch.equal(v, before[k]) for k, v in tiny_model.state_dict().items())
    _, own = segment(VideoSegmenter(tiny_model, config={**cfg, "image_size": None}), frames, 0, labels[0], max_frames=4)
    assert any(not np.array_equal(a.labels, b.labels) for a, b in zip(res[1:], own[1:]))
    with pytest.raises(EngineError, match=r"^engine.image_size: 100 is not a multiple of this model's patch size 8$"):
        VideoSegmenter(tiny_model, config={"image_size": 100})
    with pytest.raises(ConfigError, match="image_size"):
        EngineConfig(image_size=4)


def test_progress_and_cancel_reach_adaptation_and_the_frames(tiny_model, frames, labels):
    """propagate(progress=, cancel=): every adaptation step reported; a cancel during adaptation yields no frame
    and keeps nothing learnt; a cancel during the frames ends the pass after the frame just yielded."""
    seg = VideoSegmenter(tiny_model, config={"memory": 1, "batch_frames": 2, "adapt": {"steps": 6, "batch_size": 1}})
    st = start(seg, frames, 0, labels[0])
    cancel = threading.Event()

    def stop_at_three(p):
        if p.step == 3:
            cancel.set()

    assert list(seg.propagate(st, progress=stop_at_three, cancel=cancel)) == []
    assert seg.adapted(st) is None
    st.check_no_pass("a new mask")  # the empty pass holds nothing
    cancel.clear()
    steps = []
    run = seg.propagate(st, progress=lambda p: steps.append(p.step), cancel=cancel)
    assert steps == [1, 2, 3, 4, 5, 6] and seg.adapted(st) is not None
    got = []
    for r in run:
        got.append(r.frame_idx)
        if len(got) == 3:
            cancel.set()
    assert got == [0, 1, 2]
    assert len(list(seg.propagate(st, max_frames=4))) == 4  # nothing left behind: the next pass runs


def test_remove_mask_takes_one_mask_back(tiny_model, frames, labels):
    seg = VideoSegmenter(tiny_model, config={"memory": 1})
    st = start(seg, frames, 0, labels[0])
    seg.add_new_mask(st, 5, 1, labels[5] == 1)
    seg.remove_mask(st, 5, 1)
    assert 5 not in st.annotations and 1 in st.objects  # object 1 still has its mask on frame 0
    seg.remove_mask(st, 5, 1)  # nothing there: nothing happens
    seg.remove_mask(st, 0, 1)
    assert 1 not in st.objects and 2 in st.objects and st.annotations.given(0) == {2}
    with pytest.raises(EngineError):
        seg.remove_mask(st, 99, 1)
