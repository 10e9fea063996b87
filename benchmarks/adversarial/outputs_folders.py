"""Cases 1 and 2 of the first output pass (`benchmarks.adversarial_outputs`): --out / --alpha folders, and
the single-file outputs.

Each case starts from a copy of a template run of ours (`template("vr")`: o/, a/ and the single files with
their manifests), changes what a user or an accident would (a file of theirs, an edit, a link, a
crafted or broken manifest, a killed run) and runs vos.run over it, with and without --overwrite.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Callable, List

from .output_pass import (MANIFEST, G, VR, Outcome, Scene, add, edit_manifest, listed, outside, read_manifest, readonly,
                          v1, write_manifest)

C1, C2 = "1-folders", "2-single-files"


# ---------------------------------------------------------------------------- 1. --out / --alpha folders


def folder_cases(opt: str) -> None:
    """opt: --out or --alpha; the case folder holds a template run of ours (o/, a/, single files)."""
    F = "o" if opt == "--out" else "a"

    def argv(S: Scene, *extra: str) -> List[str]:
        return VR(S.p("o"), *(["--object-masks"] if opt == "--out" else ["--alpha", S.p("a")]), *extra)

    first_png = "00000.png" if opt == "--out" else "001/00000.png"
    pat_name = "00099.png" if opt == "--out" else "001/00099.png"

    def c(name: str, expect: str, prep: Callable[[Scene, str], Any], *extra: str) -> None:
        def fn(S: Scene) -> Outcome:
            S.template("vr")
            prep(S, S.p(F))
            return S.call("vos.run", argv(S, *extra))
        add(C1, f"{opt} {name}{' --overwrite' if '--overwrite' in extra else ''}", expect, fn)

    both = [(), ("--overwrite",)]
    c("rerun over our own unchanged outputs", "ok", lambda S, f: None)
    c("rerun twice (second rerun)", "ok", lambda S, f: S.prior("vos.run", argv(S)))
    c("one of ours deleted by the user", "ok", lambda S, f: os.unlink(Path(f) / first_png))
    for ex in both:
        c("user notes.txt inside", "refuse", lambda S, f: S.mark(S.user(f"{F}/notes.txt")), *ex)
        c("user png with a name we write, unlisted", "refuse", lambda S, f: S.mark(S.user(f"{F}/{pat_name}")), *ex)
        c("our png hand-edited", "refuse", lambda S, f: S.mark(S.user(f"{F}/{first_png}", b"hand-corrected")), *ex)
        c("our png hand-edited, same size", "refuse", lambda S, f: S.mark(_same_size_edit(Path(f) / first_png)), *ex)
        c("user name slipped into manifest with fake hash", "refuse", lambda S, f: _slip(S, f, fake=True), *ex)
        c("garbage manifest (not JSON) over our pngs", "refuse", lambda S, f: write_manifest(f, "{not json"), *ex)
        c("truncated manifest", "refuse", lambda S, f: write_manifest(f, (Path(f) / MANIFEST).read_text()[:40]), *ex)
        c("unknown manifest format", "refuse", lambda S, f: write_manifest(f, {**read_manifest(f), "format": "seggpt-vos-manifest/9"}),
          *ex)
        c("manifest with ../victim (real hash)", "refuse", lambda S, f: outside(S, f, "../victim.txt"), *ex)
        c("manifest with /abs victim path", "refuse", lambda S, f: outside(S, f, "ABS"), *ex)
        c("symlink named like our png -> user file", "refuse", lambda S, f: S.mark(
            S.user("mine/photo.png", b"user photo"), S.link(f"{f}/{first_png}", S.p("mine/photo.png"))), *ex)
        c("killed run + user file", "refuse", lambda S, f: (_running(f, False), S.mark(S.user(f"{F}/notes.txt"))), *ex)
        c("temp-looking user file .holiday.backup1.tmp", "refuse",
          lambda S, f: S.mark(S.user(f"{F}/.holiday.backup1.tmp", b"user backup")), *ex)
        c("manifest is a symlink to a user json", "refuse", lambda S, f: _mf_link(S, f), *ex)
    c("v2 manifest lists user file with null hash", "refuse", lambda S, f: _slip(S, f, fake=False), "--overwrite")
    c("manifest with sub/../../victim", "refuse", lambda S, f: outside(S, f, "x/../../victim.txt"))
    c("empty-object manifest {}", "refuse", lambda S, f: write_manifest(f, "{}"))
    c("manifest files as list in format 2", "refuse", lambda S, f: write_manifest(f, {**read_manifest(f), "files": list(read_manifest(f)["files"])}))
    c("manifest record size is bool", "refuse",
      lambda S, f: write_manifest(f, {**read_manifest(f), "files": {k: {**v, "size": True} for k, v in read_manifest(f)["files"].items()}}))
    c("manifest record sha256 short", "refuse",
      lambda S, f: write_manifest(f, {**read_manifest(f), "files": {k: {**v, "sha256": "ab"} for k, v in read_manifest(f)["files"].items()}}))
    c("manifest is a folder", "refuse", lambda S, f: (os.unlink(Path(f) / MANIFEST), os.mkdir(Path(f) / MANIFEST)))
    c("manifest is a folder", "refuse", lambda S, f: (os.unlink(Path(f) / MANIFEST), os.mkdir(Path(f) / MANIFEST)),
      "--overwrite")
    c("manifest symlink to a copy of itself elsewhere", "refuse", lambda S, f: _mf_link(S, f, copy=True))
    c("symlinked subfolder -> user folder", "refuse", lambda S, f: S.mark(S.user("mine/keep.txt"), S.link(f"{f}/linked", S.p("mine"))), "--overwrite")
    c("user subfolder with a file", "refuse", lambda S, f: S.mark(S.user(f"{F}/mine/keep.txt")))
    c("user empty folder named like our png", "refuse", lambda S, f: _empty_dir_clash(S, f, first_png))
    c("hidden user file .notes", "refuse", lambda S, f: S.mark(S.user(f"{F}/.notes")))
    c("user file .vos-write-test-mine", "refuse", lambda S, f: S.mark(S.user(f"{F}/.vos-write-test-mine")), "--overwrite")
    c("read-only user file", "refuse", lambda S, f: readonly(S, f"{F}/notes.txt"), "--overwrite")
    c("v1 manifest (no hashes)", "refuse", lambda S, f: v1(f))
    c("v1 manifest (no hashes)", "ok", lambda S, f: v1(f), "--overwrite")
    c("v1 manifest + user file", "refuse", lambda S, f: (v1(f), S.mark(S.user(f"{F}/notes.txt"))), "--overwrite")
    c("killed run (running, dead pid)", "refuse", lambda S, f: _running(f, False))
    # a killed run's files carry no hash: not even --overwrite takes them (only a tool's --resume)
    c("killed run (running, dead pid)", "refuse", lambda S, f: _running(f, False), "--overwrite")
    c("running manifest, pid alive", "refuse", lambda S, f: _running(f, True), "--overwrite")
    c("hard link of our output kept by the user elsewhere", "ok",
      lambda S, f: (os.link(f"{f}/{first_png}", S.p("kept-copy.png")), S.mark(S.p("kept-copy.png"))))

    c("the folder is a symlink to a user folder", "refuse",
      lambda S, f: (shutil.rmtree(f), S.mark(S.user("mine/keep.txt"), S.user("mine/00000.png", b"user png")),
                    S.link(F, S.p("mine"))), "--overwrite")
    c("the folder is a user file", "refuse", lambda S, f: (shutil.rmtree(f), S.mark(S.user(F, b"I am a file"))))


def _same_size_edit(p: Path) -> str:
    b = bytearray(p.read_bytes())
    b[-20] ^= 0xFF
    p.write_bytes(bytes(b))
    return str(p)


def _slip(S: Scene, f: str, fake: bool) -> None:
    S.mark(S.user(f"{os.path.basename(f)}/notes.txt"))
    edit_manifest(f, listed("notes.txt", {"size": 18, "sha256": "0" * 64} if fake else None))


def _empty_dir_clash(S: Scene, f: str, name: str) -> None:
    d = Path(f) / name
    d.unlink(missing_ok=True)
    d.mkdir()
    S.mark(str(d))


def _mf_link(S: Scene, f: str, copy: bool = False) -> None:
    """The manifest a link to a user's json, or (`copy`) to a copy of itself elsewhere."""
    target = str(S.copy(Path(f) / MANIFEST, "elsewhere.json")) if copy else S.user("user.json", b'{"mine": true}')
    S.mark(target, S.link(f"{f}/{MANIFEST}", target))


