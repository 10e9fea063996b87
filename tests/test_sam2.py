"""vos.sam2: SAM 2's documented mask-prompt video usage runs with only the import and constructor changed."""
import os
import threading

import cv2
import numpy as np
import pytest
import torch

from vos import EngineError, VideoSegmenter
from vos.sam2 import PromptNotSupported, SegGPTVideoPredictor, build_sam2_video_predictor
from vos.data.synthetic import make_clip
from helpers import start, write_frames


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    """A JPEG folder named like SAM 2's examples (00000.jpg, ...) and the label maps of its frames."""
    frames, labels = make_clip(5, 6, size=(64, 96), num_objects=2)
    root = write_frames(tmp_path_factory.mktemp("sam2") / "bedroom", frames, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])
    return root, labels


def _blank(weights, frames: int = 3) -> tuple:
    """A SAM 2-style predictor, its state on `frames` black 16x16 frames, and a 4x4 square mask."""
    predictor = build_sam2_video_predictor(weights=weights, device="cpu")
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    return predictor, predictor.init_state(video_path=np.zeros((frames, 16, 16, 3), np.uint8)), mask


def _sam2_notebook(video_dir, mask, weights):
    """SAM 2's video notebook, mask prompt (written from its public docs): two lines differ, marked."""
    from vos.sam2 import build_sam2_video_predictor  # SAM 2: from sam2.build_sam import build_sam2_video_predictor

    predictor = build_sam2_video_predictor(weights=weights, device="cpu")  # SAM 2: (model_cfg, sam2_checkpoint)

    frame_names = [p for p in os.listdir(video_dir) if os.path.splitext(p)[-1] in [".jpg", ".jpeg", ".JPG", ".JPEG"]]
    frame_names.sort(key=lambda p: int(os.path.splitext(p)[0]))

    with torch.inference_mode():
        inference_state = predictor.init_state(video_path=video_dir)
        predictor.reset_state(inference_state)

        ann_frame_idx = 0  # the frame index we interact with
        ann_obj_id = 1  # give a unique id to each object we interact with (it can be any integers)
        _, out_obj_ids, out_mask_logits = predictor.add_new_mask(
            inference_state=inference_state,
            frame_idx=ann_frame_idx,
            obj_id=ann_obj_id,
            mask=mask,
        )
        first = (out_mask_logits[0] > 0.0).cpu().numpy()

        # run propagation throughout the video and collect the results in a dict
        video_segments = {}  # video_segments contains the per-frame segmentation results
        for out_frame_idx, out_obj_ids, out_mask_logits in predictor.propagate_in_video(inference_state):
            video_segments[out_frame_idx] = {
                out_obj_id: (out_mask_logits[i] > 0.0).cpu().numpy()
                for i, out_obj_id in enumerate(out_obj_ids)
            }
    return frame_names, out_obj_ids, first, video_segments


def test_sam2_notebook_mask_prompt(video_dir, tiny_weights):
    root, labels = video_dir
    mask = labels[0] == 1
    frame_names, obj_ids, first, segments = _sam2_notebook(str(root), mask, tiny_weights)
    assert len(frame_names) == 6 and obj_ids == [1]
    assert first.shape == (1, 64, 96) and np.array_equal(first[0], mask)
    assert sorted(segments) == list(range(6))
    assert all(segments[t][1].shape == (1, 64, 96) and segments[t][1].dtype == bool for t in segments)
    # the same as our own API on the same inputs
    seg = VideoSegmenter(tiny_weights, device="cpu")
    for t, ids, masks in seg.propagate_in_video(start(seg, str(root), 0, mask, obj_id=1)):
        assert ids == [1] and np.array_equal(segments[t][1][0], masks[0]), t


