"""The other-tools, bad-values and special-files cases of the second output pass
(`benchmarks.output_safety_cases`).

other-tools: seggpt.run, seggpt.tune, vos.demo and benchmarks.evaluate over user files, links, their
own inputs, FIFOs and empty paths. bad-values: vos.run's options out of range, garbage or empty.
special-files: FIFOs and devices as inputs (as subprocesses, so a tool that blocks is reported).
"""
from __future__ import annotations

import os
import shutil
from typing import List, Optional

import numpy as np
from PIL import Image

from .output_pass import EV, SR, TUNE, VM, Scene, case, tool_case, vos_case


# --------------------------------------------------------------------------- (4) other tools
def _sg(c: Scene, *extra: str, out: Optional[str] = None, query: Optional[str] = None,
        mask: Optional[str] = None) -> List[str]:
    """seggpt.run's argv on the case's frames and mask, into sg/ (`out`, `query`, `mask`: given instead)."""
    return SR(c.p("sg") if out is None else out, *extra, prompt=c.frames + "/00000.png", mask=c.m if mask is None else mask,
              query=c.frames + "/00001.png" if query is None else query)


T = "other-tools"
for _name in ["00001_mask.png", "00001_overlay.png"]:
    for _ow in ([], ["--overwrite"]):
        tool_case(T, f"seggpt_user_{_name}{'_ow' if _ow else ''}", "seggpt", lambda c, _ow=_ow: _sg(c, *_ow),
                  prep=lambda c, _name=_name: c.user(c.p("sg", _name), b"user"))
tool_case(T, "seggpt_rerun_ok", "seggpt", _sg, prior=_sg, expect="ok")
tool_case(T, "seggpt_edited_output", "seggpt", lambda c: _sg(c, "--overwrite"), prior=_sg,
          prep=lambda c: c.user("@sg/00001_mask.png", b"edited"))
tool_case(T, "seggpt_symlink_output", "seggpt", lambda c: _sg(c, "--overwrite"),
          prep=lambda c: c.link("@sg/00001_mask.png", c.user("@ext/t.png", b"t")))
tool_case(T, "seggpt_out_holds_query", "seggpt", lambda c: _sg(c, out=c.frames))
tool_case(T, "seggpt_out_is_query", "seggpt", lambda c: _sg(c, out=c.frames + "/00001.png"))
tool_case(T, "seggpt_out_is_root", "seggpt", lambda c: _sg(c, out=str(c.d)))
tool_case(T, "seggpt_empty_out", "seggpt", lambda c: _sg(c, out=""))
tool_case(T, "seggpt_empty_query", "seggpt", lambda c: _sg(c, query=""))
tool_case(T, "seggpt_empty_prompt_mask", "seggpt", lambda c: _sg(c, mask=""))
tool_case(T, "seggpt_same_query_twice", "seggpt", lambda c: _sg(c) + [c.frames + "/00001.png"], expect="ok_or_refuse")
tool_case(T, "seggpt_two_queries_same_stem", "seggpt", lambda c: _sg(c) + [c.p("b", "00001.png")],
          prep=lambda c: (os.makedirs(c.p("b")), shutil.copy(c.frames + "/00001.png", c.p("b", "00001.png"))),
          expect="ok_or_refuse")
tool_case(T, "seggpt_fifo_query", "seggpt", lambda c: _sg(c, query=c.p("q.png")),
          prep=lambda c: os.mkfifo(c.p("q.png")), sub=True)
tool_case(T, "seggpt_dev_zero_query", "seggpt", lambda c: _sg(c, query="/dev/zero"), sub=True)
tool_case(T, "seggpt_prompt_file_is_out", "seggpt", lambda c: [
    "--prompt-file", c.p("sg", "p.safetensors"), c.frames + "/00001.png", "--out", c.p("sg"), "--weights", "small"])


def _tune(c: Scene, out: str, *extra: str) -> List[str]:
    return TUNE(out, *extra, image=c.frames + "/00000.png", mask=c.m)


def _tune_p(c, *extra):
    """seggpt.tune writing p.safetensors in the case folder."""
    return _tune(c, c.p("p.safetensors"), *extra)


