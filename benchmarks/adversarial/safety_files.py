"""The single-file and out-is-input cases of the second output pass (`safety`).

single-file: every single-file output (--report, --rle, --overlay, --matte) over user files, links,
dangling links, edited outputs of ours, FIFOs and folders, the same path given twice, crafted parent
manifests. out-is-input: an output naming the video, the mask, the frames or masks folder, the config,
directly, through `..` or a symlink.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from seggpt.outputs import MANIFEST

from .safety import case, run_vos, sha


# --------------------------------------------------------------------------- (2) single files


@case("single-file")
def report_over_user_file(c):
    c.user(c.p("r.json"), b"user report")
    return dict(tool="vos", args=c.vos_args("--report", c.p("r.json")))


@case("single-file")
def report_over_user_file_overwrite(c):
    c.user(c.p("r.json"), b"user report")
    return dict(tool="vos", args=c.vos_args("--report", c.p("r.json"), "--overwrite"))


@case("single-file")
def overlay_over_user_file(c):
    c.user(c.p("o.mp4"), b"user video")
    return dict(tool="vos", args=c.vos_args("--overlay", c.p("o.mp4"), "--overwrite"))


@case("single-file")
def matte_over_user_file(c):
    c.user(c.p("m.mkv"), b"user video")
    return dict(tool="vos", args=c.vos_args("--matte", c.p("m.mkv")))


@case("single-file")
def rle_over_user_file(c):
    c.user(c.p("rle.json"), b"user rle")
    return dict(tool="vos", args=c.vos_args("--rle", c.p("rle.json"), "--overwrite"))


@case("single-file")
def report_rerun_ok(c):
    c.prior("vos", c.vos_args("--report", c.p("r.json")))
    return dict(tool="vos", args=c.vos_args("--report", c.p("r.json")), expect="ok")


@case("single-file")
def report_edited_after_run(c):
    c.prior("vos", c.vos_args("--report", c.p("r.json")))
    c.user(c.p("r.json"), b"edited")
    return dict(tool="vos", args=c.vos_args("--report", c.p("r.json"), "--overwrite"))


@case("single-file")
def report_is_symlink(c):
    t = c.user(c.p("ext", "t.json"), b"target")
    c.link(c.p("r.json"), t)
    return dict(tool="vos", args=c.vos_args("--report", c.p("r.json"), "--overwrite"))


@case("single-file")
def report_is_folder(c):
    c.user(c.p("r.json", "inside.txt"), b"x")
    return dict(tool="vos", args=c.vos_args("--report", c.p("r.json")))


@case("single-file")
def report_same_as_overlay(c):
    return dict(tool="vos", args=c.vos_args("--report", c.p("x.json"), "--rle", c.p("x.json")))


# every single-file option
_SINGLE = {"report": ("--report", "r.json"), "rle": ("--rle", "rle.json"), "overlay": ("--overlay", "o.mp4"),
           "matte": ("--matte", "m.mkv")}
for _k, (_opt, _fn) in _SINGLE.items():
    for _ow in (False, True):
        ow = ["--overwrite"] if _ow else []
        sfx = "_ow" if _ow else ""

        def _a(c, _opt=_opt, _fn=_fn, ow=ow):
            c.user(c.p(_fn), b"user")
            return dict(tool="vos", args=c.vos_args(_opt, c.p(_fn), *ow))
        case("single-file", f"{_k}_user{sfx}")(_a)

        def _b(c, _opt=_opt, _fn=_fn, ow=ow):
            t = c.user(c.p("ext", "t"), b"target")
            c.link(c.p(_fn), t)
            return dict(tool="vos", args=c.vos_args(_opt, c.p(_fn), *ow))
        case("single-file", f"{_k}_symlink{sfx}")(_b)

        def _c(c, _opt=_opt, _fn=_fn, ow=ow):
            c.link(c.p(_fn), c.p("nowhere"))
            return dict(tool="vos", args=c.vos_args(_opt, c.p(_fn), *ow))
        case("single-file", f"{_k}_dangling_symlink{sfx}")(_c)

        def _d(c, _opt=_opt, _fn=_fn, ow=ow):
            c.prior("vos", c.vos_args(_opt, c.p(_fn)))
            c.user(c.p(_fn), b"edited")
            return dict(tool="vos", args=c.vos_args(_opt, c.p(_fn), *ow))
        case("single-file", f"{_k}_edited{sfx}")(_d)

        def _e(c, _opt=_opt, _fn=_fn, ow=ow):
            os.mkfifo(c.p(_fn))
            return dict(tool="vos", args=c.vos_args(_opt, c.p(_fn), *ow), sub=True)
        case("single-file", f"{_k}_fifo{sfx}")(_e)

    def _g(c, _opt=_opt, _fn=_fn):
        c.prior("vos", c.vos_args(_opt, c.p(_fn)))
        return dict(tool="vos", args=c.vos_args(_opt, c.p(_fn)), expect="ok")
    case("single-file", f"{_k}_rerun_ok")(_g)

    def _h(c, _opt=_opt):
        return dict(tool="vos", args=c.vos_args(_opt, c.p("out")))
    case("single-file", f"{_k}_same_as_out")(_h)

    def _i(c, _opt=_opt, _fn=_fn):
        c.user(c.p(_fn, "inside"), b"x")
        return dict(tool="vos", args=c.vos_args(_opt, c.p(_fn), "--overwrite"))
    case("single-file", f"{_k}_is_folder")(_i)

    def _j(c, _opt=_opt, _fn=_fn):
        c.prior("vos", c.vos_args(_opt, c.p(_fn)))
        m = json.loads(Path(c.p(MANIFEST)).read_text())
        c.user(c.p("victim"), b"user")
        m["files"]["victim"] = {"size": 1, "sha256": "0" * 64}
        Path(c.p(MANIFEST)).write_text(json.dumps(m))
        return dict(tool="vos", args=c.vos_args(_opt, c.p("victim"), "--overwrite"))
    case("single-file", f"{_k}_slipped_into_parent_manifest")(_j)

    def _l(c, _opt=_opt, _fn=_fn):
        return dict(tool="vos", args=c.vos_args(_opt, c.p("out", _fn)), expect="either")
    case("single-file", f"{_k}_inside_out")(_l)

    def _m(c, _opt=_opt, _fn=_fn):
        return dict(tool="vos", args=c.vos_args(_opt, c.p("alpha", _fn), "--alpha", c.p("alpha")), expect="either")
    case("single-file", f"{_k}_inside_alpha")(_m)

    def _n(c, _opt=_opt, _fn=_fn):
        c.prior("vos", c.vos_args(_opt, c.p(_fn)))
        os.makedirs(c.p("ext"))
        os.link(c.p(_fn), c.p("ext", "keep"))
        return dict(tool="vos", args=c.vos_args(_opt, c.p(_fn)), expect="either")
    case("single-file", f"{_k}_hardlinked_elsewhere")(_n)

for _a1, _a2 in [("--report", "--rle"), ("--overlay", "--matte"), ("--report", "--overlay"), ("--rle", "--matte")]:
    def _f(c, _a1=_a1, _a2=_a2):
        return dict(tool="vos", args=c.vos_args(_a1, c.p("same.mkv"), _a2, c.p("same.mkv")))
    case("single-file", f"same_path{_a1}{_a2}")(_f)


@case("single-file")
def same_path_via_dotdot(c):
    os.makedirs(c.p("sub"))
    return dict(tool="vos", args=c.vos_args("--report", c.p("x.json"), "--rle", c.p("sub", "..", "x.json")))


@case("single-file")
def same_path_via_symlinked_dir(c):
    os.makedirs(c.p("real"))
    c.link(c.p("lnk"), c.p("real"))
    return dict(tool="vos", args=c.vos_args("--report", c.p("real", "x.json"), "--rle", c.p("lnk", "x.json")))


@case("single-file")
def parent_manifest_garbage(c):
    c.user(c.p(MANIFEST), b"{{{")
    c.user(c.p("r.json"), b"user")
    return dict(tool="vos", args=c.vos_args("--report", c.p("r.json"), "--overwrite"))


@case("single-file")
def parent_manifest_outside_path(c):
    c.prior("vos", c.vos_args("--report", c.p("sub", "r.json")))
    c.user(c.p("victim.json"), b"user")
    m = json.loads(Path(c.p("sub", MANIFEST)).read_text())
    m["files"]["../victim.json"] = {"size": 4, "sha256": sha(b"user")}
    Path(c.p("sub", MANIFEST)).write_text(json.dumps(m))
    return dict(tool="vos", args=c.vos_args("--report", c.p("sub", "..", "victim.json"), "--overwrite"))


# --------------------------------------------------------------------------- (3) outputs = inputs


@case("out-is-input")
def out_is_video_file(c):
    return dict(tool="vos", args=c.vos_args(out=c.v))


@case("out-is-input")
def report_is_video(c):
    return dict(tool="vos", args=c.vos_args("--report", c.v, "--overwrite"))


@case("out-is-input")
def overlay_is_mask(c):
    return dict(tool="vos", args=c.vos_args("--overlay", c.m, "--overwrite"))


@case("out-is-input")
def out_is_frames_folder(c):
    a = c.vos_args(out=c.frames)
    a[0] = c.frames
    return dict(tool="vos", args=a)


# more outputs that are inputs
case("out-is-input", "out_holds_video")(lambda c: run_vos(c, out=str(c.inp)))
case("out-is-input", "out_is_root_holding_inputs")(lambda c: run_vos(c, out=str(c.root)))
case("out-is-input", "out_via_dotdot")(lambda c: run_vos(c, out=c.p("in", "frames", "..")))
case("out-is-input", "out_inside_frames")(lambda c: run_vos(c, out=c.p("in", "frames", "sub"), video=c.frames))
case("out-is-input", "out_is_mask_file")(lambda c: run_vos(c, out=c.m))
case("out-is-input", "alpha_is_frames")(lambda c: run_vos(c, extra=("--alpha", c.frames), video=c.frames))
case("out-is-input", "alpha_holds_video")(lambda c: run_vos(c, extra=("--alpha", str(c.inp))))
case("out-is-input", "alpha_inside_frames")(lambda c: run_vos(c, extra=("--alpha", c.p("in", "frames", "a")), video=c.frames))
case("out-is-input", "report_is_mask")(lambda c: run_vos(c, extra=("--report", c.m, "--overwrite")))
case("out-is-input", "rle_is_video")(lambda c: run_vos(c, extra=("--rle", c.v, "--overwrite")))
case("out-is-input", "matte_is_video")(lambda c: run_vos(c, extra=("--matte", c.v, "--overwrite")))
case("out-is-input", "overlay_is_video")(lambda c: run_vos(c, extra=("--overlay", c.v, "--overwrite")))
case("out-is-input", "report_inside_frames")(lambda c: run_vos(c, extra=("--report", c.p("in", "frames", "r.json")), video=c.frames))
case("out-is-input", "overlay_is_frame_png")(lambda c: run_vos(c, extra=("--overlay", c.p("in", "frames", "00000.png")), video=c.frames))


@case("out-is-input")
def out_symlink_to_inputs(c):
    c.link(c.p("lnk"), str(c.inp))
    return run_vos(c, out=c.p("lnk"))


@case("out-is-input")
def report_symlink_to_video(c):
    c.link(c.p("r.json"), c.v)
    return run_vos(c, extra=("--report", c.p("r.json"), "--overwrite"))


@case("out-is-input")
def video_via_symlink_out_is_target_dir(c):
    c.link(c.p("v.mp4"), c.v)
    return run_vos(c, out=str(c.inp), video=c.p("v.mp4"))


@case("out-is-input")
def masks_dir_is_out(c):
    os.makedirs(c.p("masks"))
    shutil.copy(c.m, c.p("masks", "00000.png"))
    a = [c.v, "--masks", c.p("masks"), "--weights", "small", "--quiet", "--end", "2", "--adapt-steps", "0",
         "--out", c.p("masks"), "--overwrite"]
    return dict(tool="vos", args=a)


@case("out-is-input")
def out_inside_masks_dir(c):
    os.makedirs(c.p("masks"))
    shutil.copy(c.m, c.p("masks", "00000.png"))
    a = [c.v, "--masks", c.p("masks"), "--weights", "small", "--quiet", "--end", "2", "--adapt-steps", "0",
         "--out", c.p("masks", "o")]
    return dict(tool="vos", args=a)


@case("out-is-input")
def report_is_config(c):
    cfg = c.user(c.p("cfg.yaml"), b"device: cpu\n")
    return run_vos(c, extra=("--config", cfg, "--report", cfg, "--overwrite"))


@case("out-is-input")
def out_is_our_previous_out_used_as_masks(c):
    c.prior("vos", c.vos_args())
    a = [c.v, "--masks", c.p("out"), "--weights", "small", "--quiet", "--end", "2", "--adapt-steps", "0",
         "--out", c.p("out")]
    return dict(tool="vos", args=a)
