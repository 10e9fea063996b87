"""Cases 5 and 6 of the first output pass (`benchmarks.adversarial_outputs`): bad values and empty strings,
and special files.

5: each tool's options given empty, out-of-range, garbage or missing values (one line, exit 2, nothing
written). 6: FIFOs, sockets, /dev/zero and /dev/null as inputs and outputs; these run as subprocesses
with a timeout, so a tool that blocks on one is reported instead of hanging the pass.
"""
from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import Callable, List, Optional

from .output_pass import EV, SR, VM, TRAIN, TUNE, VR, B, BV, G, Outcome, Scene, add

C5, C6 = "5-bad-values", "6-special-files"


# ---------------------------------------------------------------------------- 5. bad values

def bad(title: str, module: str, argv_fn: Callable[[Scene], List[str]], expect: str = "refuse",
        must: Optional[str] = None, category: str = C5) -> None:
    """A case of `module` with `argv_fn(S)` beside a user's keep.txt; special files run as a subprocess."""
    def fn(S: Scene) -> Outcome:
        S.mark(S.user("keep.txt"))
        S.mentions = [must] if must else []
        return S.call(module, argv_fn(S), sub=category == C6)
    add(category, f"{module} {title}", expect, fn)


for _flag in ["--out", "--alpha", "--overlay", "--report", "--rle", "--matte", "--first-mask", "--weights",
              "--config", "--masks", "--names", "--soft-width", "--end", "--fps", "--device"]:
    if _flag in ("--first-mask", "--masks"):  # the mask options, empty, with no other mask
        bad(f"{_flag} ''", "vos.run", lambda S, f=_flag: [B("clip.mp4"), f, "", "--weights", "small", "--out", S.p("o")])
    else:
        bad(f"{_flag} ''", "vos.run",
            lambda S, f=_flag: VR(S.p("o"), f, "") if f != "--out" else VR(None, "--out", ""),
            expect="ok_or_refuse" if _flag == "--names" else "refuse")
bad("video ''", "vos.run", lambda S: VR(S.p("o"), video=""))
bad("video '   '", "vos.run", lambda S: VR(S.p("o"), video="   "))
bad("--out '  '", "vos.run", lambda S: VR(None, "--out", "  "))
for _w in ["0", "0.0009", "1.0001", "-1", "nan", "inf", "-inf", "abc", "1e-4", "2", "0.001", "1"]:
    bad(f"--soft-width {_w}" + (" (bound)" if _w in ("0.001", "1") else ""), "vos.run",
        lambda S, w=_w: VR(S.p("o"), "--soft", "--alpha", S.p("a"), "--soft-width", w),
        expect="ok" if _w in ("0.001", "1") else "refuse")
for _title, _extra in [("--memory 0", ["--memory", "0"]), ("--names 'garbage'", ["--names", "garbage"]),
                       ("--names '1='", ["--names", "1="]), ("--names '=x'", ["--names", "=x"]),
                       ("--names '999=x'", ["--names", "999=x"]),
                       ("--config missing.yaml", ["--config", "/nonexistent/x.yaml"]),
                       ("--overlay x.txt", ["--overlay", "/tmp/adv-never/x.txt"]),
                       ("--matte x.mp4", ["--matte", "/tmp/adv-never/x.mp4"]), ("unknown option", ["--bogus"])]:
    bad(_title, "vos.run", (lambda e: lambda S: VR(S.p("o"), *e))(_extra),
        expect="ok_or_refuse" if _title in ("--memory 0",) else "refuse")