def test_sam2_vos_inference_shape(video_dir, tiny_weights):
    """SAM 2's vos_inference.py way: per-object masks on several frames, objects appearing later, any ids
    (0 too), forward then reverse, max_frame_num_to_track, remove_object and reset_state."""
    root, labels = video_dir
    predictor = build_sam2_video_predictor(weights=tiny_weights, device="cpu")
    state = predictor.init_state(video_path=root)
    assert (state["num_frames"], state["video_height"], state["video_width"]) == (6, 64, 96)
    frame, ids, masks = predictor.add_new_mask(state, 0, 0, labels[0] == 1)  # object id 0 is fine in SAM 2
    assert frame == 0 and ids == [0] and masks.shape == (1, 1, 64, 96) and masks.dtype == torch.float32
    half = torch.from_numpy(cv2.resize((labels[3] == 2).astype(np.uint8), (48, 32), interpolation=cv2.INTER_NEAREST))
    _, ids, masks = predictor.add_new_mask(state, frame_idx=3, obj_id=7, mask=half)  # a smaller mask: resized
    assert ids == [0, 7] and state["obj_id_to_idx"] == {0: 0, 7: 1}
    assert not (masks[0] > 0).any() and (masks[1] > 0).any()  # only object 7 is given on frame 3

    out = {t: m for t, _, m in predictor.propagate_in_video(state)}
    assert sorted(out) == list(range(6))
    assert not (out[2][1] > 0).any()  # object 7 first appears on frame 3
    assert all(not ((out[t][0] > 0) & (out[t][1] > 0)).any() for t in out)  # one label per pixel

    assert [t for t, _, _ in predictor.propagate_in_video(state, start_frame_idx=1, max_frame_num_to_track=2)] == [1, 2, 3]
    assert [t for t, _, _ in predictor.propagate_in_video(state, start_frame_idx=3, reverse=True)] == [3, 2, 1, 0]
    assert list(predictor.propagate_in_video(state, reverse=True)) == []  # reverse from frame 0: nothing, as SAM 2

    with pytest.raises(PromptNotSupported, match="masks only"):
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=np.array([[10, 10]]), labels=[1])
    ids, updated = predictor.remove_object(state, 0)
    assert ids == [7] and [f for f, _ in updated] == [3]
    assert predictor.remove_object(state, 42) == ([7], [])
    with pytest.raises(RuntimeError, match="42"):
        predictor.remove_object(state, 42, strict=True)
    predictor.reset_state(state)
    assert state["obj_ids"] == []
    with pytest.raises(ValueError, match="add_new_mask"):
        next(predictor.propagate_in_video(state))


def test_object_ids_are_integers_as_sam2_takes_them(tiny_weights):
    """A fresh adversarial pass: obj_id=True was kept as another object beside 1; np.uint8(7) came back as is."""
    predictor, state, mask = _blank(tiny_weights)
    with pytest.raises(EngineError, match="obj_id must be an integer, got True"):
        predictor.add_new_mask(state, frame_idx=0, obj_id=True, mask=mask)
    _, ids, _ = predictor.add_new_mask(state, frame_idx=0, obj_id=np.uint8(7), mask=mask)
    assert ids == [7] and type(ids[0]) is int


def test_masks_that_are_not_numbers_are_refused_in_one_line(tiny_weights):
    """NaN, strings and ragged lists are no mask (a fresh adversarial pass: NaN became an empty mask, a
    ragged list a numpy traceback); a float 0/1 mask and a nested list of ints are, as SAM 2 takes them."""
    predictor, state, _ = _blank(tiny_weights)
    nan = np.zeros((16, 16), np.float32)
    nan[2, 2] = np.nan
    for bad, words in [(nan, "NaN"), (np.full((16, 16), "x"), "booleans or numbers"),
                       ([[1, 0], [1]], "not an array")]:
        with pytest.raises(EngineError, match=words):
            predictor.add_new_mask(state, frame_idx=0, obj_id=1, mask=bad)
    floats = np.zeros((16, 16), np.float32)
    floats[4:8, 4:8] = 1.0
    _, ids, masks = predictor.add_new_mask(state, frame_idx=0, obj_id=1, mask=floats)
    assert ids == [1] and int((masks[0, 0] > 0).sum()) == 16
    nested = np.zeros((16, 16), int)
    nested[0:3, 0:3] = 1
    _, ids, masks = predictor.add_new_mask(state, frame_idx=1, obj_id=2, mask=nested.tolist())
    assert ids == [1, 2] and int((masks[1, 0] > 0).sum()) == 9
    with pytest.raises(EngineError, match="object 3: the mask is 0x16, the video 16x16"):  # was a ZeroDivisionError
        predictor.add_new_mask(state, frame_idx=0, obj_id=3, mask=np.zeros((16, 0)))
    logits = torch.where(torch.from_numpy(nested) > 0, 4.0, -4.0).requires_grad_()  # SAM 2's rule: > 0 is the object
    _, _, masks = predictor.add_new_mask(state, frame_idx=2, obj_id=1, mask=logits)
    assert int((masks[0, 0] > 0).sum()) == 9


