"""Cases 3 and 4 of the output pass (`outputs`): outputs that are inputs, and the other tools' outputs.

3: an output option naming the video, the mask, a frames or masks folder, the weights, the config or
a dataset (directly, through `..` or a symlink), for vos.run, seggpt.run, seggpt.tune, benchmarks.vos,
benchmarks.evaluate and training. 4: the same rules for each other tool's own outputs (reruns, user
files, edits, links, crafted manifests) and for the web app's Editor (sessions, exports, uploads).
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable, List, Optional

from seggpt.outputs import MANIFEST

from .runner import EV, SR, TRAIN, TUNE, VR, BV, G, Outcome, Scene, add, outside, seg, v1, write_manifest

C3, C4 = "3-outputs-are-inputs", "4-other-tools"


# ---------------------------------------------------------------------------- 3. outputs that are inputs


def _local(S: Scene) -> None:
    """in/: the user's copies of the shared clip, mask, frames, weights, masks folder and config."""
    for src, rel in [("clip.mp4", "clip.mp4"), ("clip_mask.png", "mask.png"), ("frames", "frames"),
                     ("small.safetensors", "w.safetensors"), ("masks", "masks"), ("config.yaml", "config.yaml")]:
        S.copy(G["base"] / src, "in/" + rel)
    S.mark(S.p("in"))


def local_case(title: str, module: str, argv: Callable[[Scene], List[str]], expect: str = "refuse") -> None:
    """A case over the user's inputs in in/ (`_local`): `module` with `argv(S)`."""
    add(C3, title, expect, lambda S: (_local(S), S.call(module, argv(S)))[-1])


def LV(S: Scene, out: Optional[str], *extra: str, frames: bool = False) -> List[str]:
    return VR(out, *extra, video=S.p("in/frames" if frames else "in/clip.mp4"), mask=S.p("in/mask.png"))


for _title, _args in [
    ("--overlay is the video", lambda S: LV(S, S.p("o"), "--overlay", S.p("in/clip.mp4"))),
    ("--overlay is the video through ..", lambda S: LV(S, S.p("o"), "--overlay", S.p("in/frames/../clip.mp4"))),
    ("--overlay is the video through a symlinked folder",
     lambda S: LV(S, S.p("o"), "--overlay", S.link("lnk", S.p("in")) + "/clip.mp4")),
    ("--report is the mask", lambda S: LV(S, S.p("o"), "--report", S.p("in/mask.png"))),
    ("--rle is the mask through ..", lambda S: LV(S, S.p("o"), "--rle", S.p("in/masks/../mask.png"))),
    ("--matte is the weights", lambda S: LV(S, S.p("o"), "--weights", S.p("in/w.safetensors"), "--matte",
                                             S.p("in/w.safetensors"))),
    ("--report is the weights", lambda S: LV(S, S.p("o"), "--weights", S.p("in/w.safetensors"), "--report",
                                              S.p("in/w.safetensors"))),
    ("--report is the config", lambda S: LV(S, S.p("o"), "--config", S.p("in/config.yaml"), "--report",
                                             S.p("in/config.yaml"))),
    ("--out holds the video", lambda S: LV(S, S.p("in"))),
    ("--out holds the mask (parent of in/)", lambda S: LV(S, S.p("."))),
    ("--out holds the weights", lambda S: LV(S, S.p("o"), "--weights", S.p("in/w.safetensors"), "--out",
                                             S.p("in"))),
    ("--out is the frames folder", lambda S: LV(S, S.p("in/frames"), frames=True)),
    ("--out is the frames folder through ..", lambda S: LV(S, S.p("in/masks/../frames"), frames=True)),
    ("--out is the frames folder through a symlink", lambda S: LV(S, S.link("fl", S.p("in/frames")), frames=True)),
    ("--out inside the frames folder", lambda S: LV(S, S.p("in/frames/out"), frames=True)),
    ("--alpha is the frames folder", lambda S: LV(S, S.p("o"), "--alpha", S.p("in/frames"), frames=True)),
    ("--alpha inside the frames folder", lambda S: LV(S, S.p("o"), "--alpha", S.p("in/frames/a"), frames=True)),
    ("--out is the masks folder", lambda S: [S.p("in/clip.mp4"), "--masks", S.p("in/masks"), "--weights", "small",
                                            "--end", "2", "--quiet", "--adapt-steps", "0", "--out", S.p("in/masks")]),
    ("--alpha is the masks folder via symlink", lambda S: [S.p("in/clip.mp4"), "--masks", S.p("in/masks"),
                                                          "--weights", "small", "--end", "2", "--quiet",
                                                          "--adapt-steps", "0", "--out", S.p("o"), "--alpha",
                                                          S.link("ml", S.p("in/masks"))]),
    ("--out is the video file itself", lambda S: LV(S, S.p("in/clip.mp4"))),
    ("--overlay is a frame of the frames folder", lambda S: LV(S, S.p("o"), "--overlay",
                                                              S.p("in/frames/00000.png"), frames=True)),
    ("--report inside the frames folder", lambda S: LV(S, S.p("o"), "--report", S.p("in/frames/r.json"),
                                                      frames=True)),
]:
    local_case(_title, "vos.run", _args)
