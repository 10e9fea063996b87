"""Case 7 of the first output pass (`benchmarks.adversarial_outputs`): library inputs.

NaN, inf, wrong dtype / shape / layout, numpy against torch, int8: VideoSegmenter.add_new_mask and
init_state, SegGPTPredictor.infer and its constructor, VideoSegmenter's, and SAM 2's video predictor
surface (`vos.sam2`). A bad argument raises a one-line seggpt.errors.InputError; a good one returns.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
import torch

from seggpt import SegGPTPredictor
from vos import VideoSegmenter
from vos.sam2 import build_sam2_video_predictor

from .output_pass import G, B, add, seg

C7 = "7-library"


# ---------------------------------------------------------------------------- 7. library inputs


def L(title: str, expect: str, fn: Callable[[], Any]) -> None:
    add(C7, title, expect, lambda S: S.lib(title, fn))


def _mask(kind: str):
    """A float mask of the clip's size holding one box; `kind` "nan", "inf" or "-inf" puts that in a corner."""
    m = np.zeros(G["size"], np.float32)
    m[5:20, 5:25] = 1
    m[0, 0] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}.get(kind, 0.0)
    return m


def _add(mask_fn: Callable[[], Any], frame: Any = 0, obj: Any = 1, model: Callable[[], Any] = seg):
    """add_new_mask on the shared clip with `mask_fn()`, by `model()` (the VideoSegmenter or SAM 2's predictor)."""
    def fn():
        m = model()
        m.add_new_mask(m.init_state(B("clip.mp4")), frame, obj, mask_fn())
    return fn


L("add_new_mask NaN", "inputerror", _add(lambda: _mask("nan")))
L("add_new_mask inf", "inputerror", _add(lambda: _mask("inf")))
L("add_new_mask -inf", "inputerror", _add(lambda: _mask("-inf")))
L("add_new_mask all NaN float16", "inputerror", _add(lambda: np.full(G["size"], np.nan, np.float16)))
L("add_new_mask wrong shape", "inputerror", _add(lambda: np.ones((10, 10), bool)))
L("add_new_mask (H,W,1)", "inputerror_or_ok", _add(lambda: _mask("")[..., None]))
L("add_new_mask (H,W,3) rgb", "inputerror", _add(lambda: np.repeat(_mask("")[..., None], 3, -1)))
L("add_new_mask transposed (W,H)", "inputerror", _add(lambda: _mask("").T.copy()))
L("add_new_mask dtype object", "inputerror", _add(lambda: _mask("").astype(object)))
L("add_new_mask string", "inputerror", _add(lambda: "mask.png"))
L("add_new_mask None", "inputerror", _add(lambda: None))
L("add_new_mask complex", "inputerror", _add(lambda: _mask("").astype(complex)))
L("add_new_mask list of lists", "inputerror_or_ok", _add(lambda: _mask("").tolist()))
L("add_new_mask int8 ok", "returned", _add(lambda: _mask("").astype(np.int8)))
L("add_new_mask uint8 0/255 ok", "returned", _add(lambda: (_mask("") * 255).astype(np.uint8)))
L("add_new_mask bool ok", "returned", _add(lambda: _mask("") > 0))
L("add_new_mask torch tensor", "inputerror_or_ok", _add(lambda: torch.from_numpy(_mask(""))))
L("add_new_mask torch NaN tensor", "inputerror", _add(lambda: torch.from_numpy(_mask("nan"))))
L("add_new_mask empty mask new object", "inputerror", _add(lambda: np.zeros(G["size"], bool)))
for _arg, _value, _expect in [("frame", -1, "inputerror"), ("frame", 999, "inputerror"), ("frame", 1.5, "inputerror"),
                              ("frame", "0", "inputerror"), ("frame", None, "inputerror"), ("obj", 0, "inputerror"),
                              ("obj", -1, "inputerror"), ("obj", "a", "inputerror"), ("obj", True, "inputerror"),
                              ("obj", 1.0, "inputerror_or_ok")]:  # the case named after the argument and its value
    L(f"add_new_mask {_arg} {_value!r}", _expect, _add(lambda: _mask(""), **{_arg: _value}))