def test_messages_name_the_callers_ids_and_arguments(tiny_weights):
    """Adversarial: after objects 7 and 0 were added and 7 removed, an empty mask for new object 5 was
    refused as 'object 3's mask is empty' (our engine id); max_frame_num_to_track=-1 as 'max_frames ... got 0';
    a change during a propagation names the caller's id too, and leaves the predictor's ids as they were."""
    predictor, state, mask = _blank(tiny_weights, 4)
    predictor.add_new_mask(state, frame_idx=0, obj_id=7, mask=mask)
    predictor.add_new_mask(state, frame_idx=0, obj_id=0, mask=~mask)
    predictor.remove_object(state, 7)
    with pytest.raises(EngineError, match=r"^frame 0: object 5's mask is empty and it has no mask on another frame"):
        predictor.add_new_mask(state, frame_idx=0, obj_id=5, mask=np.zeros((16, 16), bool))
    for bad in (-1, 1.5, True):
        with pytest.raises(EngineError, match=rf"^max_frame_num_to_track must be an integer >= 0 .*"
                                              rf"got max_frame_num_to_track={bad!r}$"):
            list(predictor.propagate_in_video(state, max_frame_num_to_track=bad))
    assert [f for f, _, _ in predictor.propagate_in_video(state, max_frame_num_to_track=0)] == [0]  # SAM 2: the start
    predictor.add_new_mask(state, frame_idx=0, obj_id=5, mask=mask)
    for frame_idx, ids, _ in predictor.propagate_in_video(state):
        if frame_idx == 1:
            with pytest.raises(EngineError, match=r"^remove_object\(obj_id=5\): a propagation"):
                predictor.remove_object(state, 5)
            with pytest.raises(EngineError, match=r"^add_new_mask\(obj_id=9, frame_idx=2\): a propagation"):
                predictor.add_new_mask(state, frame_idx=2, obj_id=9, mask=mask)
        assert ids == [0, 5]
    assert state["obj_ids"] == [0, 5] and state["obj_id_to_idx"] == {0: 0, 5: 1}
    assert predictor.remove_object(state, 5)[0] == [0]


def test_propagate_in_video_shows_progress_and_cancels(video_dir, tiny_weights, capsys):
    """SAM 2's progress bar on stderr ("propagate in video"), one for adaptation when it runs, none with
    progress=False; a cancel during adaptation yields nothing."""
    predictor = build_sam2_video_predictor(weights=tiny_weights, device="cpu")
    predictor.segmenter.config.adapt = type(predictor.segmenter.config.adapt)(steps=3, batch_size=1)
    state = predictor.init_state(video_path=str(video_dir[0]))
    mask = np.zeros((state["video_height"], state["video_width"]), bool)
    mask[10:20, 10:30] = True
    predictor.add_new_mask(state, frame_idx=0, obj_id=1, mask=mask)
    assert len(list(predictor.propagate_in_video(state, max_frame_num_to_track=2))) == 3
    err = capsys.readouterr().err
    assert "adapting" in err and "3/3" in err and "propagate in video" in err
    predictor.add_new_mask(state, frame_idx=1, obj_id=1, mask=mask)  # new masks: it adapts again
    cancel = threading.Event()
    cancel.set()
    assert list(predictor.propagate_in_video(state, progress=False, cancel=cancel)) == []
    assert capsys.readouterr().err == ""


SAM2_CFG, SAM2_CKPT = "configs/sam2.1/sam2.1_hiera_l.yaml", "./checkpoints/sam2.1_hiera_large.pt"


