"""Cases 3 and 4 of the first output pass (`benchmarks.adversarial_outputs`): outputs that are inputs, and
the other tools' outputs.

3: an output option naming the video, the mask, a frames or masks folder, the weights, the config or
a dataset (directly, through `..` or a symlink), for vos.run, seggpt.run, seggpt.tune, benchmarks.vos,
benchmarks.evaluate and training. 4: the same rules for each other tool's own outputs (reruns, user
files, edits, links, crafted manifests) and for the web app's Editor (sessions, exports, uploads).
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .output_pass import MANIFEST, EV, SR, VM, TRAIN, TUNE, VR, BV, G, Outcome, Scene, add, outside, seg, v1, write_manifest

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
    ("--out is the masks folder", lambda S: VM(S.p("in/clip.mp4"), S.p("in/masks"), S.p("in/masks"))),
    ("--alpha is the masks folder via symlink",
     lambda S: VM(S.p("in/clip.mp4"), S.p("in/masks"), S.p("o"), "--alpha", S.link("ml", S.p("in/masks")))),
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

# the tool each case runs is its title's first word
for _title, _fn in [
    ("seggpt.run --out holds the query", lambda S: SR(
        S.p("in/frames"), prompt=S.p("in/frames/00000.png"), mask=S.p("in/mask.png"), query=S.p("in/frames/00001.png"))),
    ("seggpt.run --out holds the prompt mask", lambda S: SR(S.p("in"), mask=S.p("in/mask.png"))),
    ("seggpt.run --out is the weights file",
     lambda S: SR(S.p("in/w.safetensors")) + ["--weights", S.p("in/w.safetensors")]),
    ("seggpt.run --out holds the weights", lambda S: SR(S.p("in")) + ["--weights", S.p("in/w.safetensors")]),
    ("seggpt.run --out holds the query via ..",
     lambda S: SR(S.p("in/masks/../frames"), query=S.p("in/frames/00001.png"))),
    ("seggpt.tune --out is the example image",
     lambda S: TUNE(S.p("in/mask.png"), image=S.p("in/mask.png"), mask=S.p("in/mask.png"))),
    ("seggpt.tune --out is the weights", lambda S: TUNE(S.p("in/w.safetensors"), weights=S.p("in/w.safetensors"))),
    ("seggpt.tune --out is the example mask via symlink",
     lambda S: TUNE(S.link("p.safetensors", S.p("in/mask.png")), mask=S.p("in/mask.png"))),
]:
    local_case(_title, _title.split()[0], _fn)

for _title, _fn in [
    ("benchmarks.vos --out is the dataset root", lambda S: BV(S.p("davis"), root=S.p("davis"))),
    ("benchmarks.vos --out inside JPEGImages", lambda S: BV(S.p("davis/JPEGImages/480p"), root=S.p("davis"))),
    ("benchmarks.vos --out holds the dataset", lambda S: BV(S.p("."), root=S.p("davis"))),
    ("benchmarks.vos --out is Annotations via symlink",
     lambda S: BV(S.link("ann", S.p("davis/Annotations/480p")), root=S.p("davis"))),
    ("benchmarks.evaluate --results is the Annotations folder",
     lambda S: EV(S.p("davis/Annotations/480p"), root=S.p("davis"))),
    ("benchmarks.evaluate --results is the root", lambda S: EV(S.p("davis"), root=S.p("davis"))),
    ("training out_dir is the davis root", lambda S: TRAIN(S.p("davis"), f"davis_roots=[{S.p('davis')}]",
                                                           "davis_year=2017", "davis_split=val",
                                                           "davis_resolution=480p")),
]:
    add(C3, _title, "refuse",
        (lambda f, m: lambda S: (S.mark(S.davis(results=False)[0]), S.call(m, f(S)))[-1])(_fn, _title.split()[0]))

# ---------------------------------------------------------------------------- 4. the other tools


# per tool: the template run of ours its cases start from, the module, its argv (given what the scene's
# prep returned and the extra arguments)
TOOLS: Dict[str, Tuple[str, str, Callable[[Scene, Any, Sequence[str]], List[str]]]] = {
    "seggpt.run": ("sr", "seggpt.run", lambda S, r, x: SR(S.p("sr"), *x)),
    "seggpt.tune": ("tu", "seggpt.tune", lambda S, r, x: TUNE(r or S.p("p.safetensors"), *x)),
    "vos.demo": ("demo", "vos.demo", lambda S, r, x: ["--frames", "2", S.p("d"), *x]),
    "training": ("tr", "training", lambda S, r, x: TRAIN(S.p("tr"), *x)),
    "benchmarks.vos": ("bv", "benchmarks.vos", lambda S, r, x: BV(S.p("bv"), *x)),
    "benchmarks.evaluate": ("bv", "benchmarks.evaluate", lambda S, r, x: EV(S.p("bv"), *x)),
}


def over(title: str, expect: str, tool_name: str, prep: Optional[Callable[[Scene], Any]] = None, *extra: str,
         fresh: bool = False) -> None:
    """A case of a tool over a copy of its template run of ours (`fresh`: an empty folder): `prep(S)` sets
    the scene, then the tool runs (its --out, or what prep returned, for seggpt.tune)."""
    key, module, argv = TOOLS[tool_name]

    def fn(S: Scene) -> Outcome:
        if not fresh:
            S.template(key)
        return S.call(module, argv(S, prep(S) if prep else None, extra))
    add(C4, f"{title}{' --overwrite' if '--overwrite' in extra else ''}", expect, fn)


def _u(rel: str, data: bytes = b"my precious notes\n") -> Callable[[Scene], None]:
    """A scene: a file of the user's at `rel`."""
    return lambda S: S.mark(S.user(rel, data))