L("add_new_mask obj 256 (ids are not limited to 255)", "returned", _add(lambda: _mask(""), obj=256))
L("init_state ''", "inputerror", lambda: seg().init_state(""))
L("init_state missing", "inputerror", lambda: seg().init_state("/nonexistent/v.mp4"))
L("init_state image file", "inputerror", lambda: seg().init_state(B("img.png")))
L("init_state /dev/zero", "inputerror", lambda: seg().init_state("/dev/zero"))
L("init_state None", "inputerror", lambda: seg().init_state(None))
L("init_state 2-D array", "inputerror", lambda: seg().init_state(np.zeros((32, 48), np.uint8)))
L("init_state 5-D array", "inputerror", lambda: seg().init_state(np.zeros((1, 2, 32, 48, 3), np.uint8)))
L("init_state empty (0,H,W,3)", "inputerror", lambda: seg().init_state(np.zeros((0, 32, 48, 3), np.uint8)))
L("init_state channels-first (T,3,H,W)", "inputerror_or_ok", lambda: seg().init_state(np.zeros((2, 3, 32, 48), np.uint8)))
L("init_state float NaN frames", "inputerror", lambda: seg().init_state(np.full((2, 32, 48, 3), np.nan, np.float32)))
L("init_state int8 frames", "inputerror_or_ok", lambda: seg().init_state(np.zeros((2, 32, 48, 3), np.int8)))
L("init_state empty list", "inputerror", lambda: seg().init_state([]))
L("init_state (T,H,W,5) channels", "inputerror", lambda: seg().init_state(np.zeros((2, 32, 48, 5), np.uint8)))
L("init_state uint8 (T,H,W,3) ok", "returned", lambda: seg().init_state(np.zeros((2, 32, 48, 3), np.uint8)))


def _inf(images=lambda h, w: torch.zeros(1, 3, h, w), pi=lambda h, w: torch.zeros(1, 1, 3, h, w),
         pm=lambda h, w: torch.zeros(1, 1, 3, h, w), et="instance"):
    """SegGPTPredictor.infer with the images, prompt images and prompt masks made by `images(h, w)`, `pi`, `pm`."""
    def fn():
        h, w = seg().predictor.image_size
        with torch.no_grad():
            SegGPTPredictor(seg().model).infer(images(h, w), pi(h, w), pm(h, w), embedding_type=et)
    return fn


L("infer numpy images", "inputerror", _inf(images=lambda h, w: np.zeros((1, 3, h, w), np.float32)))
L("infer numpy prompt masks", "inputerror", _inf(pm=lambda h, w: np.zeros((1, 1, 3, h, w), np.float32)))
L("infer 4-D prompt images (no K)", "inputerror", _inf(pi=lambda h, w: torch.zeros(1, 3, h, w)))
L("infer 4-D prompt masks (no K)", "inputerror", _inf(pm=lambda h, w: torch.zeros(1, 3, h, w)))
L("infer uint8 images", "inputerror", _inf(images=lambda h, w: torch.zeros(1, 3, h, w, dtype=torch.uint8)))
L("infer int8 prompt masks", "inputerror", _inf(pm=lambda h, w: torch.zeros(1, 1, 3, h, w, dtype=torch.int8)))
L("infer bool masks", "inputerror", _inf(pm=lambda h, w: torch.zeros(1, 1, 3, h, w, dtype=torch.bool)))
L("infer NaN images", "inputerror", _inf(images=lambda h, w: torch.full((1, 3, h, w), float("nan"))))
L("infer inf prompt images", "inputerror", _inf(pi=lambda h, w: torch.full((1, 1, 3, h, w), float("inf"))))
L("infer NaN prompt masks", "inputerror", _inf(pm=lambda h, w: torch.full((1, 1, 3, h, w), float("nan"))))
L("infer channels-last images", "inputerror", _inf(images=lambda h, w: torch.zeros(1, h, w, 3)))
L("infer channels-last prompts", "inputerror", _inf(pi=lambda h, w: torch.zeros(1, 1, h, w, 3)))
L("infer wrong size", "inputerror", _inf(images=lambda h, w: torch.zeros(1, 3, h + 8, w)))
L("infer batch mismatch", "inputerror", _inf(images=lambda h, w: torch.zeros(2, 3, h, w)))
L("infer K mismatch", "inputerror", _inf(pm=lambda h, w: torch.zeros(1, 2, 3, h, w)))
L("infer K = 0", "inputerror", _inf(pi=lambda h, w: torch.zeros(1, 0, 3, h, w), pm=lambda h, w: torch.zeros(1, 0, 3, h, w)))
L("infer 1 channel", "inputerror", _inf(images=lambda h, w: torch.zeros(1, 1, h, w)))
L("infer embedding_type bogus", "inputerror", _inf(et="panoptic"))
L("infer images None", "inputerror", _inf(images=lambda h, w: None))
L("infer list images", "inputerror", _inf(images=lambda h, w: [[0.0]]))
L("infer float64 ok", "returned", _inf(images=lambda h, w: torch.zeros(1, 3, h, w, dtype=torch.float64)))
L("infer float32 ok", "returned", _inf())
L("SegGPTPredictor dtype int8", "inputerror", lambda: SegGPTPredictor(seg().model, dtype=torch.int8))
L("SegGPTPredictor dtype 'fp16' string", "inputerror", lambda: SegGPTPredictor(seg().model, dtype="fp16"))
L("SegGPTPredictor('') weights", "inputerror", lambda: SegGPTPredictor(""))
L("SegGPTPredictor(missing file)", "inputerror", lambda: SegGPTPredictor("/nonexistent/w.safetensors"))
L("VideoSegmenter('') weights", "inputerror", lambda: VideoSegmenter(""))
L("VideoSegmenter(text file)", "inputerror", lambda: VideoSegmenter(B("notes.txt")))
L("VideoSegmenter device bogus", "inputerror", lambda: VideoSegmenter("small", device="bogus"))
L("VideoSegmenter dtype int8", "inputerror", lambda: VideoSegmenter("small", device="cpu", dtype="int8"))


