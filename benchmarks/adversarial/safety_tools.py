"""The other-tools, bad-values and special-files cases of the second output pass (`safety`).

other-tools: seggpt.run, seggpt.tune, vos.demo and benchmarks.evaluate over user files, links, their
own inputs, FIFOs and empty paths. bad-values: vos.run's options out of range, garbage or empty.
special-files: FIFOs and devices as inputs (as subprocesses, so a tool that blocks is reported).
"""
from __future__ import annotations

import os
import shutil

import numpy as np
from PIL import Image

from .safety import case, run_vos


# --------------------------------------------------------------------------- (4) other tools
def _sg(c, *extra, out=None, query=None):
    return ["--prompt", c.frames + "/00000.png", c.m, query or c.frames + "/00001.png",
            "--out", out or c.p("sg"), "--weights", "small", *extra]


for _name in ["00001_mask.png", "00001_overlay.png"]:
    for _ow in (False, True):
        def _f(c, _name=_name, _ow=_ow):
            c.user(c.p("sg", _name), b"user")
            return dict(tool="seggpt", args=_sg(c, *(["--overwrite"] if _ow else [])))
        case("other-tools", f"seggpt_user_{_name}{'_ow' if _ow else ''}")(_f)


@case("other-tools")
def seggpt_rerun_ok(c):
    c.prior("seggpt", _sg(c))
    return dict(tool="seggpt", args=_sg(c), expect="ok")


@case("other-tools")
def seggpt_edited_output(c):
    c.prior("seggpt", _sg(c))
    c.user(c.p("sg", "00001_mask.png"), b"edited")
    return dict(tool="seggpt", args=_sg(c, "--overwrite"))


@case("other-tools")
def seggpt_symlink_output(c):
    t = c.user(c.p("ext", "t.png"), b"t")
    c.link(c.p("sg", "00001_mask.png"), t)
    return dict(tool="seggpt", args=_sg(c, "--overwrite"))


case("other-tools", "seggpt_out_holds_query")(lambda c: dict(tool="seggpt", args=_sg(c, out=c.frames)))
case("other-tools", "seggpt_out_is_query")(lambda c: dict(tool="seggpt", args=_sg(c, out=c.frames + "/00001.png")))
case("other-tools", "seggpt_out_is_root")(lambda c: dict(tool="seggpt", args=_sg(c, out=str(c.root))))
case("other-tools", "seggpt_empty_out")(lambda c: dict(tool="seggpt", args=[
    "--prompt", c.frames + "/00000.png", c.m, c.frames + "/00001.png", "--out", "", "--weights", "small"]))
case("other-tools", "seggpt_empty_query")(lambda c: dict(tool="seggpt", args=[
    "--prompt", c.frames + "/00000.png", c.m, "", "--out", c.p("sg"), "--weights", "small"]))
case("other-tools", "seggpt_empty_prompt_mask")(lambda c: dict(tool="seggpt", args=[
    "--prompt", c.frames + "/00000.png", "", c.frames + "/00001.png", "--out", c.p("sg"), "--weights", "small"]))
case("other-tools", "seggpt_same_query_twice")(lambda c: dict(tool="seggpt", args=_sg(c) + [c.frames + "/00001.png"],
                                                             expect="either"))


@case("other-tools")
def seggpt_two_queries_same_stem(c):
    os.makedirs(c.p("b"))
    shutil.copy(c.frames + "/00001.png", c.p("b", "00001.png"))
    return dict(tool="seggpt", args=_sg(c) + [c.p("b", "00001.png")], expect="either")


@case("other-tools")
def seggpt_fifo_query(c):
    os.mkfifo(c.p("q.png"))
    return dict(tool="seggpt", args=_sg(c, query=c.p("q.png")), sub=True)


@case("other-tools")
def seggpt_dev_zero_query(c):
    return dict(tool="seggpt", args=_sg(c, query="/dev/zero"), sub=True)


@case("other-tools")
def seggpt_prompt_file_is_out(c):
    return dict(tool="seggpt", args=["--prompt-file", c.p("sg", "p.safetensors"), c.frames + "/00001.png",
                                     "--out", c.p("sg"), "--weights", "small"])


def _tune(c, out, *extra):
    return ["--weights", "small", "--example", c.frames + "/00000.png", c.m, "--steps", "1", "--out", out, *extra]


case("other-tools", "tune_over_user_file")(lambda c: (c.user(c.p("p.safetensors"), b"user"),
                                                     dict(tool="tune", args=_tune(c, c.p("p.safetensors"))))[1])
case("other-tools", "tune_out_is_example")(lambda c: dict(tool="tune", args=_tune(c, c.frames + "/00000.png")))
case("other-tools", "tune_out_is_mask")(lambda c: dict(tool="tune", args=_tune(c, c.m)))
case("other-tools", "tune_out_is_folder")(lambda c: dict(tool="tune", args=_tune(c, c.frames)))
case("other-tools", "tune_out_empty")(lambda c: dict(tool="tune", args=_tune(c, "")))
case("other-tools", "tune_steps_zero")(lambda c: dict(tool="tune", args=_tune(c, c.p("p.safetensors"), "--steps", "0")))
case("other-tools", "tune_steps_negative")(lambda c: dict(tool="tune", args=_tune(c, c.p("p.safetensors"), "--steps", "-1")))
case("other-tools", "tune_lr_nan")(lambda c: dict(tool="tune", args=_tune(c, c.p("p.safetensors"), "--lr", "nan")))


