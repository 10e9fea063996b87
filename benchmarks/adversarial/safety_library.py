"""The library cases of the second output pass (`benchmarks.output_safety_cases`): hostile arguments to the
public calls.

VideoSegmenter.init_state (missing, empty, wrong-shape, NaN, FIFO and device sources),
add_new_mask (frames, object ids and masks out of range, of the wrong type, NaN, inf) and
SegGPTPredictor.infer (sizes, channels, dtypes, batch and prompt counts, NaN): each raises a
one-line seggpt.errors.InputError; the good calls return.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable

import numpy as np
import torch

from .output_pass import Scene, case, seg


def _lib(name: str, fn: Callable[[Scene], Any], expect: str = "inputerror", timeout: float = 60) -> None:
    """A library case: `fn(c)` in the case folder (from `Scene.inputs`), with a timeout (a call that blocks)."""
    case("library", name, expect)(lambda c: c.lib(name, lambda: fn(c), timeout))


for _k, _src in {"missing": lambda c: c.p("nope.mp4"), "empty": lambda c: "", "none": lambda c: None,
                 "int": lambda c: 3, "array_2d": lambda c: np.zeros((8, 8), np.uint8),
                 "array_empty": lambda c: np.zeros((0, 8, 8, 3), np.uint8), "empty_list": lambda c: [],
                 "text_file": lambda c: c.user(c.p("v.mp4"), b"nope"), "image": lambda c: c.m,
                 "nan_frames": lambda c: np.full((2, 8, 8, 3), np.nan, np.float32),
                 "fifo": lambda c: (os.mkfifo(c.p("f.mp4")), c.p("f.mp4"))[1],
                 "dev_zero": lambda c: "/dev/zero"}.items():
    # a FIFO or a device blocks a reader: those calls run with a short timeout
    _lib(f"init_state_{_k}", lambda c, _src=_src: seg().init_state(_src(c)), timeout=20 if _k in ("fifo", "dev_zero") else 60)


def _add(c, frame=0, obj=1, mask=None, dtype=np.uint8, fill=1):
    """add_new_mask on the case's clip with a mask `fill` everywhere (`mask`: what to make of it)."""
    st = seg().init_state(c.v)
    m = np.full(tuple(st.size), fill, dtype)
    seg().add_new_mask(st, frame, obj, m if mask is None else mask(m))


_ADD = {
    "frame_negative": dict(frame=-1), "frame_out_of_range": dict(frame=10 ** 6), "frame_float": dict(frame=0.5),
    "frame_bool": dict(frame=True), "obj_zero": dict(obj=0), "obj_negative": dict(obj=-1), "obj_float": dict(obj=1.5),
    "obj_str": dict(obj="a"), "mask_nan": dict(dtype=np.float32, fill=np.nan), "mask_inf": dict(dtype=np.float32, fill=np.inf),
    "mask_neginf": dict(dtype=np.float32, fill=-np.inf), "mask_wrong_shape": dict(mask=lambda m: m[:-1]),
    "mask_3d": dict(mask=lambda m: m[None]), "mask_none": dict(mask=lambda m: None),
    "mask_str": dict(mask=lambda m: "mask"), "mask_complex": dict(mask=lambda m: m.astype(np.complex64)),
    "mask_one_nan": dict(mask=lambda m: np.where(np.arange(m.size).reshape(m.shape) == 0, np.nan, 1.0)),
    "mask_object": dict(mask=lambda m: m.astype(object)),
}
for _k, _kw in _ADD.items():
    _lib(f"add_new_mask_{_k}", lambda c, _kw=_kw: _add(c, **_kw))
_lib("add_new_mask_bool_ok", lambda c: _add(c, dtype=bool, fill=True), expect="returned")
_lib("add_new_mask_float_ok", lambda c: _add(c, dtype=np.float32, fill=1.0), expect="returned")


@functools.lru_cache(maxsize=None)
def _pred():
    import seggpt
    return seggpt.SegGPTPredictor(seggpt.SegGPT.from_pretrained("small"))


def _infer(B=1, K=1, size=None, ch=3, dtype=torch.float32, bad=lambda *t: t, pb=None):
    """infer on zeros: B images, pb (default B) by K prompt images and masks; `bad` changes them first."""
    p = _pred()
    h, w = size or p.image_size
    prompts = (pb or B, K, ch, h, w)
    return p.infer(*bad(torch.zeros(B, ch, h, w, dtype=dtype), torch.zeros(prompts, dtype=dtype),
                        torch.zeros(prompts, dtype=dtype)))


def _nan(t, v=float("nan")):
    t = t.clone()
    t.view(-1)[0] = v
    return t


_INF = {
    "wrong_size": dict(size=(32, 32)), "wrong_channels": dict(ch=1), "int_dtype": dict(dtype=torch.int64),
    "batch_mismatch": dict(pb=2), "k_mismatch": dict(bad=lambda a, b, m: (a, b, m[:, :0])),
    "k_zero": dict(K=0), "nan_image": dict(bad=lambda a, b, m: (_nan(a), b, m)),
    "nan_prompt": dict(bad=lambda a, b, m: (a, _nan(b), m)), "inf_mask": dict(bad=lambda a, b, m: (a, b, _nan(m, float("inf")))),
    "images_5d": dict(bad=lambda a, b, m: (a[None], b, m)), "prompts_4d": dict(bad=lambda a, b, m: (a, b[:, 0], m[:, 0])),
    "numpy_images": dict(bad=lambda a, b, m: (a.numpy(), b, m)), "none_mask": dict(bad=lambda a, b, m: (a, b, None)),
    "batch_zero": dict(B=0),
}
for _k, _kw in _INF.items():
    _lib(f"infer_{_k}", lambda c, _kw=_kw: _infer(**_kw))
_lib("infer_ok", lambda c: _infer(), expect="returned")
_lib("infer_bad_embedding", lambda c: _pred().infer(torch.zeros(1, 3, *_pred().image_size),
                                                     *[torch.zeros(1, 1, 3, *_pred().image_size)] * 2,
                                                     embedding_type="bogus"))