@functools.lru_cache(maxsize=None)
def sam() -> Any:
    return build_sam2_video_predictor("small", device="cpu")


_s_add = functools.partial(_add, model=sam)


def _s_prop(**kw):
    def fn():
        st = sam().init_state(B("clip.mp4"))
        if kw.pop("_mask", True):
            sam().add_new_mask(st, 0, 1, _mask("") > 0)
        list(sam().propagate_in_video(st, **kw))
    return fn


L("sam2 build('')", "inputerror", lambda: build_sam2_video_predictor(""))
L("sam2 build(missing)", "inputerror", lambda: build_sam2_video_predictor("/nonexistent.pt"))
L("sam2 build device bogus", "inputerror", lambda: build_sam2_video_predictor("small", device="bogus"))
L("sam2 init_state ''", "inputerror", lambda: sam().init_state(""))
L("sam2 init_state missing", "inputerror", lambda: sam().init_state("/nonexistent.mp4"))
L("sam2 init_state image", "inputerror", lambda: sam().init_state(B("img.png")))
L("sam2 init_state /dev/null", "inputerror", lambda: sam().init_state("/dev/null"))
L("sam2 add_new_mask NaN", "inputerror", _s_add(lambda: _mask("nan")))
L("sam2 add_new_mask inf", "inputerror", _s_add(lambda: _mask("inf")))
L("sam2 add_new_mask torch NaN", "inputerror", _s_add(lambda: torch.from_numpy(_mask("nan"))))
L("sam2 add_new_mask torch inf (1,H,W)", "inputerror", _s_add(lambda: torch.from_numpy(_mask("inf"))[None]))
L("sam2 add_new_mask torch (1,H,W) ok", "returned", _s_add(lambda: torch.from_numpy(_mask(""))[None]))
L("sam2 add_new_mask int8 ok", "returned", _s_add(lambda: _mask("").astype(np.int8)))
L("sam2 add_new_mask wrong aspect", "inputerror", _s_add(lambda: np.ones((10, 40), bool)))
L("sam2 add_new_mask 3-D (2,H,W)", "inputerror", _s_add(lambda: np.ones((2,) + tuple(G["size"]), bool)))
L("sam2 add_new_mask None", "inputerror", _s_add(lambda: None))
L("sam2 add_new_mask string", "inputerror", _s_add(lambda: "m.png"))
for _arg, _value, _expect in [("obj", "a", "inputerror_or_ok"), ("obj", None, "inputerror"),
                              ("frame", -1, "inputerror"), ("frame", 99, "inputerror")]:
    L(f"sam2 add_new_mask {_arg} {_value!r}", _expect, _s_add(lambda: _mask("") > 0, **{_arg: _value}))
L("sam2 add_new_mask empty mask", "inputerror", _s_add(lambda: np.zeros(G["size"], bool)))
L("sam2 add_new_mask numpy float64 nan via list", "inputerror", _s_add(lambda: [[float("nan")] * G["size"][1]] * G["size"][0]))
L("sam2 propagate without masks", "inputerror", _s_prop(_mask=False))
L("sam2 propagate start_frame_idx 99", "inputerror", _s_prop(start_frame_idx=99))
L("sam2 propagate start_frame_idx -1", "inputerror", _s_prop(start_frame_idx=-1))
L("sam2 propagate max_frame_num_to_track -1", "inputerror", _s_prop(max_frame_num_to_track=-1))
L("sam2 propagate max_frame_num_to_track 'x'", "inputerror", _s_prop(max_frame_num_to_track="x"))
L("sam2 propagate ok", "returned", _s_prop())
L("sam2 propagate on a non-state dict", "inputerror", lambda: list(sam().propagate_in_video({})))
