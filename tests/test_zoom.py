"""The engine's object-centred zoom (`engine.zoom`, `vos.engine.zoom`): the crop geometry, exact crops and paste-back
(a stub model that copies what it is shown), and a small object the packaged small model loses on the whole
frame and keeps with the zoom."""
import numpy as np
import pytest
import torch

from seggpt.settings import ConfigError
from vos import VideoSegmenter
from vos.engine.config import EngineConfig
from vos.data.synthetic import make_clip
import vos.engine.segmenter
from vos.engine.zoom import Whereabouts, follow, main_parts, mask_box, object_crops, place, query_crop
from helpers import segment, start


def test_crop_geometry():
    mask = np.zeros((100, 200), bool)
    mask[10:20, 150:170] = True
    assert mask_box(mask) == (10, 20, 150, 170) and mask_box(np.zeros((3, 3), bool)) is None
    where = follow(Whereabouts((10, 20, 130, 150), (0.0, 0.0)), mask)
    assert where.box == (10, 20, 150, 170) and where.step == (0.0, 20.0)
    assert follow(where, np.zeros_like(mask)) is None  # lost: the whole frame next
    # side: the box's larger side (20) grown by the margin each way (x3) plus twice the motion (2 x 20)
    (box, side) = query_crop(where, [], (100, 200), margin=1.0, min_size=0.1, motion=1.0, max_cover=0.6)
    assert side == 100 and box == (0, 100, 100, 200)  # expected at x 180: the square moved inside the frame
    assert query_crop(where, [], (100, 200), 1.0, 0.1, 1.0, max_cover=0.5) is None  # covers half: whole frame
    (box, side) = query_crop(where, [(0, 30, 0, 30)], (100, 200), 0.0, 0.1, 0.0, 0.6)
    assert side == 30 and box == (0, 30, 145, 175)  # a prompt's larger box sets the side
    assert query_crop(None, [], (100, 200), 1.0, 0.1, 1.0, 0.5) is None
    assert place((0, 0), 30, (100, 200)) == (0, 30, 0, 30) and place((99, 199), 300, (100, 200)) == (0, 100, 0, 200)
    with pytest.raises(ConfigError, match="zoom.margin"):
        EngineConfig.load({"zoom": {"margin": -1}})


def test_object_crops_are_the_zooms_crops_of_each_present_object():
    frame = np.random.default_rng(2).integers(0, 255, (100, 200, 3), dtype=np.uint8)
    labels = np.zeros((100, 200), np.int32)
    labels[10:20, 150:170] = 1  # side 20 x 3 = 60: a crop at (0, 60, 130, 190)
    labels[40:100, 0:50] = 2  # side 60 x 3 = 180, clipped to the frame's 100 rows: (0, 100, 0, 180)
    crops = object_crops([frame], [labels], [1, 2, 3], margin=1.0, min_size=0.1)
    assert len(crops) == 2  # object 3 absent
    for (cut, lab), (y0, y1, x0, x1) in zip(crops, [(0, 60, 130, 190), (0, 100, 0, 180)]):
        assert np.array_equal(cut, frame[y0:y1, x0:x1]) and np.array_equal(lab, labels[y0:y1, x0:x1])


@pytest.mark.parametrize("config, crops", [({"objects": "separate"}, True),
                                           ({"objects": "separate", "zoom": {"adapt_crops": False}}, False),
                                           ({"objects": "joint"}, False)])
def test_adaptation_learns_the_zooms_crops_too(tiny_weights, monkeypatch, config, crops):
    """With the zoom on (separate mode), test-time adaptation gets each object's crop besides the frame."""
    seen = {}

    def fake_adapt(model, frames, label_maps, *args, **kwargs):
        seen["frames"], seen["labels"] = frames, label_maps
        return model

    monkeypatch.setattr(vos.engine.segmenter, "adapt_model", fake_adapt)
    zoom = {"enabled": True, "margin": 1.0, "min_size": 0.1, **config.get("zoom", {})}
    seg = VideoSegmenter(tiny_weights, config={**config, "adapt": {"steps": 1}, "zoom": zoom}, device="cpu")
    frames = np.random.default_rng(3).integers(0, 255, (2, 100, 200, 3), dtype=np.uint8)
    mask = np.zeros((100, 200), bool)
    mask[10:20, 150:170] = True
    seg.adapt(start(seg, frames, 0, mask, obj_id=1))
    assert np.array_equal(seen["frames"][0], frames[0]) and np.array_equal(seen["labels"][0] == 1, mask)
    if crops:
        assert len(seen["frames"]) == 2
        assert np.array_equal(seen["frames"][1], frames[0, 0:60, 130:190])
        assert np.array_equal(seen["labels"][1] == 1, mask[0:60, 130:190])
    else:
        assert len(seen["frames"]) == 1


def test_joint_mode_says_the_zoom_does_not_apply(tiny_weights, caplog):
    with caplog.at_level("WARNING", logger="vos.engine.segmenter"):
        seg = VideoSegmenter(tiny_weights, config={"zoom": {"enabled": True}, "objects": "joint"}, device="cpu")
    assert "applies in separate mode only" in caplog.text
    frames = np.random.default_rng(1).integers(0, 255, (3, 40, 60, 3), dtype=np.uint8)
    state = start(seg, frames, 0, np.pad(np.ones((8, 8), bool), ((10, 22), (20, 32))), obj_id=1)
    assert len(list(seg.propagate(state, 0))) == 3  # joint mode runs as without the zoom


H, W = 200, 300