def _ln(rel: str, user_rel: str, data: bytes = b"u") -> Callable[[Scene], None]:
    """A scene: our file at `rel` replaced by a link to a file of the user's at `user_rel`."""
    return lambda S: S.mark(S.user(user_rel, data), S.link(rel, S.p(user_rel)))


SG, TU, DM, TR, BVOS, EVAL = TOOLS
for _ex in [(), ("--overwrite",)]:
    over("seggpt.run user file in --out", "refuse", SG, _u("sr/notes.txt"), *_ex)
    over("seggpt.run our mask edited", "refuse", SG, _u("sr/00001_mask.png", b"e"), *_ex)
    over("seggpt.run garbage manifest", "refuse", SG, lambda S: write_manifest(S.p("sr"), "nope"), *_ex)
    over("seggpt.run symlink mask -> user file", "refuse", SG, _ln("sr/00001_mask.png", "u.png"), *_ex)
    over("benchmarks.vos user file in --out", "refuse", BVOS, _u("bv/notes.txt"), *_ex)
    over("benchmarks.vos result png edited", "refuse", BVOS, _u("bv/synth-000/00001.png", b"e"), *_ex)
    add(C4, "benchmarks.evaluate user CSV in results (no manifest)" + (" --overwrite" if _ex else ""), "refuse",
        lambda S, _e=_ex: (S.copy(G["base"] / "davis" / "Annotations" / "480p", "res"),
                           S.mark(S.user("res/global_results-val.csv", b"my,scores\n")),
                           S.call("benchmarks.evaluate", EV(S.p("res"), *_e)))[-1])
    over("benchmarks.evaluate our CSV edited", "refuse", EVAL, _u("bv/global_results-val.csv", b"edited"), *_ex)
over("seggpt.run rerun over our outputs", "ok", SG)
over("seggpt.run v1 manifest", "refuse", SG, lambda S: v1(S.p("sr")))
over("seggpt.run v1 manifest", "ok", SG, lambda S: v1(S.p("sr")), "--overwrite")
over("seggpt.run user png named like our output, fresh folder", "refuse", SG, _u("sr/00001_overlay.png", b"mine"), fresh=True)
over("seggpt.run --out is a user file", "refuse", SG, _u("sr", b"file"), fresh=True)
over("seggpt.run --out is a symlink to a user folder", "refuse", SG,
     lambda S: (S.mark(S.user("mine/a.txt")), S.link("sr", S.p("mine"))), fresh=True)