@case("other-tools")
def tune_symlink_out(c):
    t = c.user(c.p("ext", "t.safetensors"), b"t")
    c.link(c.p("p.safetensors"), t)
    return dict(tool="tune", args=_tune(c, c.p("p.safetensors")))


@case("other-tools")
def tune_fifo_example(c):
    os.mkfifo(c.p("ex.png"))
    a = _tune(c, c.p("p.safetensors"))
    a[3] = c.p("ex.png")
    return dict(tool="tune", args=a, sub=True)


@case("other-tools")
def tune_rerun_ok(c):
    c.prior("tune", _tune(c, c.p("p.safetensors")))
    return dict(tool="tune", args=_tune(c, c.p("p.safetensors")), expect="ok")


case("other-tools", "demo_user_clip")(lambda c: (c.user(c.p("dm", "clip.mp4"), b"user"),
                                                dict(tool="demo", args=[c.p("dm")]))[1])
case("other-tools", "demo_user_mask")(lambda c: (c.user(c.p("dm", "clip_mask.png"), b"user"),
                                                dict(tool="demo", args=[c.p("dm")]))[1])
case("other-tools", "demo_dir_is_file")(lambda c: (c.user(c.p("dm"), b"user"), dict(tool="demo", args=[c.p("dm")]))[1])
case("other-tools", "demo_empty")(lambda c: dict(tool="demo", args=[""]))
case("other-tools", "demo_into_inputs")(lambda c: dict(tool="demo", args=[str(c.inp)]))


@case("other-tools")
def demo_rerun_ok(c):
    c.prior("demo", [c.p("dm")])
    return dict(tool="demo", args=[c.p("dm")], expect="ok")


@case("other-tools")
def demo_symlink_clip(c):
    t = c.user(c.p("ext", "t.mp4"), b"t")
    c.link(c.p("dm", "clip.mp4"), t)
    return dict(tool="demo", args=[c.p("dm")])


def _ev(c, *extra, results=None, root=None):
    r, res = c.davis()
    return ["--dataset", "davis2017", "--root", root or r, "--results", results or res, *extra]


for _name in ["global_results-val.csv", "per-sequence_results-val.csv"]:
    for _ow in (False, True):
        def _f(c, _name=_name, _ow=_ow):
            a = _ev(c, *(["--overwrite"] if _ow else []))
            c.user(c.p("results", _name), b"user csv")
            return dict(tool="eval", args=a)
        case("other-tools", f"eval_user_{_name}{'_ow' if _ow else ''}")(_f)

        def _g(c, _name=_name, _ow=_ow):
            a = _ev(c, *(["--overwrite"] if _ow else []))
            t = c.user(c.p("ext", "t.csv"), b"t")
            c.link(c.p("results", _name), t)
            return dict(tool="eval", args=a)
        case("other-tools", f"eval_symlink_{_name}{'_ow' if _ow else ''}")(_g)


@case("other-tools")
def eval_rerun_ok(c):
    c.prior("eval", _ev(c))
    return dict(tool="eval", args=_ev(c), expect="ok")


@case("other-tools")
def eval_edited_csv(c):
    c.prior("eval", _ev(c))
    c.user(c.p("results", "global_results-val.csv"), b"edited")
    return dict(tool="eval", args=_ev(c, "--overwrite"))


case("other-tools", "eval_results_is_root")(lambda c: dict(tool="eval", args=_ev(c, results=c.davis()[0])))
case("other-tools", "eval_results_is_annotations")(lambda c: dict(tool="eval", args=_ev(
    c, results=os.path.join(c.davis()[0], "Annotations", "480p")), expect="either"))
case("other-tools", "eval_empty_results")(lambda c: dict(tool="eval", args=["--dataset", "davis2017", "--root",
                                                                           c.davis()[0], "--results", ""]))
case("other-tools", "eval_empty_root")(lambda c: dict(tool="eval", args=["--dataset", "davis2017", "--root", "",
                                                                        "--results", c.davis()[1]]))
case("other-tools", "eval_missing_root")(lambda c: dict(tool="eval", args=_ev(c, root=c.p("nope"))))


# --------------------------------------------------------------------------- (5) bad values


@case("bad-values")
def empty_video(c):
    a = c.vos_args()
    a[0] = ""
    return dict(tool="vos", args=a)


@case("bad-values")
def empty_out(c):
    return dict(tool="vos", args=c.vos_args(out=""))


@case("bad-values")
def soft_width_zero(c):
    return dict(tool="vos", args=c.vos_args("--soft", "--soft-width", "0"))


@case("bad-values")
def soft_width_big(c):
    return dict(tool="vos", args=c.vos_args("--soft", "--soft-width", "1.5"))