@pytest.mark.parametrize("call", [
    lambda b: b(SAM2_CFG, SAM2_CKPT),                   # SAM 2's README
    lambda b: b(SAM2_CFG, SAM2_CKPT, device="cuda"),    # SAM 2's notebook: a TypeError with a positional device
    lambda b: b("sam2.1_hiera_t.yaml", device="cpu"),   # a config alone
    lambda b: b("small", SAM2_CKPT),                    # a checkpoint where the device was read
    lambda b: b("small", ckpt_path=SAM2_CKPT),          # SAM 2's keyword
])
def test_sam2s_own_call_is_one_line_naming_what_to_pass(call):
    """SAM 2's positional (model_cfg, checkpoint) was read as weights=cfg, device=checkpoint and
    failed with "unknown device './checkpoints/sam2.1_hiera_large.pt'"."""
    with pytest.raises(EngineError) as err:
        call(build_sam2_video_predictor)
    message = str(err.value)
    assert "\n" not in message and "not SAM 2" in message and 'weights="small"' in message
    assert "BAAI/seggpt-vit-large" in message and "device=" in message
    assert "unknown device" not in message and "no such file" not in message


def test_a_device_name_is_still_taken_positionally_and_a_typo_is_not_sam2(tiny_weights):
    assert build_sam2_video_predictor(tiny_weights, "cpu").device.type == "cpu"
    # the signature's old positional form, (weights, device, config, dtype), device None too
    assert build_sam2_video_predictor(tiny_weights, None).device.type == "cpu"
    p = build_sam2_video_predictor(tiny_weights, "cpu", {"memory": 1}, "fp32")
    assert p.segmenter.config.memory == 1
    with pytest.raises(EngineError, match="^unknown device 'gpu7'"):  # a typo by keyword: not blamed on SAM 2
        build_sam2_video_predictor(tiny_weights, device="gpu7")
    with pytest.raises(EngineError, match="^unknown device 'gpu'"):  # a device name, only a wrong one
        build_sam2_video_predictor(tiny_weights, "gpu")
    with pytest.raises(TypeError, match="unexpected keyword argument 'devcie'"):
        build_sam2_video_predictor(tiny_weights, devcie="cpu")


def test_from_pretrained_small_end_to_end(video_dir):
    """SAM 2's SAM2VideoPredictor.from_pretrained(model_id) form: the packaged small model through the same
    checked loader (VideoSegmenter), the same masks as our own API."""
    root, labels = video_dir
    predictor = SegGPTVideoPredictor.from_pretrained("small", device="cpu")
    assert isinstance(predictor, SegGPTVideoPredictor) and predictor.device.type == "cpu"
    state = predictor.init_state(video_path=str(root))
    mask = labels[0] == 1
    _, ids, first = predictor.add_new_mask(state, frame_idx=0, obj_id=3, mask=mask)
    assert ids == [3] and np.array_equal((first[0, 0] > 0).numpy(), mask)
    out = {t: (m[0, 0] > 0).numpy() for t, _, m in predictor.propagate_in_video(state, progress=False)}
    assert sorted(out) == list(range(6))
    seg = VideoSegmenter("small", device="cpu")
    for t, _, masks in seg.propagate_in_video(start(seg, str(root), 0, mask, obj_id=1)):
        assert np.array_equal(out[t], masks[0]), t


@pytest.mark.parametrize("model_id", ["facebook/sam2.1-hiera-large", "facebook/sam2-hiera-tiny"])
def test_from_pretrained_refuses_a_sam2_hub_id_in_one_line(model_id, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a SAM 2 Hub id must be refused before anything is downloaded")

    monkeypatch.setattr("vos.sam2.VideoSegmenter", no_download)
    with pytest.raises(EngineError) as err:
        SegGPTVideoPredictor.from_pretrained(model_id)
    message = str(err.value)
    assert message.startswith(f"SegGPTVideoPredictor.from_pretrained({model_id!r}): this is SegGPT, not SAM 2")
    assert "\n" not in message and 'weights="small"' in message