tool_case(T, "tune_over_user_file", "tune", _tune_p, prep=lambda c: c.user("@p.safetensors", b"user"))
tool_case(T, "tune_out_is_example", "tune", lambda c: _tune(c, c.frames + "/00000.png"))
tool_case(T, "tune_out_is_mask", "tune", lambda c: _tune(c, c.m))
tool_case(T, "tune_out_is_folder", "tune", lambda c: _tune(c, c.frames))
tool_case(T, "tune_out_empty", "tune", lambda c: _tune(c, ""))
tool_case(T, "tune_steps_zero", "tune", lambda c: _tune_p(c, "--steps", "0"))
tool_case(T, "tune_steps_negative", "tune", lambda c: _tune_p(c, "--steps", "-1"))
tool_case(T, "tune_lr_nan", "tune", lambda c: _tune_p(c, "--lr", "nan"))
tool_case(T, "tune_symlink_out", "tune", _tune_p, prep=lambda c: c.link("@p.safetensors", c.user("@ext/t.safetensors", b"t")))
tool_case(T, "tune_fifo_example", "tune", lambda c: _tune_p(c)[:3] + [c.p("ex.png")] + _tune_p(c)[4:],
          prep=lambda c: os.mkfifo(c.p("ex.png")), sub=True)
tool_case(T, "tune_rerun_ok", "tune", _tune_p, prior=_tune_p, expect="ok")


def _demo(c):
    return [c.p("dm")]


tool_case(T, "demo_user_clip", "demo", _demo, prep=lambda c: c.user("@dm/clip.mp4", b"user"))
tool_case(T, "demo_user_mask", "demo", _demo, prep=lambda c: c.user("@dm/clip_mask.png", b"user"))
tool_case(T, "demo_dir_is_file", "demo", _demo, prep=lambda c: c.user("@dm", b"user"))
tool_case(T, "demo_empty", "demo", lambda c: [""])
tool_case(T, "demo_into_inputs", "demo", lambda c: [str(c.inp)])
tool_case(T, "demo_rerun_ok", "demo", _demo, prior=_demo, expect="ok")
tool_case(T, "demo_symlink_clip", "demo", _demo, prep=lambda c: c.link("@dm/clip.mp4", c.user("@ext/t.mp4", b"t")))


def _ev(c: Scene, *extra: str, results: Optional[str] = None, root: Optional[str] = None) -> List[str]:
    """benchmarks.evaluate's argv on the case's copy of the DAVIS root and its results folder (or those given)."""
    r, res = c.davis()
    return EV(res if results is None else results, *extra, root=r if root is None else root)


# the dataset is copied (c.davis) before a scene is set in its results folder
for _name in ["global_results-val.csv", "per-sequence_results-val.csv"]:
    for _ow in ([], ["--overwrite"]):
        _sfx = "_ow" if _ow else ""
        tool_case(T, f"eval_user_{_name}{_sfx}", "eval", lambda c, _ow=_ow: _ev(c, *_ow),
                  prep=lambda c, _name=_name: (c.davis(), c.user(c.p("results", _name), b"user csv")))
        tool_case(T, f"eval_symlink_{_name}{_sfx}", "eval", lambda c, _ow=_ow: _ev(c, *_ow),
                  prep=lambda c, _name=_name: (c.davis(),
                                               c.link(c.p("results", _name), c.user("@ext/t.csv", b"t"))))
tool_case(T, "eval_rerun_ok", "eval", _ev, prior=_ev, expect="ok")
tool_case(T, "eval_edited_csv", "eval", lambda c: _ev(c, "--overwrite"), prior=_ev,
          prep=lambda c: c.user("@results/global_results-val.csv", b"edited"))
tool_case(T, "eval_results_is_root", "eval", lambda c: _ev(c, results=c.davis()[0]))
tool_case(T, "eval_results_is_annotations", "eval",
          lambda c: _ev(c, results=os.path.join(c.davis()[0], "Annotations", "480p")), expect="ok_or_refuse")
tool_case(T, "eval_empty_results", "eval", lambda c: _ev(c, results=""))
tool_case(T, "eval_empty_root", "eval", lambda c: _ev(c, root=""))
tool_case(T, "eval_missing_root", "eval", lambda c: _ev(c, root=c.p("nope")))


# --------------------------------------------------------------------------- (5) bad values

B = "bad-values"
vos_case(B, "empty_video", video="")
vos_case(B, "empty_out", out="")
vos_case(B, "soft_width_zero", "--soft", "--soft-width", "0")
vos_case(B, "soft_width_big", "--soft", "--soft-width", "1.5")
vos_case(B, "image_as_video", video="@in/clip_mask.png", mentions=["seggpt.run"])