local_case("no --out: default <video>_masks next to the video", "vos.run", lambda S: LV(S, None), "ok")
local_case("no --out: default folder (cwd/<video>_masks) holds a user png --overwrite", "vos.run",
           lambda S: (S.mark(S.user("clip_masks/00000.png", b"user's own")), LV(S, None, "--overwrite"))[-1])

for _title, _mod, _fn in [
    ("seggpt.run --out holds the query", "seggpt.run", lambda S: SR(
        S.p("in/frames"), prompt=S.p("in/frames/00000.png"), mask=S.p("in/mask.png"), query=S.p("in/frames/00001.png"))),
    ("seggpt.run --out holds the prompt mask", "seggpt.run", lambda S: SR(S.p("in"), mask=S.p("in/mask.png"))),
    ("seggpt.run --out is the weights file", "seggpt.run",
     lambda S: SR(S.p("in/w.safetensors")) + ["--weights", S.p("in/w.safetensors")]),
    ("seggpt.run --out holds the weights", "seggpt.run", lambda S: SR(S.p("in")) + ["--weights", S.p("in/w.safetensors")]),
    ("seggpt.run --out holds the query via ..", "seggpt.run",
     lambda S: SR(S.p("in/masks/../frames"), query=S.p("in/frames/00001.png"))),
    ("seggpt.tune --out is the example image", "seggpt.tune",
     lambda S: TUNE(S.p("in/mask.png"), image=S.p("in/mask.png"), mask=S.p("in/mask.png"))),
    ("seggpt.tune --out is the weights", "seggpt.tune",
     lambda S: TUNE(S.p("in/w.safetensors"), weights=S.p("in/w.safetensors"))),
    ("seggpt.tune --out is the example mask via symlink", "seggpt.tune",
     lambda S: TUNE(S.link("p.safetensors", S.p("in/mask.png")), mask=S.p("in/mask.png"))),
]:
    local_case(_title, _mod, _fn)

for _title, _fn, _mod in [
    ("benchmarks.vos --out is the dataset root", lambda S: BV(S.p("davis"), root=S.p("davis")), "benchmarks.vos"),
    ("benchmarks.vos --out inside JPEGImages", lambda S: BV(S.p("davis/JPEGImages/480p"), root=S.p("davis")),
     "benchmarks.vos"),
    ("benchmarks.vos --out holds the dataset", lambda S: BV(S.p("."), root=S.p("davis")), "benchmarks.vos"),
    ("benchmarks.vos --out is Annotations via symlink", lambda S: BV(S.link("ann", S.p("davis/Annotations/480p")),
                                                                     root=S.p("davis")), "benchmarks.vos"),
    ("benchmarks.evaluate --results is the Annotations folder",
     lambda S: EV(S.p("davis/Annotations/480p"), root=S.p("davis")), "benchmarks.evaluate"),
    ("benchmarks.evaluate --results is the root", lambda S: EV(S.p("davis"), root=S.p("davis")),
     "benchmarks.evaluate"),
    ("training out_dir is the davis root", lambda S: TRAIN(S.p("davis"), f"davis_roots=[{S.p('davis')}]",
                                                           "davis_year=2017", "davis_split=val",
                                                           "davis_resolution=480p"), "training"),
]:
    add(C3, _title, "refuse", (lambda f, m: lambda S: (S.mark(S.davis(results=False)[0]), S.call(m, f(S)))[-1])(_fn, _mod))