bad("video is an image", "vos.run", lambda S: VR(S.p("o"), video=B("img.png")), must="seggpt.run")
bad("video missing", "vos.run", lambda S: VR(S.p("o"), video="/nonexistent/v.mp4"))
bad("video is an empty file", "vos.run", lambda S: VR(S.p("o"), video=S.user("e.mp4", b"")))
bad("video is garbage .mp4", "vos.run", lambda S: VR(S.p("o"), video=S.user("g.mp4", os.urandom(5000))))
bad("video is a text file", "vos.run", lambda S: VR(S.p("o"), video=B("notes.txt")))
bad("video is an empty folder", "vos.run", lambda S: (os.mkdir(S.p("emptyf")), VR(S.p("o"), video=S.p("emptyf")))[-1])
bad("mask missing", "vos.run", lambda S: VR(S.p("o"), mask="/nonexistent/m.png"))
bad("mask is a text file", "vos.run", lambda S: VR(S.p("o"), mask=B("notes.txt")))
bad("mask is the video", "vos.run", lambda S: VR(S.p("o"), mask=B("clip.mp4")))
bad("mask all zero", "vos.run", lambda S: VR(S.p("o"), mask=_zero_mask(S)))
bad("mask wrong size", "vos.run", lambda S: VR(S.p("o"), mask=B("small_mask.png")))
bad("mask is a folder", "vos.run", lambda S: VR(S.p("o"), mask=B("frames")))
bad("--weights missing file", "vos.run", lambda S: VR(S.p("o"), "--weights", "/nonexistent/w.safetensors"))
bad("--weights a text file", "vos.run", lambda S: VR(S.p("o"), "--weights", B("notes.txt")))
bad("--weights garbage .safetensors", "vos.run", lambda S: VR(S.p("o"), "--weights", S.user("g.safetensors", os.urandom(3000))))
bad("--prompt '' ''", "seggpt.run", lambda S: SR(S.p("o"), prompt="", mask="", query=B("img.png")))
bad("query ''", "seggpt.run", lambda S: SR(S.p("o"), query=""))
bad("--out ''", "seggpt.run", lambda S: SR(""))
bad("query missing", "seggpt.run", lambda S: SR(S.p("o"), query="/nonexistent/q.png"))
bad("query is a text file", "seggpt.run", lambda S: SR(S.p("o"), query=B("notes.txt")))
bad("--prompt-file garbage", "seggpt.run",
    lambda S: ["--prompt-file", S.user("g.safetensors", b"junk"), B("img.png"), "--out", S.p("o"), "--weights",
               "small"])
bad("no --prompt at all", "seggpt.run", lambda S: [B("img.png"), "--out", S.p("o"), "--weights", "small"])
bad("--weights ''", "seggpt.run", lambda S: SR(S.p("o"), "--weights", ""))
bad("--steps 0", "seggpt.tune", lambda S: TUNE(S.p("p.safetensors"))[:-3] + ["--steps", "0", "--out", S.p("p.safetensors")])
bad("--example '' ''", "seggpt.tune", lambda S: ["--weights", "small", "--example", "", "", "--out", S.p("p.safetensors")])
bad("--out ''", "seggpt.tune", lambda S: TUNE(""))
bad("--weights ''", "seggpt.tune", lambda S: ["--weights", "", "--example", B("small_img.png"), B("small_mask.png"),
                                              "--out", S.p("p.safetensors")])
# an option and its value, the case named after them
for _module, _argv, _values in [
    ("vos.run", lambda S, *a: VR(S.p("o"), *a),
     [("--end", "0"), ("--end", "-1"), ("--end", "abc"), ("--start", "2", "--end", "1"), ("--start", "-5"),
      ("--start", "99"), ("--fps", "0"), ("--fps", "nan"), ("--memory", "-3"), ("--memory-stride", "0"),
      ("--threads", "0"), ("--batch-frames", "0"), ("--lost-after", "-1"), ("--set", "nokey"),
      ("--set", "engine.memory=abc"), ("--set", "bogus.key=1"), ("--mask-frame", "99"), ("--mask-frame", "-1"),
      ("--device", "bogus"), ("--device", "cuda:99"), ("--adapt-steps", "-1")]),
    ("seggpt.run", lambda S, *a: SR(S.p("o"), *a), [("--batch-size", "0"), ("--batch-size", "-2")]),
    ("seggpt.tune", lambda S, *a: TUNE(S.p("p.safetensors"), *a),
     [("--steps", "-1"), ("--lr", "nan"), ("--lr", "-1"), ("--batch-size", "0")]),
    ("vos.demo", lambda S, *a: [*a, S.p("d")], [("--frames", "0"), ("--frames", "-1"), ("--objects", "0"),
                                                ("--objects", "1000")]),
    ("training", lambda S, a: TRAIN(S.p("tr"), a), [("steps=-1",), ("steps=abc",), ("lr=nan",)]),
]:
    for _v in _values:
        bad(" ".join(_v), _module, lambda S, f=_argv, v=_v: f(S, *v))