def _copying_run(tiny_weights, where, frames: int, y: int = 90, x: int = 140, **zoom) -> tuple:
    """A 7x7 mask at (y, x) given on frame 0 of `frames` random 200x300 frames and propagated in separate mode
    with the zoom on at the model's own size (64 px crops: no resize either way), `predictor.scores` replaced by
    a stub: the object is where `where(prompt labels)` says, on every query. (the given mask, {frame: labels})"""
    cfg = {"objects": "separate", "refine": {"enabled": False}, "memory": 0,
           "zoom": {"enabled": True, "margin": 0.0, "min_size": 64 / 200, "motion": 0.0, **zoom}}
    seg = VideoSegmenter(tiny_weights, config=cfg, device="cpu")

    def scores(queries, prompt_images, prompt_labels, object_ids, **kw):
        fg = torch.stack([where(prompt_labels, o) for o in object_ids]).float()[None].expand(queries.shape[0], -1, -1, -1)
        return torch.cat([1 - fg.max(dim=1, keepdim=True).values, fg], dim=1)

    seg.predictor.scores = scores
    given = np.zeros((H, W), bool)
    given[y:y + 7, x:x + 7] = True
    video = np.random.default_rng(0).integers(0, 255, (frames, H, W, 3), dtype=np.uint8)
    return given, {r.frame_idx: r.labels for r in segment(seg, video, 0, given, obj_id=1, start_frame_idx=0)[1]}


def test_crops_and_paste_back_are_exact(tiny_weights):
    """Crops of the model's own size (64 px: no resize either way) and a stub that copies the first prompt's
    mask: the prediction is the given mask, pixel for pixel, also where the crop is pushed inside the frame; a
    stub that marks only the crop's first model pixel shows exactly where the crop lay."""
    for y, x in ((90, 140), (2, 291)):  # mid-frame, and in the top-right corner (the crop clamped)
        given, results = _copying_run(tiny_weights, lambda labels, o: labels[0] == o, 4, y, x)
        assert all(np.array_equal(results[t] == 1, given) for t in (1, 2, 3)), f"the copy moved at {(y, x)}"

    corner = torch.zeros(64, 64)
    corner[0, 0] = 1
    labels = _copying_run(tiny_weights, lambda labels, o: corner, 2)[1][1]
    y0, y1, x0, x1 = place((93.5, 143.5), 64, (H, W))
    assert np.argwhere(labels == 1).tolist() == [[y0, x0]]  # the crop's first pixel, nothing outside it


def test_main_parts_drops_stray_parts():
    mask = np.zeros((40, 60), bool)
    mask[0:10, 0:10] = True  # 100 pixels: the largest part
    mask[20:24, 30:35] = True  # 20: below 0.3 x 100, dropped
    mask[30:38, 50:55] = True  # 40: kept
    mask[10, 10] = True  # touches the first part diagonally: the same part (8-connected)
    kept = main_parts(mask, 0.3)
    expected = mask.copy()
    expected[20:24, 30:35] = False
    assert np.array_equal(kept, expected)
    assert np.array_equal(main_parts(mask, 0.1), mask) and not main_parts(np.zeros((3, 3), bool), 0.3).any()


@pytest.mark.parametrize("min_part", [0.3, 0.0])
def test_the_zoom_drops_a_stray_speck(tiny_weights, min_part):
    """A stub that copies the given 7x7 mask and adds a one-pixel speck at the crop's corner: the speck is
    dropped at min_part 0.3 (1 / 49 of the object), kept at 0."""

    def with_speck(labels, o):
        out = (labels[0] == o).clone()
        out[0, 0] = True
        return out

    given, results = _copying_run(tiny_weights, with_speck, 2, min_part=min_part)
    y0, _, x0, _ = place((93.5, 143.5), 64, (H, W))
    speck = np.zeros((H, W), bool)
    speck[y0, x0] = True
    assert np.array_equal(results[1] == 1, given | speck if min_part == 0 else given)


@pytest.fixture(scope="module")
def small_object_clip():
    """An object about 18 pixels across, moving about 24 pixels a frame, in an 854x480 frame: about one pixel
    of the small model's 64x64 input."""
    return make_clip(3, 8, size=(480, 854), num_objects=1, object_size=(0.02, 0.025), min_visible=0.0001)


@pytest.mark.parametrize("zoom", [False, True])
def test_the_small_model_keeps_a_small_object_with_the_zoom_only(small_object_clip, zoom):
    frames, labels = small_object_clip
    seg = VideoSegmenter("small", config={"adapt": {"steps": 0}, "zoom": {"enabled": zoom}}, device="cpu")
    ious = []
    for r in segment(seg, frames, 0, labels[0] == 1, obj_id=1, start_frame_idx=0)[1]:
        if r.frame_idx:
            p, g = r.labels == 1, labels[r.frame_idx] == 1
            ious.append((p & g).sum() / max(1, (p | g).sum()))
    if zoom:
        assert min(ious) > 0.8, ious
    else:
        assert max(ious) < 0.2, ious  # lost on the whole frame: the test can fail


def test_the_zoom_backwards_and_in_a_live_stream(small_object_clip):
    """The same small object from its last frame backwards, and frame by frame in a live stream."""
    frames, labels = small_object_clip
    seg = VideoSegmenter("small", config={"adapt": {"steps": 0}, "zoom": {"enabled": True}}, device="cpu")
    last = len(frames) - 1
    _, results = segment(seg, frames, last, labels[last] == 1, obj_id=1, start_frame_idx=last, reverse=True)
    back = {r.frame_idx: r.labels == 1 for r in results}
    stream = seg.stream()
    live = {0: stream.step(frames[0], labels[0]).labels == 1}
    for t in range(1, len(frames)):
        live[t] = stream.step(frames[t]).labels == 1
    for got in (back, live):
        ious = [(got[t] & (labels[t] == 1)).sum() / max(1, (got[t] | (labels[t] == 1)).sum()) for t in range(last)]
        assert min(ious[1:]) > 0.7, ious