# ---------------------------------------------------------------------------- 4. the other tools


def tool(title: str, expect: str, fn: Callable[[Scene], Outcome]) -> None:
    add(C4, title, expect, fn)


def _over(template: str, module: str, prep: Callable[[Scene], Any],
          argv: Callable[[Scene, Any], List[str]]) -> Callable[[Scene], Outcome]:
    """A case over a copy of a template run of ours (`template(key)`): `prep(S)` sets the scene, then `module`
    runs with `argv(S, what prep returned)`."""
    def fn(S: Scene) -> Outcome:
        S.template(template)
        return S.call(module, argv(S, prep(S)))
    return fn


# seggpt.run
def _sr(prep: Callable[[Scene], Any], *extra: str) -> Callable[[Scene], Outcome]:
    return _over("sr", "seggpt.run", prep, lambda S, _: SR(S.p("sr"), *extra))


tool("seggpt.run rerun over our outputs", "ok", _sr(lambda S: None))
for _ex in [(), ("--overwrite",)]:
    _t = " --overwrite" if _ex else ""
    tool("seggpt.run user file in --out" + _t, "refuse", _sr(lambda S: S.mark(S.user("sr/notes.txt")), *_ex))
    tool("seggpt.run our mask edited" + _t, "refuse", _sr(lambda S: S.mark(S.user("sr/00001_mask.png", b"e")), *_ex))
    tool("seggpt.run garbage manifest" + _t, "refuse", _sr(lambda S: write_manifest(S.p("sr"), "nope"), *_ex))
    tool("seggpt.run symlink mask -> user file" + _t, "refuse",
         _sr(lambda S: (os.unlink(S.p("sr/00001_mask.png")), S.mark(S.user("u.png", b"u")),
                        S.mark(S.link("sr/00001_mask.png", S.p("u.png")))), *_ex))
tool("seggpt.run v1 manifest", "refuse", _sr(lambda S: v1(S.p("sr"))))
tool("seggpt.run v1 manifest --overwrite", "ok", _sr(lambda S: v1(S.p("sr")), "--overwrite"))
tool("seggpt.run user png named like our output, fresh folder", "refuse",
     lambda S: (S.mark(S.user("sr/00001_overlay.png", b"mine")), S.call("seggpt.run", SR(S.p("sr"))))[-1])
tool("seggpt.run --out is a user file", "refuse",
     lambda S: (S.mark(S.user("sr", b"file")), S.call("seggpt.run", SR(S.p("sr"))))[-1])
tool("seggpt.run --out is a symlink to a user folder", "refuse",
     lambda S: (S.mark(S.user("mine/a.txt")), S.link("sr", S.p("mine")), S.call("seggpt.run", SR(S.p("sr"))))[-1])
tool("seggpt.run manifest with ../victim", "refuse", _sr(lambda S: outside(S, S.p("sr"), "../victim.txt")))


# seggpt.tune
def _tu(prep: Callable[[Scene], Optional[str]]) -> Callable[[Scene], Outcome]:
    """prep returns the --out to give (None: the template's p.safetensors)."""
    return _over("tu", "seggpt.tune", prep, lambda S, out: TUNE(out or S.p("p.safetensors")))


tool("seggpt.tune rerun over our prompt", "ok", _tu(lambda S: None))
tool("seggpt.tune over a user file", "refuse", _tu(lambda S: S.mark(S.user("u.safetensors", b"mine")) or
                                                 S.p("u.safetensors")))
tool("seggpt.tune our prompt edited", "refuse", _tu(lambda S: S.mark(S.user("p.safetensors", b"edited"))))
tool("seggpt.tune symlink -> user file", "refuse",
     _tu(lambda S: S.mark(S.user("u.bin", b"u")) or S.mark(S.link("l.safetensors", S.p("u.bin"))) or
         S.p("l.safetensors")))