def _running(f: str, alive: bool) -> None:
    """The manifest of a run still running: its process alive (sleeping) or dead (and its files not listed)."""
    p = subprocess.Popen(["sleep", "60"] if alive else ["true"])
    if alive:
        G.setdefault("sleepers", []).append(p)
    else:
        p.wait()
    edit_manifest(f, lambda m: m.update(status="running", complete=False, pid=p.pid, host=socket.gethostname(),
                                        **({} if alive else {"files": {}})))


folder_cases("--out")
folder_cases("--alpha")


# ---------------------------------------------------------------------------- 2. single files

SINGLE = [("--overlay", "ov.mp4"), ("--report", "r.json"), ("--rle", "rle.json"), ("--matte", "m.mkv")]


def single_cases(opt: str, name: str) -> None:
    ext = os.path.splitext(name)[1]

    def c(title: str, expect: str, prep: Callable[[Scene], Any], *extra: str) -> None:
        """prep(S) sets the scene; the path it returns (if a string) is the option's, else `name`."""
        def fn(S: Scene) -> Outcome:
            S.template("vr")
            path = prep(S)
            path = path if isinstance(path, str) else S.p(name)
            return S.call("vos.run", VR(S.p("o"), opt, path, *extra))
        add(C2, f"{opt} {title}{' --overwrite' if '--overwrite' in extra else ''}", expect, fn)

    def fresh(S: Scene) -> None:  # a case folder without our template single files
        for n in ("ov.mp4", "r.json", "rle.json", "m.mkv", MANIFEST):
            os.unlink(S.p(n))

    for ex in [(), ("--overwrite",)]:
        c("over a user file (no manifest)", "refuse", lambda S: (fresh(S), S.mark(S.user(name, b"user data"))), *ex)
        c("over a user file next to our manifest", "refuse",
          lambda S: S.mark(S.user("u" + name, b"user data")) or S.p("u" + name), *ex)
        c("our file edited after the run", "refuse", lambda S: S.mark(S.user(name, b"edited")), *ex)
        c("symlink -> user file", "refuse", lambda S: S.mark(S.user("mine" + ext, b"u"), S.link(name, S.p("mine" + ext))), *ex)
        c("folder with a user file", "refuse", lambda S: (os.unlink(S.p(name)), S.mark(S.user(f"{name}/keep.txt"))), *ex)
        c("garbage parent manifest over our file", "refuse", lambda S: write_manifest(str(S.d), "[[["), *ex)
        c("parent manifest lists ../victim", "refuse", lambda S: outside(S, str(S.d), "../victim.txt"), *ex)
    c("dangling symlink", "refuse", lambda S: S.mark(S.link(name, S.p("nowhere" + ext))))
    c("symlink -> victim outside the sandbox", "refuse", lambda S: S.mark(S.link(name, str(G["victim"] / "victim.txt"))),
      "--overwrite")
    c("rerun over our own file", "ok", lambda S: None)
    c("v1 parent manifest (no hash)", "refuse", lambda S: v1(str(S.d)))
    c("v1 parent manifest (no hash)", "ok", lambda S: v1(str(S.d)), "--overwrite")
    c("hard link of our file kept elsewhere", "ok", lambda S: (os.link(S.p(name), S.p("keep" + ext)), S.mark(S.p("keep" + ext))))
    c("read-only user file", "refuse", lambda S: readonly(S, "u" + name) or S.p("u" + name), "--overwrite")
    c("inside a user file's 'folder' (parent is a file)", "error",
      lambda S: S.mark(S.user("afile", b"x")) or S.p("afile/" + name))
    c("same name, folder part through ..", "refuse", lambda S: S.mark(S.user("u" + name, b"user data")) or S.p("o/../u" + name))
    c("a name in a new subfolder", "ok_or_refuse", lambda S: S.p("new/sub/" + name))