over("seggpt.run manifest with ../victim", "refuse", SG, lambda S: outside(S, S.p("sr"), "../victim.txt"))
over("seggpt.tune rerun over our prompt", "ok", TU)
over("seggpt.tune over a user file", "refuse", TU, lambda S: _u("u.safetensors", b"mine")(S) or S.p("u.safetensors"))
over("seggpt.tune our prompt edited", "refuse", TU, _u("p.safetensors", b"edited"))
over("seggpt.tune symlink -> user file", "refuse", TU, lambda S: _ln("l.safetensors", "u.bin")(S) or S.p("l.safetensors"))
over("seggpt.tune --out is a folder", "refuse", TU, lambda S: _u("dir.safetensors/k.txt")(S) or S.p("dir.safetensors"))
over("seggpt.tune parent manifest garbage", "refuse", TU, lambda S: write_manifest(str(S.d), "garbage"))
over("vos.demo rerun", "ok", DM)
for _name, _data in [("clip.mp4", b"my holiday"), ("clip_mask.png", b"m")]:
    add(C4, f"vos.demo user {_name} in a fresh folder", "refuse",
        lambda S, n=_name, d=_data: (S.mark(S.user("x/" + n, d)), S.call("vos.demo", [S.p("x")]))[-1])
over("vos.demo our mask edited", "refuse", DM, _u("d/clip_mask.png", b"edited"))
over("vos.demo clip.mp4 symlink -> user video", "refuse", DM, _ln("d/clip.mp4", "v.mp4", b"video"))
add(C4, "vos.demo DIR is a user file", "refuse",
    lambda S: (S.mark(S.user("x", b"f")), S.call("vos.demo", [S.p("x")]))[-1])
add(C4, "vos.demo folder with other user files", "ok",
    lambda S: (S.mark(S.user("x/holiday.mp4", b"mine"), S.user("x/" + MANIFEST + ".bak", b"b")),
               S.call("vos.demo", ["--frames", "2", S.p("x")]))[-1])
over("training rerun over our run (no flag)", "ok_or_refuse", TR, _u("keep.txt"))
over("training user notes", "refuse", TR, _u("tr/notes.txt"), "--overwrite")
over("training log.jsonl edited", "refuse", TR, _u("tr/log.jsonl", b'{"my": "notes"}\n'), "--overwrite")
over("training best.safetensors edited --resume", "refuse", TR, _u("tr/best.safetensors", b"x"), "--resume")
over("training symlink last.pt -> user file", "refuse", TR, _ln("tr/last.pt", "u.pt"), "--overwrite")
add(C4, "training garbage manifest --overwrite (legacy names: documented)", "ok_or_refuse", lambda S: (
    S.template("tr"), write_manifest(S.p("tr"), "?"), S.call("training", TRAIN(S.p("tr"), "--overwrite")))[-1])
over("training out_dir is a user file", "refuse", TR, _u("tr", b"f"), fresh=True)
add(C4, "training --overwrite over our run", "ok",
    lambda S: (S.template("tr"), S.call("training", TRAIN(S.p("tr"), "--overwrite")))[-1])
over("benchmarks.vos rerun", "ok", BVOS)
over("benchmarks.vos --resume", "ok", BVOS, None, "--resume")
over("benchmarks.vos symlink in --out --resume", "refuse", BVOS,
     lambda S: S.mark(S.link("bv/synth-000/00003.png", str(G["victim"] / "photo.png"))), "--resume")
over("benchmarks.evaluate rerun", "ok", EVAL)
over("benchmarks.evaluate CSV is a symlink to a user file", "refuse", EVAL, _ln("bv/per-sequence_results-val.csv", "u.csv"))
over("benchmarks.evaluate CSV is a folder", "refuse", EVAL, lambda S: (
    os.unlink(S.p("bv/global_results-val.csv")), S.mark(S.user("bv/global_results-val.csv/k"))))
add(C4, "benchmarks.evaluate fresh results (no CSVs)", "ok",
    lambda S: (S.copy(G["base"] / "davis" / "Annotations" / "480p", "res"), S.mark(S.user("res/keep.txt")),
               S.call("benchmarks.evaluate", EV(S.p("res"))))[-1])


# the Editor
def editor(S: Scene):
    from vos.editing.editor import Editor

    S.copy(G["base"] / "clip.mp4", "root/clip.mp4")
    S.mark(S.p("root/clip.mp4"))
    return Editor(seg(), S.p("root"))