# more bad values
_BAD = {
    "end_negative": ("--end", "-1"), "start_after_end": ("--start", "5"), "fps_zero": ("--fps", "0"),
    "fps_nan": ("--fps", "nan"), "fps_inf": ("--fps", "inf"),
    "memory_negative": ("--memory", "-2"), "batch_zero": ("--batch-frames", "0"), "threads_zero": ("--threads", "0"),
    "lost_after_negative": ("--lost-after", "-1"), "names_garbage": ("--names", "garbage"),
    "names_empty_name": ("--names", "1="), "names_id_zero": ("--names", "0=bg"), "set_garbage": ("--set", "garbage"),
    "set_unknown_key": ("--set", "no.such.key=1"), "soft_width_nan": ("--soft-width", "nan"),
    "soft_width_inf": ("--soft-width", "inf"), "soft_width_negative": ("--soft-width", "-0.5"),
    "soft_width_tiny": ("--soft-width", "0.0009"), "soft_width_just_over": ("--soft-width", "1.0001"),
    "soft_width_text": ("--soft-width", "abc"), "mask_frame_out_of_range": ("--mask-frame", "99"),
    "device_bogus": ("--device", "bogus"), "weights_empty": ("--weights", ""), "weights_missing": ("--weights", "/nonexistent.pt"),
    "config_empty": ("--config", ""), "config_missing": ("--config", "/nonexistent.yaml"), "report_empty": ("--report", ""),
    "overlay_empty": ("--overlay", ""), "alpha_empty": ("--alpha", ""), "matte_empty": ("--matte", ""),
    "rle_empty": ("--rle", ""), "matte_bad_ext": ("--matte", "@x.txt"), "memory_stride_zero": ("--memory-stride", "0"),
    "adapt_negative": ("--adapt-steps", "-1"), "end_text": ("--end", "two"),
}
for _k, _v in _BAD.items():
    vos_case(B, _k, *_v, *(["--soft"] if "soft" in _v[0] else []))
for _k, _w in {"soft_width_min_ok": "0.001", "soft_width_max_ok": "1"}.items():
    vos_case(B, _k, "--soft", "--soft-width", _w, "--alpha", "@alpha", expect="ok")
vos_case(B, "weights_garbage_user_file", "--weights", "@w.safetensors", prep=lambda c: c.user("@w.safetensors", b"garbage"))
vos_case(B, "mask_wrong_size", mask="@small.png",
         prep=lambda c: Image.fromarray(np.full((10, 10), 255, np.uint8)).save(c.p("small.png")))
vos_case(B, "mask_text_file", mask="@m.png", prep=lambda c: c.user("@m.png", b"not a png"))
vos_case(B, "mask_all_zero", mask="@z.png", prep=lambda c: Image.open(c.m).point(lambda v: 0).save(c.p("z.png")))
vos_case(B, "video_text_file", video="@v.mp4", prep=lambda c: c.user("@v.mp4", b"not a video"))
vos_case(B, "video_missing", video="@nope.mp4")
vos_case(B, "video_empty_dir", video="@empty", prep=lambda c: os.makedirs(c.p("empty")))
vos_case(B, "mask_empty", mask="")
case(B, "masks_empty")(lambda c: c.call("vos", [c.v, "--masks", "", "--weights", "small", "--out", c.p("out")]))
case(B, "masks_missing")(lambda c: c.call("vos", [c.v, "--masks", c.p("nope"), "--weights", "small", "--out", c.p("out")]))
vos_case(B, "image_frame_as_video", video="@in/frames/00000.png", mentions=["seggpt.run"])

# --------------------------------------------------------------------------- (6) special files

SP = "special-files"
vos_case(SP, "fifo_as_video", video="@fifo.mp4", prep=lambda c: os.mkfifo(c.p("fifo.mp4")), sub=True, timeout=60)
vos_case(SP, "dev_null_as_mask", mask="/dev/null")

# more special files
vos_case(SP, "fifo_as_mask", mask="@f.png", prep=lambda c: os.mkfifo(c.p("f.png")), sub=True)
vos_case(SP, "fifo_as_config", "--config", "@f.yaml", prep=lambda c: os.mkfifo(c.p("f.yaml")), sub=True)
vos_case(SP, "fifo_as_weights", "--weights", "@f.pt", prep=lambda c: os.mkfifo(c.p("f.pt")), sub=True)
vos_case(SP, "fifo_in_frames", video="@in/frames", prep=lambda c: os.mkfifo(c.p("in", "frames", "00003.png")),
         sub=True, expect="ok_or_refuse")
case(SP, "fifo_in_masks_dir")(lambda c: (os.makedirs(c.p("mk")), os.mkfifo(c.p("mk", "00000.png")),
                                         c.call("vos", VM(c.v, c.p("mk"), c.p("out")), sub=True, timeout=60))[2])
vos_case(SP, "dev_zero_as_video", video="/dev/zero", sub=True)
vos_case(SP, "dev_zero_as_mask", mask="/dev/zero", sub=True)
vos_case(SP, "dev_null_as_video", video="/dev/null")
vos_case(SP, "dev_null_as_config", "--config", "/dev/null", expect="ok_or_refuse")
vos_case(SP, "dev_zero_as_weights", "--weights", "/dev/zero", sub=True)