bad("DIR ''", "vos.demo", lambda S: [""])
bad("--root ''", "benchmarks.vos", lambda S: BV(S.p("o"), root=""))
bad("--out ''", "benchmarks.vos", lambda S: BV(""))
bad("--root missing", "benchmarks.vos", lambda S: BV(S.p("o"), root="/nonexistent/davis"))
bad("--sequences unknown", "benchmarks.vos", lambda S: BV(S.p("o"), "--sequences", "nope"))
bad("--resume and --overwrite", "benchmarks.vos", lambda S: BV(S.p("o"), "--resume", "--overwrite"), expect="ok_or_refuse")
bad("--root ''", "benchmarks.evaluate", lambda S: EV(S.p("o"), root=""))
bad("--results ''", "benchmarks.evaluate", lambda S: EV(""))
bad("--results missing", "benchmarks.evaluate", lambda S: EV("/nonexistent/res"))
bad("--processes -1", "benchmarks.evaluate", lambda S: EV(S.p("o"), "--processes", "-1"))
bad("out_dir=''", "training", lambda S: TRAIN(""))
bad("unknown key", "training", lambda S: TRAIN(S.p("tr"), "bogus_key=1"))
bad("--config missing", "training", lambda S: ["--config", "/nonexistent.yaml", f"out_dir={S.p('tr')}"])
bad("--resume with nothing to resume", "training", lambda S: TRAIN(S.p("tr"), "--resume"))


def _zero_mask(S: Scene) -> str:
    import numpy as np
    from PIL import Image

    p = S.p("zero.png")
    Image.fromarray(np.zeros(G["size"], np.uint8)).save(p)
    return p


# ---------------------------------------------------------------------------- 6. special files

special = functools.partial(bad, category=C6)  # a special-files case: run as a subprocess


def fifo(S: Scene, rel: str) -> str:
    p = S.p(rel)
    Path(p).parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(p)
    return p


def sock(S: Scene, rel: str) -> str:
    p = S.p(rel)
    s = socket.socket(socket.AF_UNIX)
    s.bind(p)
    G.setdefault("socks", []).append(s)
    return p


special("video is a FIFO", "vos.run", lambda S: VR(S.p("o"), video=fifo(S, "v.mp4")))
special("mask is a FIFO", "vos.run", lambda S: VR(S.p("o"), mask=fifo(S, "m.png")))
special("video is /dev/zero", "vos.run", lambda S: VR(S.p("o"), video="/dev/zero"))
special("mask is /dev/zero", "vos.run", lambda S: VR(S.p("o"), mask="/dev/zero"))
special("video is /dev/null", "vos.run", lambda S: VR(S.p("o"), video="/dev/null"))
special("mask is /dev/null", "vos.run", lambda S: VR(S.p("o"), mask="/dev/null"))
special("video is a socket", "vos.run", lambda S: VR(S.p("o"), video=sock(S, "s.mp4")))
special("--weights is a FIFO", "vos.run", lambda S: VR(S.p("o"), "--weights", fifo(S, "w.safetensors")))
special("--config is a FIFO", "vos.run", lambda S: VR(S.p("o"), "--config", fifo(S, "c.yaml")))
special("--config is /dev/zero", "vos.run", lambda S: VR(S.p("o"), "--config", "/dev/zero"))
special("frames folder holds a FIFO frame", "vos.run",
        lambda S: (S.copy(G["base"] / "frames", "fr"), os.unlink(S.p("fr/00001.png")), fifo(S, "fr/00001.png"),
                   VR(S.p("o"), video=S.p("fr")))[-1], expect="ok_or_refuse")