def editor_case(title: str, expect: str, prep: Callable[[Scene, Any], Any], act: Callable[[Scene, Any], Any],
                opened: bool = True) -> None:
    """An Editor over root/ (a user's clip), `opened` on it with one object's mask, `prep(S, e)` (what it
    writes is ours), then `act(S, e)`."""
    def fn(S: Scene) -> Outcome:
        e = editor(S)
        S.ours_from(lambda: (_opened(S, e) if opened else None, prep(S, e)))
        return S.lib(title, lambda: act(S, e))
    add(C4, title, expect, fn)


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


def _upload(S: Scene, e: Any) -> Any:
    """The Editor given the user's clip in src/ as an upload."""
    return e.open(S.p("src/clip.mp4"), uploaded=True)


def _link_out(S: Scene, rel: str) -> None:
    """`rel` (a folder the Editor writes into) a link to a user's folder."""
    S.mark(S.user("elsewhere/k.txt"), S.link(rel, S.p("elsewhere")))


EE = "raise:EditorError"
for _title, _expect, _open, _prep, _act in [
    ("Editor.save_session over a user file", EE, True,
     lambda S, e: S.mark(S.user("root/sessions/clip.vos-session.zip", b"mine")), lambda S, e: e.save_session("clip")),
    ("Editor.save_session twice (our own)", "returned", True, lambda S, e: e.save_session("s"),
     lambda S, e: e.save_session("s")),
    ("Editor.save_session name ../../escape", "returned_inside", True, lambda S, e: None,
     lambda S, e: _check_inside(S, e.save_session("../../escape"))),
    ("Editor.save_session sessions/ is a symlink", EE, True, lambda S, e: _link_out(S, "root/sessions"),
     lambda S, e: e.save_session("s")),
    ("Editor.save_session session file is a symlink", EE, True, lambda S, e: S.mark(
        S.user("u.zip", b"u"), S.link("root/sessions/s.vos-session.zip", S.p("u.zip"))), lambda S, e: e.save_session("s")),
    ("Editor.export exports/ is a symlink", EE, True, lambda S, e: _link_out(S, "root/exports"),
     lambda S, e: e.export(["index"])),
    ("Editor.export with user files in exports/", "returned", True,
     lambda S, e: S.mark(S.user("root/exports/clip-mine.zip", b"z"), S.user("root/exports/notes.txt")),
     lambda S, e: e.export(["index", "rle"])),
    ("Editor upload over a user file of that name", "returned", False,
     lambda S, e: S.mark(S.user("root/uploads/clip.mp4", b"user video"), _src(S)), _upload),
    ("Editor upload uploads/ is a symlink", EE, False, lambda S, e: (_link_out(S, "root/uploads"), _src(S)), _upload),
    ("Editor upload twice (ours replaced or renamed)", "returned", False,
     lambda S, e: e.open(_src(S), uploaded=True), _upload),
    ("Editor upload symlink named like ours", "returned", False,
     lambda S, e: (_src(S), S.mark(S.link("root/uploads/clip.mp4", str(G["victim"] / "victim.txt")))), _upload),
    ("Editor.open ../outside", EE, False, lambda S, e: _src(S, "out.mp4"), lambda S, e: e.open("../out.mp4")),
    ("Editor.open symlink leaving root", EE, False, lambda S, e: S.link("root/l.mp4", _src(S, "out.mp4")),
     lambda S, e: e.open("l.mp4")),
    ("Editor.media hides links leaving root", "media_no_link", False,
     lambda S, e: S.link("root/l.mp4", _src(S, "out.mp4")), lambda S, e: e.media()),
    ("Editor.open a text file", EE, False, lambda S, e: S.mark(S.user("root/notes.mp4", b"not a video")),
     lambda S, e: e.open("notes.mp4")),
    ("Editor.open_session garbage zip", EE, False,
     lambda S, e: S.mark(S.user("root/sessions/x.vos-session.zip", b"PK garbage")),
     lambda S, e: e.open_session("x.vos-session.zip")),
]:
    editor_case(_title, _expect, _prep, _act, _open)
add(C4, "Editor root is a file", "raise:EditorError",
    lambda S: (S.mark(S.user("rootfile")), S.lib("Editor(seg, file)", lambda: importlib.import_module(
        "vos.editing.editor").Editor(seg(), S.p("rootfile"))))[-1])


def _check_inside(S: Scene, path: Path) -> None:
    if not str(Path(path).resolve()).startswith(S.p("root/sessions")):
        S.extra.append(f"session written outside root/sessions: {path}")