tool("seggpt.tune --out is a folder", "refuse", _tu(lambda S: S.mark(S.user("dir.safetensors/k.txt")) or
                                                   S.p("dir.safetensors")))
tool("seggpt.tune parent manifest garbage", "refuse", _tu(lambda S: write_manifest(str(S.d), "garbage")))


# vos.demo
def _demo(prep: Callable[[Scene], Any]) -> Callable[[Scene], Outcome]:
    return _over("demo", "vos.demo", prep, lambda S, _: ["--frames", "2", S.p("d")])


tool("vos.demo rerun", "ok", _demo(lambda S: None))
tool("vos.demo user clip.mp4 in a fresh folder", "refuse",
     lambda S: (S.mark(S.user("x/clip.mp4", b"my holiday")), S.call("vos.demo", [S.p("x")]))[-1])
tool("vos.demo user clip_mask.png in a fresh folder", "refuse",
     lambda S: (S.mark(S.user("x/clip_mask.png", b"m")), S.call("vos.demo", [S.p("x")]))[-1])
tool("vos.demo our mask edited", "refuse", _demo(lambda S: S.mark(S.user("d/clip_mask.png", b"edited"))))
tool("vos.demo clip.mp4 symlink -> user video", "refuse",
     _demo(lambda S: (os.unlink(S.p("d/clip.mp4")), S.mark(S.user("v.mp4", b"video")),
                      S.mark(S.link("d/clip.mp4", S.p("v.mp4"))))))
tool("vos.demo DIR is a user file", "refuse", lambda S: (S.mark(S.user("x", b"f")), S.call("vos.demo", [S.p("x")]))[-1])
tool("vos.demo folder with other user files", "ok",
     lambda S: (S.mark(S.user("x/holiday.mp4", b"mine"), S.user("x/" + MANIFEST + ".bak", b"b")),
                S.call("vos.demo", ["--frames", "2", S.p("x")]))[-1])


# training
def _tr(prep: Callable[[Scene], Any], *extra: str) -> Callable[[Scene], Outcome]:
    return _over("tr", "training.__main__", prep, lambda S, _: TRAIN(S.p("tr"), *extra))


tool("training rerun over our run (no flag)", "ok_or_refuse", _tr(lambda S: S.mark(S.user("keep.txt"))))
tool("training user notes --overwrite", "refuse", _tr(lambda S: S.mark(S.user("tr/notes.txt")), "--overwrite"))
tool("training log.jsonl edited --overwrite", "refuse",
     _tr(lambda S: S.mark(S.user("tr/log.jsonl", b'{"my": "notes"}\n')), "--overwrite"))
tool("training best.safetensors edited --resume", "refuse",
     _tr(lambda S: S.mark(S.user("tr/best.safetensors", b"x")), "--resume"))
tool("training symlink last.pt -> user file --overwrite", "refuse",
     _tr(lambda S: (os.unlink(S.p("tr/last.pt")), S.mark(S.user("u.pt", b"u")), S.mark(S.link("tr/last.pt",
                                                                                              S.p("u.pt")))),
         "--overwrite"))
tool("training garbage manifest --overwrite (legacy names: documented)", "ok_or_refuse", _tr(lambda S: write_manifest(S.p("tr"), "?"), "--overwrite"))
tool("training out_dir is a user file", "refuse",
     lambda S: (S.mark(S.user("tr", b"f")), S.call("training.__main__", TRAIN(S.p("tr"))))[-1])
tool("training --overwrite over our run", "ok", _tr(lambda S: None, "--overwrite"))


# benchmarks.vos / evaluate
def _bv(prep: Callable[[Scene], Any], *extra: str, module: str = "benchmarks.vos") -> Callable[[Scene], Outcome]:
    return _over("bv", module, prep, lambda S, _: (BV if module == "benchmarks.vos" else EV)(S.p("bv"), *extra))