special("--masks folder holds a FIFO", "vos.run",
        lambda S: VM(B("clip.mp4"), os.path.dirname(fifo(S, "mk/00000.png")), S.p("o")))
special("--report is a FIFO", "vos.run", lambda S: VR(S.p("o"), "--report", fifo(S, "r.json")))
special("--overlay is a FIFO", "vos.run", lambda S: VR(S.p("o"), "--overlay", fifo(S, "ov.mp4")))
special("--rle is /dev/null", "vos.run", lambda S: VR(S.p("o"), "--rle", "/dev/null"), expect="ok_or_refuse")
special("--out holds a FIFO", "vos.run", lambda S: (fifo(S, "o/00000.png"), VR(S.p("o"), "--overwrite"))[-1])
special("query is a FIFO", "seggpt.run", lambda S: SR(S.p("o"), query=fifo(S, "q.png")))
special("prompt image is /dev/zero", "seggpt.run", lambda S: SR(S.p("o"), prompt="/dev/zero", query=B("img.png")))
special("prompt mask is a FIFO", "seggpt.run", lambda S: SR(S.p("o"), mask=fifo(S, "m.png"), query=B("img.png")))
special("--prompt-file is a FIFO", "seggpt.run",
        lambda S: ["--prompt-file", fifo(S, "p.safetensors"), B("img.png"), "--out", S.p("o"), "--weights", "small"])
special("example is a FIFO", "seggpt.tune",
        lambda S: ["--weights", "small", "--example", fifo(S, "e.png"), B("small_mask.png"), "--out",
                   S.p("p.safetensors")])
special("--out is a FIFO", "seggpt.tune", lambda S: TUNE(fifo(S, "p.safetensors")))
special("--config is a FIFO", "training", lambda S: ["--config", fifo(S, "c.yaml"), f"out_dir={S.p('tr')}"])
special("--root annotation is a FIFO", "benchmarks.vos",
        lambda S: (S.davis(results=False), os.unlink(S.p("davis/Annotations/480p/synth-000/00000.png")),
                   fifo(S, "davis/Annotations/480p/synth-000/00000.png"), S.mark(S.p("davis")),
                   BV(S.p("o"), root=S.p("davis")))[-1], expect="error")


def _lib_fifo(S: Scene, expr: str) -> Outcome:
    code = (f"import sys\nfrom seggpt.errors import InputError\n"
            f"p = {S.p('f.mp4')!r}\n"
            f"try:\n    {expr}\n    print('RESULT:returned')\n"
            f"except InputError as e:\n    print('RESULT:InputError', e)\n"
            f"except BaseException as e:\n    print('RESULT:' + type(e).__name__, e)\n")
    fifo(S, "f.mp4")
    return S.pyrun(code)


add(C6, "library init_state(FIFO) never blocks", "sub_inputerror",
    lambda S: _lib_fifo(S, "import vos; vos.VideoSegmenter('small', device='cpu').init_state(p)"))
add(C6, "sam2 init_state(FIFO) never blocks", "sub_inputerror",
    lambda S: _lib_fifo(S, "from vos.sam2 import build_sam2_video_predictor as b; b('small', device='cpu')"
                           ".init_state(p)"))
add(C6, "Editor.open(FIFO under root) never blocks", "sub_error",
    lambda S: _lib_fifo(S, "import vos; from vos.editing.editor import Editor; import os\n"
                           "    Editor(vos.VideoSegmenter('small', device='cpu'), os.path.dirname(p)).open('f.mp4')"))