@case("bad-values")
def image_as_video(c):
    a = c.vos_args()
    a[0] = c.m
    return dict(tool="vos", args=a, mentions=["seggpt.run"])


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
    "rle_empty": ("--rle", ""), "matte_bad_ext": ("--matte", "/tmp/x.txt"), "memory_stride_zero": ("--memory-stride", "0"),
    "adapt_negative": ("--adapt-steps", "-1"), "end_text": ("--end", "two"),
}
for _k, _v in _BAD.items():
    def _f(c, _v=_v):
        v = _v
        if v[0] == "--matte" and v[1].startswith("/tmp"):
            v = (v[0], c.p("x.txt"))
        return dict(tool="vos", args=c.vos_args(*v, *(["--soft"] if "soft" in v[0] else [])))
    case("bad-values", _k)(_f)

for _k, _w in {"soft_width_min_ok": "0.001", "soft_width_max_ok": "1"}.items():
    case("bad-values", _k)(lambda c, _w=_w: dict(tool="vos", args=c.vos_args("--soft", "--soft-width", _w, "--alpha",
                                                                          c.p("alpha")), expect="ok"))


@case("bad-values")
def weights_garbage_user_file(c):
    w = c.user(c.p("w.safetensors"), b"garbage")
    return dict(tool="vos", args=c.vos_args("--weights", w))


@case("bad-values")
def mask_wrong_size(c):
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(c.p("small.png"))
    return run_vos(c, mask=c.p("small.png"))


@case("bad-values")
def mask_text_file(c):
    return run_vos(c, mask=c.user(c.p("m.png"), b"not a png"))


@case("bad-values")
def mask_all_zero(c):
    Image.open(c.m).point(lambda v: 0).save(c.p("z.png"))
    return run_vos(c, mask=c.p("z.png"))


@case("bad-values")
def video_text_file(c):
    return run_vos(c, video=c.user(c.p("v.mp4"), b"not a video"))


case("bad-values", "video_missing")(lambda c: run_vos(c, video=c.p("nope.mp4")))
case("bad-values", "video_empty_dir")(lambda c: (os.makedirs(c.p("empty")), run_vos(c, video=c.p("empty")))[1])
case("bad-values", "mask_empty")(lambda c: run_vos(c, mask=""))
case("bad-values", "masks_empty")(lambda c: dict(tool="vos", args=[c.v, "--masks", "", "--weights", "small", "--out", c.p("out")]))
case("bad-values", "masks_missing")(lambda c: dict(tool="vos", args=[c.v, "--masks", c.p("nope"), "--weights", "small",
                                                                    "--out", c.p("out")]))
case("bad-values", "image_frame_as_video")(lambda c: dict(
    tool="vos", args=run_vos(c, video=c.frames + "/00000.png")["args"], mentions=["seggpt.run"]))


# --------------------------------------------------------------------------- (6) special files


@case("special-files")
def fifo_as_video(c):
    f = c.p("fifo.mp4")
    os.mkfifo(f)
    a = c.vos_args()
    a[0] = f
    return dict(tool="vos", args=a, sub=True, timeout=60)


@case("special-files")
def dev_null_as_mask(c):
    a = c.vos_args()
    a[2] = "/dev/null"
    return dict(tool="vos", args=a)


# more special files
def _sub(spec):
    spec["sub"] = True
    return spec


case("special-files", "fifo_as_mask")(lambda c: (os.mkfifo(c.p("f.png")), _sub(run_vos(c, mask=c.p("f.png"))))[1])
case("special-files", "fifo_as_config")(lambda c: (os.mkfifo(c.p("f.yaml")), _sub(run_vos(c, extra=("--config", c.p("f.yaml")))))[1])
case("special-files", "fifo_as_weights")(lambda c: (os.mkfifo(c.p("f.pt")), _sub(run_vos(c, extra=("--weights", c.p("f.pt")))))[1])
case("special-files", "fifo_in_frames")(lambda c: (os.mkfifo(c.p("in", "frames", "00003.png")), _sub(run_vos(c, video=c.frames)) | {"expect": "either"})[1])
case("special-files", "fifo_in_masks_dir")(lambda c: (os.makedirs(c.p("mk")), os.mkfifo(c.p("mk", "00000.png")), _sub(dict(
    tool="vos", args=[c.v, "--masks", c.p("mk"), "--weights", "small", "--quiet", "--end", "2", "--adapt-steps", "0",
                      "--out", c.p("out")])))[2])
case("special-files", "dev_zero_as_video")(lambda c: _sub(run_vos(c, video="/dev/zero")))
case("special-files", "dev_zero_as_mask")(lambda c: _sub(run_vos(c, mask="/dev/zero")))
case("special-files", "dev_null_as_video")(lambda c: run_vos(c, video="/dev/null"))
case("special-files", "dev_null_as_config")(lambda c: run_vos(c, extra=("--config", "/dev/null")) | {"expect": "either"})
case("special-files", "dev_zero_as_weights")(lambda c: _sub(run_vos(c, extra=("--weights", "/dev/zero"))))