tool("benchmarks.vos rerun", "ok", _bv(lambda S: None))
tool("benchmarks.vos --resume", "ok", _bv(lambda S: None, "--resume"))
for _ex in [(), ("--overwrite",)]:
    _t = " --overwrite" if _ex else ""
    tool("benchmarks.vos user file in --out" + _t, "refuse", _bv(lambda S: S.mark(S.user("bv/notes.txt")), *_ex))
    tool("benchmarks.vos result png edited" + _t, "refuse",
         _bv(lambda S: S.mark(S.user("bv/synth-000/00001.png", b"e")), *_ex))
    tool("benchmarks.evaluate user CSV in results (no manifest)" + _t, "refuse",
         lambda S, _e=_ex: (S.copy(G["base"] / "davis" / "Annotations" / "480p", "res"),
                            S.mark(S.user("res/global_results-val.csv", b"my,scores\n")),
                            S.call("benchmarks.evaluate", EV(S.p("res"), *_e)))[-1])
    tool("benchmarks.evaluate our CSV edited" + _t, "refuse",
         _bv(lambda S: S.mark(S.user("bv/global_results-val.csv", b"edited")), *_ex, module="benchmarks.evaluate"))
tool("benchmarks.vos symlink in --out --resume", "refuse",
     _bv(lambda S: S.mark(S.link("bv/synth-000/00003.png", str(G["victim"] / "photo.png"))), "--resume"))
tool("benchmarks.evaluate rerun", "ok", _bv(lambda S: None, module="benchmarks.evaluate"))
tool("benchmarks.evaluate CSV is a symlink to a user file", "refuse",
     _bv(lambda S: (os.unlink(S.p("bv/per-sequence_results-val.csv")), S.mark(S.user("u.csv", b"u")),
                    S.mark(S.link("bv/per-sequence_results-val.csv", S.p("u.csv")))), module="benchmarks.evaluate"))
tool("benchmarks.evaluate CSV is a folder", "refuse",
     _bv(lambda S: (os.unlink(S.p("bv/global_results-val.csv")), S.mark(S.user("bv/global_results-val.csv/k"))),
         module="benchmarks.evaluate"))
tool("benchmarks.evaluate fresh results (no CSVs)", "ok",
     lambda S: (S.copy(G["base"] / "davis" / "Annotations" / "480p", "res"), S.mark(S.user("res/keep.txt")),
                S.call("benchmarks.evaluate", EV(S.p("res"))))[-1])


# the Editor
def editor(S: Scene):
    from vos.editing.editor import Editor

    S.copy(G["base"] / "clip.mp4", "root/clip.mp4")
    S.mark(S.p("root/clip.mp4"))
    return Editor(seg(), S.p("root"))


def _ed(prep: Callable[[Scene, Any], Any], act: Callable[[Scene, Any], Any], desc: str):
    def fn(S: Scene) -> Outcome:
        e = editor(S)
        S.ours_from(lambda: prep(S, e))  # what the Editor wrote there is ours; the user's files stay marked
        return S.lib(desc, lambda: act(S, e))
    return fn


def _opened(S: Scene, e) -> None:
    import numpy as np

    e.open("clip.mp4")
    o = e.add_object("thing")
    m = np.zeros(e.size, bool)
    m[5:20, 5:20] = True
    e.set_mask(0, o, m)


def _src(S: Scene, rel: str = "src/clip.mp4") -> str:
    """A copy of the clip outside the Editor's root, the user's."""
    p = str(S.copy(G["base"] / "clip.mp4", rel))
    S.mark(p)
    return p


def _link_out(S: Scene, rel: str) -> None:
    """`rel` (a folder the Editor writes into) a link to a user's folder."""
    S.mark(S.user("elsewhere/k.txt"))
    S.mark(S.link(rel, S.p("elsewhere")))


tool("Editor.save_session over a user file", "raise:EditorError",
     _ed(lambda S, e: (_opened(S, e), S.mark(S.user("root/sessions/clip.vos-session.zip", b"mine"))),
         lambda S, e: e.save_session("clip"), "Editor.save_session('clip')"))
tool("Editor.save_session twice (our own)", "returned",
     _ed(lambda S, e: (_opened(S, e), e.save_session("s")), lambda S, e: e.save_session("s"),
         "Editor.save_session('s') x2"))
tool("Editor.save_session name ../../escape", "returned_inside",
     _ed(lambda S, e: _opened(S, e), lambda S, e: _check_inside(S, e.save_session("../../escape")),
         "Editor.save_session('../../escape')"))
