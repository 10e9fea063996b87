"""The single-file and out-is-input cases of the second output pass (`benchmarks.output_safety_cases`).

single-file: every single-file output (--report, --rle, --overlay, --matte) over user files, links,
dangling links, edited outputs of ours, FIFOs and folders, the same path given twice, crafted parent
manifests. out-is-input: an output naming the video, the mask, the frames or masks folder, the config,
directly, through `..` or a symlink.
"""
from __future__ import annotations

import os
import shutil

from .output_pass import MANIFEST, VM, case, edit_manifest, listed, sha, vos_case

# --------------------------------------------------------------------------- (2) single files

SF = "single-file"
vos_case(SF, "report_over_user_file", "--report", "@r.json", prep=lambda c: c.user("@r.json", b"user report"))
vos_case(SF, "report_over_user_file_overwrite", "--report", "@r.json", "--overwrite",
         prep=lambda c: c.user("@r.json", b"user report"))
vos_case(SF, "overlay_over_user_file", "--overlay", "@o.mp4", "--overwrite", prep=lambda c: c.user("@o.mp4", b"user video"))
vos_case(SF, "matte_over_user_file", "--matte", "@m.mkv", prep=lambda c: c.user("@m.mkv", b"user video"))
vos_case(SF, "rle_over_user_file", "--rle", "@rle.json", "--overwrite", prep=lambda c: c.user("@rle.json", b"user rle"))
vos_case(SF, "report_edited_after_run", "--report", "@r.json", "--overwrite", prior=["--report", "@r.json"],
         prep=lambda c: c.user("@r.json", b"edited"))
vos_case(SF, "report_is_symlink", "--report", "@r.json", "--overwrite",
         prep=lambda c: c.link("@r.json", c.user("@ext/t.json", b"target")))
vos_case(SF, "report_is_folder", "--report", "@r.json", prep=lambda c: c.user("@r.json/inside.txt", b"x"))
vos_case(SF, "report_same_as_overlay", "--report", "@x.json", "--rle", "@x.json")


def _slipped_into_parent_manifest(c, opt, name):
    c.prior("vos", c.vos_args(opt, c.p(name)))
    c.user(c.p("victim"), b"user")
    edit_manifest(c.p(), listed("victim", {"size": 1, "sha256": "0" * 64}))


# every single-file option
_SINGLE = {"report": ("--report", "r.json"), "rle": ("--rle", "rle.json"), "overlay": ("--overlay", "o.mp4"),
           "matte": ("--matte", "m.mkv")}
for _k, (_opt, _fn) in _SINGLE.items():
    _at = "@" + _fn
    for _ow in ([], ["--overwrite"]):
        _sfx = "_ow" if _ow else ""
        vos_case(SF, f"{_k}_user{_sfx}", _opt, _at, *_ow, prep=lambda c, _at=_at: c.user(_at, b"user"))
        vos_case(SF, f"{_k}_symlink{_sfx}", _opt, _at, *_ow, prep=lambda c, _at=_at: c.link(_at, c.user("@ext/t", b"target")))
        vos_case(SF, f"{_k}_dangling_symlink{_sfx}", _opt, _at, *_ow, prep=lambda c, _at=_at: c.link(_at, "@nowhere"))
        vos_case(SF, f"{_k}_edited{_sfx}", _opt, _at, *_ow, prior=[_opt, _at], prep=lambda c, _at=_at: c.user(_at, b"edited"))
        vos_case(SF, f"{_k}_fifo{_sfx}", _opt, _at, *_ow, prep=lambda c, _fn=_fn: os.mkfifo(c.p(_fn)), sub=True)
    vos_case(SF, f"{_k}_rerun_ok", _opt, _at, prior=[_opt, _at], expect="ok")
    vos_case(SF, f"{_k}_same_as_out", _opt, "@out")
    vos_case(SF, f"{_k}_is_folder", _opt, _at, "--overwrite", prep=lambda c, _fn=_fn: c.user(c.p(_fn, "inside"), b"x"))
    vos_case(SF, f"{_k}_slipped_into_parent_manifest", _opt, "@victim", "--overwrite",
             prep=lambda c, _opt=_opt, _fn=_fn: _slipped_into_parent_manifest(c, _opt, _fn))
    vos_case(SF, f"{_k}_inside_out", _opt, "@out/" + _fn, expect="ok_or_refuse")
    vos_case(SF, f"{_k}_inside_alpha", _opt, "@alpha/" + _fn, "--alpha", "@alpha", expect="ok_or_refuse")
    vos_case(SF, f"{_k}_hardlinked_elsewhere", _opt, _at, prior=[_opt, _at],
             prep=lambda c, _fn=_fn: (os.makedirs(c.p("ext")), os.link(c.p(_fn), c.p("ext", "keep"))), expect="ok_or_refuse")