for _o, _n in SINGLE:
    single_cases(_o, _n)


def same(title: str, expect: str, argv_fn: Callable[[Scene], List[str]]) -> None:
    def fn(S: Scene) -> Outcome:
        S.mark(S.user("keep.txt"))
        return S.call("vos.run", VR(S.p("o"), *argv_fn(S)))
    add(C2, f"same path twice: {title}", expect, fn)


same("--report X --rle X", "refuse", lambda S: ["--report", S.p("x.json"), "--rle", S.p("x.json")])
same("--report X --rle ./X", "refuse", lambda S: ["--report", S.p("x.json"), "--rle", S.p("o/../x.json")])
same("--overlay X.mkv --matte X.mkv", "refuse", lambda S: ["--overlay", S.p("x.mkv"), "--matte", S.p("x.mkv")])
same("--overlay X.mov --matte X.mov", "refuse", lambda S: ["--overlay", S.p("x.mov"), "--matte", S.p("x.mov")])
same("--report inside --out, named like an index png", "refuse", lambda S: ["--report", S.p("o/00000.png")])
same("--report inside --out objects/", "refuse", lambda S: ["--report", S.p("o/objects/r.json")])
same("--report inside --alpha", "refuse", lambda S: ["--alpha", S.p("a"), "--report", S.p("a/r.json")])
same("--report == --out (both new)", "refuse", lambda S: ["--report", S.p("o")])
same("--report == --alpha (both new)", "refuse", lambda S: ["--alpha", S.p("a"), "--report", S.p("a")])
same("--alpha == --out", "refuse", lambda S: ["--alpha", S.p("o")])
same("--alpha inside --out", "refuse", lambda S: ["--alpha", S.p("o/alpha")])
same("--out inside --alpha", "refuse", lambda S: ["--alpha", S.p("o/..")])
same("--report inside --out (own name)", "ok", lambda S: ["--report", S.p("o/report.json")])
same("--rle X --report X (report first)", "refuse", lambda S: ["--rle", S.p("x.json"), "--report", S.p("x.json")])
same("--matte X.mkv --overlay (symlink to X.mkv)", "refuse",
     lambda S: ["--matte", S.p("x.mkv"), "--overlay", S.link("l.mkv", S.p("x.mkv"))])


def twice_rerun(S: Scene) -> Outcome:
    a = VR(S.p("o"), "--report", S.p("o/report.json"), "--rle", S.p("rle.json"))
    S.prior("vos.run", a)
    S.mark(S.user("keep.txt"))
    return S.call("vos.run", a)


add(C2, "rerun with --report inside --out and --rle beside it", "ok", twice_rerun)


def demo_file_then_report(S: Scene) -> Outcome:
    # vos.demo's manifest in the folder lists its clip; a --report named like it is refused (an input)
    S.template("demo")
    return S.call("vos.run", VR(S.p("o"), "--report", S.p("d/clip_mask.png"), video=S.p("d/clip.mp4"),
                                mask=S.p("d/clip_mask.png")))


add(C2, "--report over the demo's mask that is the run's mask", "refuse", demo_file_then_report)