tool("Editor.save_session sessions/ is a symlink", "raise:EditorError",
     _ed(lambda S, e: (_opened(S, e), _link_out(S, "root/sessions")), lambda S, e: e.save_session("s"),
         "Editor.save_session with sessions -> link"))
tool("Editor.save_session session file is a symlink", "raise:EditorError",
     _ed(lambda S, e: (_opened(S, e), S.mark(S.user("u.zip", b"u")),
                       S.mark(S.link("root/sessions/s.vos-session.zip", S.p("u.zip")))),
         lambda S, e: e.save_session("s"), "Editor.save_session over a link"))
tool("Editor.export exports/ is a symlink", "raise:EditorError",
     _ed(lambda S, e: (_opened(S, e), _link_out(S, "root/exports")), lambda S, e: e.export(["index"]),
         "Editor.export(['index']) with exports -> link"))
tool("Editor.export with user files in exports/", "returned",
     _ed(lambda S, e: (_opened(S, e), S.mark(S.user("root/exports/clip-mine.zip", b"z"),
                                             S.user("root/exports/notes.txt"))),
         lambda S, e: e.export(["index", "rle"]), "Editor.export(['index','rle'])"))
tool("Editor upload over a user file of that name", "returned",
     _ed(lambda S, e: S.mark(S.user("root/uploads/clip.mp4", b"user video"), S.copy(G["base"] / "clip.mp4",
                                                                                     "src/clip.mp4").as_posix()),
         lambda S, e: e.open(S.p("src/clip.mp4"), uploaded=True), "Editor.open(src, uploaded=True)"))
tool("Editor upload uploads/ is a symlink", "raise:EditorError",
     _ed(lambda S, e: (_link_out(S, "root/uploads"), _src(S)), lambda S, e: e.open(S.p("src/clip.mp4"), uploaded=True),
         "Editor.open(uploaded) uploads -> link"))
tool("Editor upload twice (ours replaced or renamed)", "returned",
     _ed(lambda S, e: e.open(_src(S), uploaded=True), lambda S, e: e.open(S.p("src/clip.mp4"), uploaded=True),
         "Editor.open(uploaded) x2"))
tool("Editor upload symlink named like ours", "returned",
     _ed(lambda S, e: (_src(S), S.mark(S.link("root/uploads/clip.mp4", str(G["victim"] / "victim.txt")))),
         lambda S, e: e.open(S.p("src/clip.mp4"), uploaded=True), "Editor.open(uploaded) over a link"))
tool("Editor.open ../outside", "raise:EditorError",
     _ed(lambda S, e: _src(S, "out.mp4"), lambda S, e: e.open("../out.mp4"), "Editor.open('../out.mp4')"))
tool("Editor.open symlink leaving root", "raise:EditorError",
     _ed(lambda S, e: S.link("root/l.mp4", _src(S, "out.mp4")), lambda S, e: e.open("l.mp4"),
         "Editor.open('l.mp4' -> outside)"))
tool("Editor.media hides links leaving root", "media_no_link",
     _ed(lambda S, e: S.link("root/l.mp4", _src(S, "out.mp4")), lambda S, e: e.media(), "Editor.media()"))
tool("Editor.open a text file", "raise:EditorError",
     _ed(lambda S, e: S.mark(S.user("root/notes.mp4", b"not a video")), lambda S, e: e.open("notes.mp4"),
         "Editor.open('notes.mp4' text)"))
tool("Editor.open_session garbage zip", "raise:EditorError",
     _ed(lambda S, e: S.mark(S.user("root/sessions/x.vos-session.zip", b"PK garbage")),
         lambda S, e: e.open_session("x.vos-session.zip"), "Editor.open_session(garbage)"))
tool("Editor root is a file", "raise:EditorError",
     lambda S: (S.mark(S.user("rootfile")), S.lib("Editor(seg, file)", lambda: importlib.import_module(
         "vos.editing.editor").Editor(seg(), S.p("rootfile"))))[-1])


def _check_inside(S: Scene, path: Path) -> None:
    if not str(Path(path).resolve()).startswith(S.p("root/sessions")):
        S.extra.append(f"session written outside root/sessions: {path}")