for _a1, _a2 in [("--report", "--rle"), ("--overlay", "--matte"), ("--report", "--overlay"), ("--rle", "--matte")]:
    vos_case(SF, f"same_path{_a1}{_a2}", _a1, "@same.mkv", _a2, "@same.mkv")
vos_case(SF, "same_path_via_dotdot", "--report", "@x.json", "--rle", "@sub/../x.json", prep=lambda c: os.makedirs(c.p("sub")))
vos_case(SF, "same_path_via_symlinked_dir", "--report", "@real/x.json", "--rle", "@lnk/x.json",
         prep=lambda c: (os.makedirs(c.p("real")), c.link("@lnk", "@real")))
vos_case(SF, "parent_manifest_garbage", "--report", "@r.json", "--overwrite",
         prep=lambda c: (c.user("@" + MANIFEST, b"{{{"), c.user("@r.json", b"user")))


def _parent_manifest_outside_path(c):
    c.user(c.p("victim.json"), b"user")
    edit_manifest(c.p("sub"), listed("../victim.json", {"size": 4, "sha256": sha(b"user")}))


vos_case(SF, "parent_manifest_outside_path", "--report", "@sub/../victim.json", "--overwrite",
         prior=["--report", "@sub/r.json"], prep=_parent_manifest_outside_path)

# --------------------------------------------------------------------------- (3) outputs = inputs

OI = "out-is-input"
vos_case(OI, "out_is_video_file", out="@in/clip.mp4")


vos_case(OI, "report_is_video", "--report", "@in/clip.mp4", "--overwrite")
vos_case(OI, "overlay_is_mask", "--overlay", "@in/clip_mask.png", "--overwrite")
vos_case(OI, "out_is_frames_folder", out="@in/frames", video="@in/frames")

# more outputs that are inputs
vos_case(OI, "out_holds_video", out="@in")
vos_case(OI, "out_is_root_holding_inputs", out="@")
vos_case(OI, "out_via_dotdot", out="@in/frames/..")
vos_case(OI, "out_inside_frames", out="@in/frames/sub", video="@in/frames")
vos_case(OI, "out_is_mask_file", out="@in/clip_mask.png")
vos_case(OI, "alpha_is_frames", "--alpha", "@in/frames", video="@in/frames")
vos_case(OI, "alpha_holds_video", "--alpha", "@in")
vos_case(OI, "alpha_inside_frames", "--alpha", "@in/frames/a", video="@in/frames")
vos_case(OI, "report_is_mask", "--report", "@in/clip_mask.png", "--overwrite")
vos_case(OI, "rle_is_video", "--rle", "@in/clip.mp4", "--overwrite")
vos_case(OI, "matte_is_video", "--matte", "@in/clip.mp4", "--overwrite")
vos_case(OI, "overlay_is_video", "--overlay", "@in/clip.mp4", "--overwrite")
vos_case(OI, "report_inside_frames", "--report", "@in/frames/r.json", video="@in/frames")
vos_case(OI, "overlay_is_frame_png", "--overlay", "@in/frames/00000.png", video="@in/frames")
vos_case(OI, "out_symlink_to_inputs", out="@lnk", prep=lambda c: c.link("@lnk", "@in"))
vos_case(OI, "report_symlink_to_video", "--report", "@r.json", "--overwrite", prep=lambda c: c.link("@r.json", "@in/clip.mp4"))
vos_case(OI, "video_via_symlink_out_is_target_dir", out="@in", video="@v.mp4", prep=lambda c: c.link("@v.mp4", "@in/clip.mp4"))


def _masks_run(c, out, *extra):
    """vos.run with a --masks folder (a copy of the case's mask as frame 0) and `out`."""
    os.makedirs(c.p("masks"))
    shutil.copy(c.m, c.p("masks", "00000.png"))
    return c.call("vos", VM(c.v, c.p("masks"), c.p(out), *extra))


case(OI, "masks_dir_is_out")(lambda c: _masks_run(c, "masks", "--overwrite"))
case(OI, "out_inside_masks_dir")(lambda c: _masks_run(c, "masks/o"))
vos_case(OI, "report_is_config", "--config", "@cfg.yaml", "--report", "@cfg.yaml", "--overwrite",
         prep=lambda c: c.user("@cfg.yaml", b"device: cpu\n"))


@case(OI)
def out_is_our_previous_out_used_as_masks(c):
    c.prior("vos", c.vos_args())
    return c.call("vos", VM(c.v, c.p("out"), c.p("out")))
