"""Adversarial checks of the project's output and input promises, as a careless or hostile user would try them.

Run from the repository root:

    python -m benchmarks.adversarial_outputs            # every case
    python -m benchmarks.adversarial_outputs -k alpha    # only cases whose category/name contains "alpha"

What it checks (output options first):

1. data loss in --out / --alpha folders: user files, hand-edited outputs, names slipped into the
   manifest, tampered / garbage / foreign-format manifests, paths outside the folder, symlinks inside,
   the manifest as a folder or a link, killed and running runs, hard links;
2. single-file outputs (--overlay, --report, --rle, --matte) over user files, links, folders, with and
   without --overwrite, and one path given for two outputs;
3. outputs that are inputs (the video, the mask, a frames folder, the weights, the config, a dataset;
   through symlinks and `..`);
4. the other tools' outputs: seggpt.run, seggpt.tune, vos.demo, training, benchmarks.vos,
   benchmarks.evaluate, the web app's Editor (exports, sessions, uploads);
5. bad values and empty strings;
6. special files (FIFOs, /dev/zero, /dev/null, sockets) as inputs and outputs (subprocesses, timeouts);
7. library inputs (NaN, inf, wrong dtype / shape / layout, numpy vs torch, int8).

For every case: the expected outcome, the exit code (or exception), whether every pre-existing user byte
is unchanged (each case runs in its own sandbox folder; the whole sandbox is snapshotted before and
after, plus the shared inputs and a victim folder outside the sandboxes), whether a traceback was
printed, and for refusals whether anything was written (a refusal must come before any work).

Prints one line per case (category, name, PASS/FAIL, reason), then a tally by category; exit code 1
if any case failed. Everything happens under a temporary folder in /tmp (removed at the end, kept with
--keep). Cheap: the packaged `small` weights, 2-3 frames, `--adapt-steps 0`.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
MANIFEST = ".seggpt-vos-manifest.json"

# ============================================================================ snapshots


def _digest(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry(p: Path) -> Optional[tuple]:
    """What a path holds (never following a link): None when absent."""
    try:
        st = os.lstat(p)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(p))
    if stat.S_ISDIR(st.st_mode):
        return ("dir",)
    if stat.S_ISREG(st.st_mode):
        return ("file", st.st_size, _digest(p), stat.S_IMODE(st.st_mode))
    return ("special", stat.S_IFMT(st.st_mode))


def snap(folder: Path) -> Dict[str, tuple]:
    out: Dict[str, tuple] = {}
    if entry(folder) is None:
        return out
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            out[os.path.relpath(p, folder)] = entry(p)
    return out


def diff(a: Dict[str, tuple], b: Dict[str, tuple]) -> List[str]:
    d = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            d.append(f"{k}:{'new' if k not in a else 'gone' if k not in b else 'changed'}")
    return d


# ============================================================================ the sandbox of one case


class Outcome:
    def __init__(self) -> None:
        self.code: Any = None
        self.stderr = ""
        self.stdout = ""
        self.exc: Optional[BaseException] = None
        self.tb = False
        self.cmd = ""
        self.value: Any = None


class Sandbox:
    def __init__(self, d: Path):
        self.d = d
        d.mkdir(parents=True)
        self.users: Dict[Path, tuple] = {}
        self.before: Optional[Dict[str, tuple]] = None
        self.outcome: Optional[Outcome] = None
        self.extra: List[str] = []  # extra failure reasons

    def p(self, rel: str) -> str:
        return str(self.d / rel)

    # ----------------------------------------------------------- user content
    def user(self, rel: str, data: bytes = b"my precious notes\n") -> str:
        p = self.d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return str(p)

    def link(self, rel: str, target: str) -> str:
        p = self.d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, p)
        return str(p)

    def mark(self, *paths: str) -> None:
        """Register paths (files, links, folders: everything under them) as the user's."""
        for path in paths:
            p = Path(path)
            self.users[p] = entry(p)
            if p.is_dir() and not p.is_symlink():
                for k, v in snap(p).items():
                    self.users[p / k] = v

    def copy(self, src: Path, rel: str = "") -> Path:
        dst = self.d / rel if rel else self.d
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        return dst

    # ----------------------------------------------------------- running things
    def _start(self, cmd: str) -> Outcome:
        self.before = snap(self.d)
        for p in list(self.users):
            if self.users[p] is None:
                self.users[p] = entry(p)
        o = Outcome()
        o.cmd = cmd
        self.outcome = o
        return o

    def call(self, module: str, argv: List[str]) -> Outcome:
        """A tool's main(argv) in-process, stdout and stderr captured."""
        o = self._start(f"python -m {module} " + " ".join(_q(a) for a in argv))
        main = importlib.import_module(module).main
        err, out = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(self.d)  # a default output (vos.run without --out) lands in the sandbox, never in the repository
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                o.code = main(list(argv))
            except SystemExit as e:
                o.code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if not isinstance(e.code, int) and e.code is not None:
                    err.write(str(e.code) + "\n")
            except BaseException as e:  # noqa: BLE001 - what escaped the tool is the finding
                o.exc = e
                o.code = "exception"
                err.write(traceback.format_exc())
            finally:
                os.chdir(cwd)
        o.stderr, o.stdout = err.getvalue(), out.getvalue()
        o.tb = "Traceback (most recent call last)" in o.stderr
        return o

    def sub(self, module: str, argv: List[str], timeout: float = 90) -> Outcome:
        """A tool as a subprocess (FIFOs, devices: it must not block)."""
        o = self._start(f"python -m {module} " + " ".join(_q(a) for a in argv))
        try:
            r = subprocess.run([PY, "-m", module, *argv], cwd=self.d, capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL, env=_env())
            o.code, o.stderr, o.stdout = r.returncode, r.stderr, r.stdout
        except subprocess.TimeoutExpired as e:
            o.code = "timeout"
            o.stderr = (e.stderr or b"").decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        o.tb = "Traceback (most recent call last)" in o.stderr
        return o

    def pyrun(self, code: str, timeout: float = 90) -> Outcome:
        """A snippet in a subprocess; it prints RESULT:<exception class names or ok>."""
        o = self._start(f"python -c <{code.strip().splitlines()[-1][:80]}...>")
        try:
            r = subprocess.run([PY, "-c", code], cwd=self.d, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL, env=_env())
            o.code, o.stderr, o.stdout = r.returncode, r.stderr, r.stdout
        except subprocess.TimeoutExpired:
            o.code = "timeout"
        o.tb = "Traceback (most recent call last)" in o.stderr
        return o

    def lib(self, desc: str, fn: Callable[[], Any]) -> Outcome:
        o = self._start(desc)
        try:
            o.value = fn()
            o.code = "returned"
        except BaseException as e:  # noqa: BLE001
            o.exc = e
            o.code = type(e).__name__
        return o


def _env() -> Dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _q(a: str) -> str:
    return a if a and all(c.isalnum() or c in "/._-=:" for c in a) else json.dumps(a)


# ============================================================================ shared inputs and templates

G: Dict[str, Any] = {}


def B(rel: str) -> str:
    return str(G["base"] / rel)


def build_inputs(tmp: Path) -> None:
    base = tmp / "base"
    base.mkdir()
    G["base"], G["victim"], G["tmp"] = base, tmp / "victim", tmp
    G["victim"].mkdir()
    (G["victim"] / "victim.txt").write_bytes(b"do not touch me\n")
    (G["victim"] / "photo.png").write_bytes(b"\x89PNG not really\n")
    _quiet(lambda: importlib.import_module("vos.demo").main(["--frames", "3", str(base)]))
    import av
    import numpy as np
    from PIL import Image

    (base / "frames").mkdir()
    with av.open(str(base / "clip.mp4")) as c:
        for i, f in enumerate(c.decode(video=0)):
            f.to_image().save(base / "frames" / f"{i:05d}.png")
    shutil.copy2(base / "frames" / "00000.png", base / "img.png")
    (base / "masks").mkdir()
    shutil.copy2(base / "clip_mask.png", base / "masks" / "00000.png")
    img = Image.open(base / "img.png").convert("RGB")
    m = Image.open(base / "clip_mask.png")
    img.resize((64, 64)).save(base / "small_img.png")
    m.resize((64, 64), Image.NEAREST).save(base / "small_mask.png")
    shutil.copy2(ROOT / "seggpt" / "weights" / "small.safetensors", base / "small.safetensors")
    (base / "config.yaml").write_text("engine:\n  memory: 4\n")
    (base / "notes.txt").write_text("a text file\n")
    from vos.synthetic import write_davis2017

    write_davis2017(str(base / "davis"), num_sequences=1, seed=3, num_frames=3, size=(32, 48), num_objects=(1, 1))
    G["size"] = np.array(m).shape[:2]


def _quiet(fn: Callable[[], Any]) -> Any:
    with contextlib.redirect_stderr(io.StringIO()) as e, contextlib.redirect_stdout(io.StringIO()):
        try:
            r = fn()
        except SystemExit as x:
            r = x.code
    if r not in (0, None):
        raise RuntimeError(f"setup failed ({r}): {e.getvalue()[-2000:]}")
    return r


def VR(out: Optional[str], *extra: str, video: Optional[str] = None, mask: Optional[str] = None) -> List[str]:
    """vos.run's argv: the demo clip, 2 frames, small weights, no adaptation."""
    a = [B("clip.mp4") if video is None else video, "--first-mask", B("clip_mask.png") if mask is None else mask, "--weights", "small", "--end", "2",
         "--quiet", "--adapt-steps", "0"]
    if out is not None:
        a += ["--out", out]
    return a + list(extra)


def SR(out: str, *extra: str, query: Optional[str] = None) -> List[str]:
    return ["--prompt", B("img.png"), B("clip_mask.png"), B("frames/00001.png") if query is None else query, "--out", out,
            "--weights", "small", *extra]


def TUNE(out: str, *extra: str) -> List[str]:
    return ["--weights", "small", "--example", B("small_img.png"), B("small_mask.png"), "--steps", "1",
            "--out", out, *extra]


TRAIN_FAST = ["steps=1", "eval_pairs=2", "eval_clips=1", "batch_size=2", "num_workers=0"]


def TRAIN(out: str, *extra: str) -> List[str]:
    return ["--config", str(ROOT / "configs" / "train_small.yaml"), f"out_dir={out}", *TRAIN_FAST, *extra]


def BV(out: str, *extra: str, root: Optional[str] = None) -> List[str]:
    return ["--dataset", "davis2017", "--root", B("davis") if root is None else root, "--out", out, "--method", "copy-first",
            "--quiet", *extra]


def EV(results: str, *extra: str, root: Optional[str] = None) -> List[str]:
    return ["--dataset", "davis2017", "--root", B("davis") if root is None else root, "--results", results, *extra]


def build_templates(tmp: Path) -> None:
    t = tmp / "templates"
    vr = t / "vr"
    vr.mkdir(parents=True)
    _quiet(lambda: importlib.import_module("vos.run").main(VR(
        str(vr / "o"), "--object-masks", "--alpha", str(vr / "a"), "--overlay", str(vr / "ov.mp4"),
        "--report", str(vr / "r.json"), "--rle", str(vr / "rle.json"), "--matte", str(vr / "m.mkv"))))
    G["t_vr"] = vr
    sr = t / "sr"
    sr.mkdir()
    _quiet(lambda: importlib.import_module("seggpt.run").main(SR(str(sr / "sr"))))
    G["t_sr"] = sr
    tu = t / "tu"
    tu.mkdir()
    _quiet(lambda: importlib.import_module("seggpt.tune").main(TUNE(str(tu / "p.safetensors"))))
    G["t_tu"] = tu
    bv = t / "bv"
    bv.mkdir()
    _quiet(lambda: importlib.import_module("benchmarks.vos").main(BV(str(bv / "bv"))))
    G["t_bv"] = bv
    de = t / "demo"
    de.mkdir()
    _quiet(lambda: importlib.import_module("vos.demo").main(["--frames", "2", str(de / "d")]))
    G["t_demo"] = de
    tr = t / "tr"
    tr.mkdir()
    _quiet(lambda: importlib.import_module("training.__main__").main(TRAIN(str(tr / "tr"))))
    G["t_tr"] = tr


# ============================================================================ manifests


def mf(folder: str) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text())


def mf_write(folder: str, data: Any) -> None:
    (Path(folder) / MANIFEST).write_text(data if isinstance(data, str) else json.dumps(data))


def rec(path: str) -> dict:
    return {"size": os.path.getsize(path), "sha256": _digest(Path(path))}


# ============================================================================ cases

CASES: List[tuple] = []  # (category, name, expect, fn)


def case(cat: str, name: str, expect: str):
    def deco(fn):
        CASES.append((cat, name, expect, fn))
        return fn
    return deco


def add(cat: str, name: str, expect: str, fn: Callable[[Sandbox], Any]) -> None:
    CASES.append((cat, name, expect, fn))


C1, C2, C3, C4, C5, C6, C7 = ("1-folders", "2-single-files", "3-outputs-are-inputs", "4-other-tools",
                              "5-bad-values", "6-special-files", "7-library")

# ---------------------------------------------------------------------------- 1. --out / --alpha folders


def folder_cases(opt: str) -> None:
    """opt: --out or --alpha; the sandbox holds a template run of ours (o/, a/, single files)."""
    F = "o" if opt == "--out" else "a"

    def base(S: Sandbox) -> str:
        S.copy(G["t_vr"])
        return S.p(F)

    def run(S: Sandbox, *extra: str) -> Outcome:
        if opt == "--out":
            return S.call("vos.run", VR(S.p("o"), "--object-masks", *extra))
        return S.call("vos.run", VR(S.p("o"), "--alpha", S.p("a"), *extra))

    first_png = "00000.png" if opt == "--out" else "001/00000.png"
    pat_name = "00099.png" if opt == "--out" else "001/00099.png"

    def c(name: str, expect: str, prep: Callable[[Sandbox, str], Any], *extra: str) -> None:
        def fn(S: Sandbox) -> Outcome:
            f = base(S)
            prep(S, f)
            return run(S, *extra)
        add(C1, f"{opt} {name}{' --overwrite' if '--overwrite' in extra else ''}", expect, fn)

    both = [(), ("--overwrite",)]
    c("rerun over our own unchanged outputs", "ok", lambda S, f: None)
    c("rerun twice (second rerun)", "ok", lambda S, f: _quiet(lambda: importlib.import_module("vos.run").main(
        VR(S.p("o"), "--object-masks") if opt == "--out" else VR(S.p("o"), "--alpha", S.p("a")))))
    c("one of ours deleted by the user", "ok", lambda S, f: os.unlink(Path(f) / first_png))
    for ex in both:
        c("user notes.txt inside", "refuse", lambda S, f: S.mark(S.user(f"{F}/notes.txt")), *ex)
        c("user png with a name we write, unlisted", "refuse", lambda S, f: S.mark(S.user(f"{F}/{pat_name}")), *ex)
        c("our png hand-edited", "refuse", lambda S, f: S.mark(S.user(f"{F}/{first_png}", b"hand-corrected")), *ex)
        c("our png hand-edited, same size", "refuse", lambda S, f: S.mark(_same_size_edit(Path(f) / first_png)), *ex)
        c("user name slipped into manifest with fake hash", "refuse", lambda S, f: _slip(S, f, fake=True), *ex)
        c("garbage manifest (not JSON) over our pngs", "refuse", lambda S, f: mf_write(f, "{not json"), *ex)
        c("truncated manifest", "refuse", lambda S, f: mf_write(f, (Path(f) / MANIFEST).read_text()[:40]), *ex)
        c("unknown manifest format", "refuse", lambda S, f: mf_write(f, {**mf(f), "format": "seggpt-vos-manifest/9"}),
          *ex)
        c("manifest with ../victim (real hash)", "refuse", lambda S, f: _outside(S, f, "../victim.txt"), *ex)
        c("manifest with /abs victim path", "refuse", lambda S, f: _outside(S, f, "ABS"), *ex)
        c("symlink named like our png -> user file", "refuse", lambda S, f: _link_in(S, f, first_png), *ex)
        c("killed run + user file", "refuse", lambda S, f: (_killed(f), S.mark(S.user(f"{F}/notes.txt"))), *ex)
        c("temp-looking user file .holiday.backup1.tmp", "refuse",
          lambda S, f: S.mark(S.user(f"{F}/.holiday.backup1.tmp", b"user backup")), *ex)
        c("manifest is a symlink to a user json", "refuse", lambda S, f: _mf_link(S, f), *ex)
    c("v2 manifest lists user file with null hash", "refuse", lambda S, f: _slip(S, f, fake=False), "--overwrite")
    c("manifest with sub/../../victim", "refuse", lambda S, f: _outside(S, f, "x/../../victim.txt"))
    c("empty-object manifest {}", "refuse", lambda S, f: mf_write(f, "{}"))
    c("manifest files as list in format 2", "refuse", lambda S, f: mf_write(f, {**mf(f), "files": list(mf(f)["files"])}))
    c("manifest record size is bool", "refuse",
      lambda S, f: mf_write(f, {**mf(f), "files": {k: {**v, "size": True} for k, v in mf(f)["files"].items()}}))
    c("manifest record sha256 short", "refuse",
      lambda S, f: mf_write(f, {**mf(f), "files": {k: {**v, "sha256": "ab"} for k, v in mf(f)["files"].items()}}))
    c("manifest is a folder", "refuse", lambda S, f: (os.unlink(Path(f) / MANIFEST), os.mkdir(Path(f) / MANIFEST)))
    c("manifest is a folder", "refuse", lambda S, f: (os.unlink(Path(f) / MANIFEST), os.mkdir(Path(f) / MANIFEST)),
      "--overwrite")
    c("manifest symlink to a copy of itself elsewhere", "refuse", lambda S, f: _mf_link(S, f, copy=True))
    c("symlinked subfolder -> user folder", "refuse", lambda S, f: _link_dir_in(S, f), "--overwrite")
    c("user subfolder with a file", "refuse", lambda S, f: S.mark(S.user(f"{F}/mine/keep.txt")))
    c("user empty folder named like our png", "refuse", lambda S, f: _empty_dir_clash(S, f, first_png))
    c("hidden user file .notes", "refuse", lambda S, f: S.mark(S.user(f"{F}/.notes")))
    c("user file .vos-write-test-mine", "refuse", lambda S, f: S.mark(S.user(f"{F}/.vos-write-test-mine")),
      "--overwrite")
    c("read-only user file", "refuse", lambda S, f: _readonly(S, f"{F}/notes.txt"), "--overwrite")
    c("v1 manifest (no hashes)", "refuse", lambda S, f: _v1(f))
    c("v1 manifest (no hashes)", "ok", lambda S, f: _v1(f), "--overwrite")
    c("v1 manifest + user file", "refuse", lambda S, f: (_v1(f), S.mark(S.user(f"{F}/notes.txt"))), "--overwrite")
    c("killed run (running, dead pid)", "refuse", lambda S, f: _killed(f))
    # a killed run's files carry no hash: not even --overwrite takes them (only a tool's --resume)
    c("killed run (running, dead pid)", "refuse", lambda S, f: _killed(f), "--overwrite")
    c("running manifest, pid alive", "refuse", lambda S, f: _alive(f), "--overwrite")
    c("hard link of our output kept by the user elsewhere", "ok", lambda S, f: _hardlink(S, f, first_png))

    def folder_link(S: Sandbox) -> Outcome:
        S.copy(G["t_vr"])
        shutil.rmtree(S.p(F))
        S.mark(S.user("mine/keep.txt"), S.user("mine/00000.png", b"user png"))
        S.link(F, S.p("mine"))
        return run(S, "--overwrite")
    add(C1, f"{opt} the folder is a symlink to a user folder --overwrite", "refuse", folder_link)

    def folder_file(S: Sandbox) -> Outcome:
        S.copy(G["t_vr"])
        shutil.rmtree(S.p(F))
        S.mark(S.user(F, b"I am a file"))
        return run(S)
    add(C1, f"{opt} the folder is a user file", "refuse", folder_file)


def _same_size_edit(p: Path) -> str:
    b = bytearray(p.read_bytes())
    b[-20] ^= 0xFF
    p.write_bytes(bytes(b))
    return str(p)


def _slip(S: Sandbox, f: str, fake: bool) -> None:
    p = S.user(f"{os.path.basename(f)}/notes.txt")
    S.mark(p)
    m = mf(f)
    m["files"]["notes.txt"] = {"size": 18, "sha256": "0" * 64} if fake else None
    mf_write(f, m)


def _outside(S: Sandbox, f: str, rel: str) -> None:
    victim = S.user("victim.txt", b"victim of a crafted manifest")
    S.mark(victim)
    m = mf(f)
    m["files"][victim if rel == "ABS" else rel] = rec(victim)
    mf_write(f, m)


def _link_in(S: Sandbox, f: str, name: str) -> None:
    target = S.user("mine/photo.png", b"user photo")
    os.unlink(Path(f) / name)
    os.symlink(target, Path(f) / name)
    S.mark(target, str(Path(f) / name))


def _link_dir_in(S: Sandbox, f: str) -> None:
    S.mark(S.user("mine/keep.txt"))
    os.symlink(S.p("mine"), Path(f) / "linked")
    S.mark(str(Path(f) / "linked"))


def _empty_dir_clash(S: Sandbox, f: str, name: str) -> None:
    d = Path(f) / name
    if d.exists():
        d.unlink()
    d.mkdir()
    S.mark(str(d))


def _mf_link(S: Sandbox, f: str, copy: bool = False) -> None:
    if copy:
        target = S.p("elsewhere.json")
        shutil.copy2(Path(f) / MANIFEST, target)
    else:
        target = S.user("user.json", b'{"mine": true}')
    os.unlink(Path(f) / MANIFEST)
    os.symlink(target, Path(f) / MANIFEST)
    S.mark(target, str(Path(f) / MANIFEST))


def _readonly(S: Sandbox, rel: str) -> None:
    p = S.user(rel)
    os.chmod(p, 0o444)
    S.mark(p)


def _v1(f: str) -> None:
    m = mf(f)
    mf_write(f, {"format": "seggpt-vos-manifest/1", "files": sorted(m["files"]), "dirs": m.get("dirs", [])})


def _killed(f: str) -> None:
    m = mf(f)
    p = subprocess.Popen(["true"])
    p.wait()
    m.update(status="running", complete=False, pid=p.pid, host=socket.gethostname(), files={})
    mf_write(f, m)


def _alive(f: str) -> None:
    m = mf(f)
    p = subprocess.Popen(["sleep", "60"])
    G.setdefault("sleepers", []).append(p)
    m.update(status="running", complete=False, pid=p.pid, host=socket.gethostname())
    mf_write(f, m)


def _hardlink(S: Sandbox, f: str, name: str) -> None:
    keep = S.p("kept-copy.png")
    os.link(Path(f) / name, keep)
    S.mark(keep)


folder_cases("--out")
folder_cases("--alpha")


# ---------------------------------------------------------------------------- 2. single files

SINGLE = [("--overlay", "ov.mp4"), ("--report", "r.json"), ("--rle", "rle.json"), ("--matte", "m.mkv")]


def single_cases(opt: str, name: str) -> None:
    ext = os.path.splitext(name)[1]

    def c(title: str, expect: str, prep: Callable[[Sandbox], Optional[str]], *extra: str) -> None:
        def fn(S: Sandbox) -> Outcome:
            S.copy(G["t_vr"])
            path = prep(S) or S.p(name)
            return S.call("vos.run", VR(S.p("o"), opt, path, *extra))
        add(C2, f"{opt} {title}{' --overwrite' if '--overwrite' in extra else ''}", expect, fn)

    def fresh(S: Sandbox) -> None:  # a sandbox without our template single files
        for n in ("ov.mp4", "r.json", "rle.json", "m.mkv", MANIFEST):
            os.unlink(S.p(n))

    for ex in [(), ("--overwrite",)]:
        c("over a user file (no manifest)", "refuse", lambda S: (fresh(S), S.mark(S.user(name, b"user data")))[-1]
          and None, *ex)
        c("over a user file next to our manifest", "refuse",
          lambda S: S.mark(S.user("u" + name, b"user data")) or S.p("u" + name), *ex)
        c("our file edited after the run", "refuse", lambda S: S.mark(S.user(name, b"edited")), *ex)
        c("symlink -> user file", "refuse",
          lambda S: (os.unlink(S.p(name)), S.mark(S.user("mine" + ext, b"u")), S.mark(S.link(name, S.p("mine" + ext))))
          and None, *ex)
        c("folder with a user file", "refuse",
          lambda S: (os.unlink(S.p(name)), S.mark(S.user(f"{name}/keep.txt"))) and None, *ex)
        c("garbage parent manifest over our file", "refuse", lambda S: mf_write(str(S.d), "[[["), *ex)
        c("parent manifest lists ../victim", "refuse", lambda S: _outside(S, str(S.d), "../victim.txt"), *ex)
    c("dangling symlink", "refuse", lambda S: (os.unlink(S.p(name)), S.mark(S.link(name, S.p("nowhere" + ext))))
      and None)
    c("symlink -> victim outside the sandbox", "refuse",
      lambda S: (os.unlink(S.p(name)), S.mark(S.link(name, str(G["victim"] / "victim.txt")))) and None, "--overwrite")
    c("rerun over our own file", "ok", lambda S: None)
    c("v1 parent manifest (no hash)", "refuse", lambda S: _v1(str(S.d)))
    c("v1 parent manifest (no hash)", "ok", lambda S: _v1(str(S.d)), "--overwrite")
    c("hard link of our file kept elsewhere", "ok", lambda S: (os.link(S.p(name), S.p("keep" + ext)),
                                                               S.mark(S.p("keep" + ext))) and None)
    c("read-only user file", "refuse", lambda S: _readonly(S, "u" + name) or S.p("u" + name), "--overwrite")
    c("inside a user file's 'folder' (parent is a file)", "error",
      lambda S: S.mark(S.user("afile", b"x")) or S.p("afile/" + name))
    c("same name, folder part through ..", "refuse",
      lambda S: S.mark(S.user("u" + name, b"user data")) or S.p("o/../u" + name))
    c("a name in a new subfolder", "ok_or_refuse", lambda S: S.p("new/sub/" + name))


for _o, _n in SINGLE:
    single_cases(_o, _n)


def same(title: str, expect: str, argv_fn: Callable[[Sandbox], List[str]]) -> None:
    def fn(S: Sandbox) -> Outcome:
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


def twice_rerun(S: Sandbox) -> Outcome:
    a = VR(S.p("o"), "--report", S.p("o/report.json"), "--rle", S.p("rle.json"))
    _quiet(lambda: importlib.import_module("vos.run").main(a))
    S.mark(S.user("keep.txt"))
    return S.call("vos.run", a)


add(C2, "rerun with --report inside --out and --rle beside it", "ok", twice_rerun)


def demo_file_then_report(S: Sandbox) -> Outcome:
    # vos.demo's manifest in the folder lists its clip; a --report named like it is refused (an input)
    S.copy(G["t_demo"])
    return S.call("vos.run", VR(S.p("o"), "--report", S.p("d/clip_mask.png"), video=S.p("d/clip.mp4"),
                                mask=S.p("d/clip_mask.png")))


add(C2, "--report over the demo's mask that is the run's mask", "refuse", demo_file_then_report)

# ---------------------------------------------------------------------------- 3. outputs that are inputs


def inp(title: str, expect: str, fn: Callable[[Sandbox], Outcome]) -> None:
    add(C3, title, expect, fn)


def _local(S: Sandbox) -> None:
    S.copy(G["base"] / "clip.mp4", "in/clip.mp4")
    S.copy(G["base"] / "clip_mask.png", "in/mask.png")
    S.copy(G["base"] / "frames", "in/frames")
    S.copy(G["base"] / "small.safetensors", "in/w.safetensors")
    S.copy(G["base"] / "masks", "in/masks")
    S.copy(G["base"] / "config.yaml", "in/config.yaml")
    S.mark(S.p("in"))


def LV(S: Sandbox, out: Optional[str], *extra: str, frames: bool = False) -> List[str]:
    a = VR(out, *extra, video=S.p("in/frames" if frames else "in/clip.mp4"), mask=S.p("in/mask.png"))
    return a


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
    inp(_title, "refuse", (lambda a: lambda S: (_local(S), S.call("vos.run", a(S)))[-1])(_args))


def default_out_ok(S: Sandbox) -> Outcome:
    _local(S)
    return S.call("vos.run", LV(S, None))


inp("no --out: default <video>_masks next to the video", "ok", default_out_ok)


def default_out_user(S: Sandbox) -> Outcome:
    _local(S)
    S.mark(S.user("clip_masks/00000.png", b"user's own"))
    return S.call("vos.run", LV(S, None, "--overwrite"))


inp("no --out: default folder (cwd/<video>_masks) holds a user png --overwrite", "refuse", default_out_user)


def sr_in(title: str, fn: Callable[[Sandbox], List[str]], module: str = "seggpt.run") -> None:
    inp(title, "refuse", lambda S: (_local(S), S.call(module, fn(S)))[-1])


sr_in("seggpt.run --out holds the query", lambda S: ["--prompt", S.p("in/frames/00000.png"), S.p("in/mask.png"),
                                                      S.p("in/frames/00001.png"), "--out", S.p("in/frames"),
                                                      "--weights", "small"])
sr_in("seggpt.run --out holds the prompt mask", lambda S: ["--prompt", B("img.png"), S.p("in/mask.png"),
                                                            B("frames/00001.png"), "--out", S.p("in"), "--weights",
                                                            "small"])
sr_in("seggpt.run --out is the weights file", lambda S: SR(S.p("in/w.safetensors")) + ["--weights",
                                                                                       S.p("in/w.safetensors")])
sr_in("seggpt.run --out holds the weights", lambda S: SR(S.p("in")) + ["--weights", S.p("in/w.safetensors")])
sr_in("seggpt.run --out holds the query via ..", lambda S: ["--prompt", B("img.png"), B("clip_mask.png"),
                                                             S.p("in/frames/00001.png"), "--out",
                                                             S.p("in/masks/../frames"), "--weights", "small"])
sr_in("seggpt.tune --out is the example image", lambda S: ["--weights", "small", "--example", S.p("in/mask.png"),
                                                            S.p("in/mask.png"), "--steps", "1", "--out",
                                                            S.p("in/mask.png")], "seggpt.tune")
sr_in("seggpt.tune --out is the weights", lambda S: ["--weights", S.p("in/w.safetensors"), "--example",
                                                      B("small_img.png"), B("small_mask.png"), "--steps", "1",
                                                      "--out", S.p("in/w.safetensors")], "seggpt.tune")
sr_in("seggpt.tune --out is the example mask via symlink", lambda S: ["--weights", "small", "--example",
                                                                       B("small_img.png"), S.p("in/mask.png"),
                                                                       "--steps", "1", "--out",
                                                                       S.link("p.safetensors", S.p("in/mask.png"))],
      "seggpt.tune")


def davis_local(S: Sandbox) -> str:
    S.copy(G["base"] / "davis", "davis")
    S.mark(S.p("davis"))
    return S.p("davis")


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
    inp(_title, "refuse", (lambda f, m: lambda S: (davis_local(S), S.call("training.__main__" if m == "training" else m, f(S)))[-1])(_fn, _mod))

# ---------------------------------------------------------------------------- 4. the other tools


def tool(title: str, expect: str, fn: Callable[[Sandbox], Outcome]) -> None:
    add(C4, title, expect, fn)


# seggpt.run
def _sr(prep: Callable[[Sandbox], Any], *extra: str) -> Callable[[Sandbox], Outcome]:
    def fn(S: Sandbox) -> Outcome:
        S.copy(G["t_sr"])
        prep(S)
        return S.call("seggpt.run", SR(S.p("sr"), *extra))
    return fn


tool("seggpt.run rerun over our outputs", "ok", _sr(lambda S: None))
for _ex in [(), ("--overwrite",)]:
    _t = " --overwrite" if _ex else ""
    tool("seggpt.run user file in --out" + _t, "refuse", _sr(lambda S: S.mark(S.user("sr/notes.txt")), *_ex))
    tool("seggpt.run our mask edited" + _t, "refuse", _sr(lambda S: S.mark(S.user("sr/00001_mask.png", b"e")), *_ex))
    tool("seggpt.run garbage manifest" + _t, "refuse", _sr(lambda S: mf_write(S.p("sr"), "nope"), *_ex))
    tool("seggpt.run symlink mask -> user file" + _t, "refuse",
         _sr(lambda S: (os.unlink(S.p("sr/00001_mask.png")), S.mark(S.user("u.png", b"u")),
                        S.mark(S.link("sr/00001_mask.png", S.p("u.png")))), *_ex))
tool("seggpt.run v1 manifest", "refuse", _sr(lambda S: _v1(S.p("sr"))))
tool("seggpt.run v1 manifest --overwrite", "ok", _sr(lambda S: _v1(S.p("sr")), "--overwrite"))
tool("seggpt.run user png named like our output, fresh folder", "refuse",
     lambda S: (S.mark(S.user("sr/00001_overlay.png", b"mine")), S.call("seggpt.run", SR(S.p("sr"))))[-1])
tool("seggpt.run --out is a user file", "refuse",
     lambda S: (S.mark(S.user("sr", b"file")), S.call("seggpt.run", SR(S.p("sr"))))[-1])
tool("seggpt.run --out is a symlink to a user folder", "refuse",
     lambda S: (S.mark(S.user("mine/a.txt")), S.link("sr", S.p("mine")), S.call("seggpt.run", SR(S.p("sr"))))[-1])
tool("seggpt.run manifest with ../victim", "refuse", _sr(lambda S: _outside(S, S.p("sr"), "../victim.txt")))


# seggpt.tune
def _tu(prep: Callable[[Sandbox], Optional[str]]) -> Callable[[Sandbox], Outcome]:
    def fn(S: Sandbox) -> Outcome:
        S.copy(G["t_tu"])
        out = prep(S) or S.p("p.safetensors")
        return S.call("seggpt.tune", TUNE(out))
    return fn


tool("seggpt.tune rerun over our prompt", "ok", _tu(lambda S: None))
tool("seggpt.tune over a user file", "refuse", _tu(lambda S: S.mark(S.user("u.safetensors", b"mine")) or
                                                 S.p("u.safetensors")))
tool("seggpt.tune our prompt edited", "refuse", _tu(lambda S: S.mark(S.user("p.safetensors", b"edited"))))
tool("seggpt.tune symlink -> user file", "refuse",
     _tu(lambda S: S.mark(S.user("u.bin", b"u")) or S.mark(S.link("l.safetensors", S.p("u.bin"))) or
         S.p("l.safetensors")))
tool("seggpt.tune --out is a folder", "refuse", _tu(lambda S: S.mark(S.user("dir.safetensors/k.txt")) or
                                                   S.p("dir.safetensors")))
tool("seggpt.tune parent manifest garbage", "refuse", _tu(lambda S: mf_write(str(S.d), "garbage")))


# vos.demo
def _demo(prep: Callable[[Sandbox], Any], argv: Optional[List[str]] = None) -> Callable[[Sandbox], Outcome]:
    def fn(S: Sandbox) -> Outcome:
        S.copy(G["t_demo"])
        prep(S)
        return S.call("vos.demo", argv or ["--frames", "2", S.p("d")])
    return fn


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
def _tr(prep: Callable[[Sandbox], Any], *extra: str) -> Callable[[Sandbox], Outcome]:
    def fn(S: Sandbox) -> Outcome:
        S.copy(G["t_tr"])
        prep(S)
        return S.call("training.__main__", TRAIN(S.p("tr"), *extra))
    return fn


tool("training rerun over our run (no flag)", "ok_or_refuse_keep", _tr(lambda S: S.mark(S.user("keep.txt"))))
tool("training user notes --overwrite", "refuse", _tr(lambda S: S.mark(S.user("tr/notes.txt")), "--overwrite"))
tool("training log.jsonl edited --overwrite", "refuse",
     _tr(lambda S: S.mark(S.user("tr/log.jsonl", b'{"my": "notes"}\n')), "--overwrite"))
tool("training best.safetensors edited --resume", "refuse",
     _tr(lambda S: S.mark(S.user("tr/best.safetensors", b"x")), "--resume"))
tool("training symlink last.pt -> user file --overwrite", "refuse",
     _tr(lambda S: (os.unlink(S.p("tr/last.pt")), S.mark(S.user("u.pt", b"u")), S.mark(S.link("tr/last.pt",
                                                                                              S.p("u.pt")))),
         "--overwrite"))
tool("training garbage manifest --overwrite (legacy names: documented)", "ok_or_refuse", _tr(lambda S: mf_write(S.p("tr"), "?"), "--overwrite"))
tool("training out_dir is a user file", "refuse",
     lambda S: (S.mark(S.user("tr", b"f")), S.call("training.__main__", TRAIN(S.p("tr"))))[-1])
tool("training --overwrite over our run", "ok", _tr(lambda S: None, "--overwrite"))


# benchmarks.vos / evaluate
def _bv(prep: Callable[[Sandbox], Any], *extra: str, module: str = "benchmarks.vos") -> Callable[[Sandbox], Outcome]:
    def fn(S: Sandbox) -> Outcome:
        S.copy(G["t_bv"])
        prep(S)
        return S.call(module, (BV if module == "benchmarks.vos" else EV)(S.p("bv"), *extra))
    return fn


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
def seg():
    if "seg" not in G:
        from vos import VideoSegmenter

        G["seg"] = VideoSegmenter("small", device="cpu")
    return G["seg"]


def editor(S: Sandbox):
    from vos.editor import Editor

    S.copy(G["base"] / "clip.mp4", "root/clip.mp4")
    S.mark(S.p("root/clip.mp4"))
    return Editor(seg(), S.p("root"))


def _ed(prep: Callable[[Sandbox, Any], Any], act: Callable[[Sandbox, Any], Any], desc: str):
    def fn(S: Sandbox) -> Outcome:
        e = editor(S)
        prep(S, e)
        return S.lib(desc, lambda: act(S, e))
    return fn


def _opened(S: Sandbox, e) -> None:
    import numpy as np

    e.open("clip.mp4")
    o = e.add_object("thing")
    m = np.zeros(e.size, bool)
    m[5:20, 5:20] = True
    e.set_mask(0, o, m)


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
     _ed(lambda S, e: (_opened(S, e), S.mark(S.user("elsewhere/k.txt")), S.mark(S.link("root/sessions",
                                                                                     S.p("elsewhere")))),
         lambda S, e: e.save_session("s"), "Editor.save_session with sessions -> link"))
tool("Editor.save_session session file is a symlink", "raise:EditorError",
     _ed(lambda S, e: (_opened(S, e), S.mark(S.user("u.zip", b"u")),
                       S.mark(S.link("root/sessions/s.vos-session.zip", S.p("u.zip")))),
         lambda S, e: e.save_session("s"), "Editor.save_session over a link"))
tool("Editor.export exports/ is a symlink", "raise:EditorError",
     _ed(lambda S, e: (_opened(S, e), S.mark(S.user("elsewhere/k.txt")), S.mark(S.link("root/exports",
                                                                                     S.p("elsewhere")))),
         lambda S, e: e.export(["index"]), "Editor.export(['index']) with exports -> link"))
tool("Editor.export with user files in exports/", "returned",
     _ed(lambda S, e: (_opened(S, e), S.mark(S.user("root/exports/clip-mine.zip", b"z"),
                                             S.user("root/exports/notes.txt"))),
         lambda S, e: e.export(["index", "rle"]), "Editor.export(['index','rle'])"))
tool("Editor upload over a user file of that name", "returned",
     _ed(lambda S, e: S.mark(S.user("root/uploads/clip.mp4", b"user video"), S.copy(G["base"] / "clip.mp4",
                                                                                     "src/clip.mp4").as_posix()),
         lambda S, e: e.open(S.p("src/clip.mp4"), uploaded=True), "Editor.open(src, uploaded=True)"))
tool("Editor upload uploads/ is a symlink", "raise:EditorError",
     _ed(lambda S, e: (S.mark(S.user("elsewhere/k.txt")), S.mark(S.link("root/uploads", S.p("elsewhere"))),
                       S.mark(str(S.copy(G["base"] / "clip.mp4", "src/clip.mp4")))),
         lambda S, e: e.open(S.p("src/clip.mp4"), uploaded=True), "Editor.open(uploaded) uploads -> link"))
tool("Editor upload twice (ours replaced or renamed)", "returned",
     _ed(lambda S, e: (S.mark(str(S.copy(G["base"] / "clip.mp4", "src/clip.mp4"))),
                       e.open(S.p("src/clip.mp4"), uploaded=True)),
         lambda S, e: e.open(S.p("src/clip.mp4"), uploaded=True), "Editor.open(uploaded) x2"))
tool("Editor upload symlink named like ours", "returned",
     _ed(lambda S, e: (S.mark(str(S.copy(G["base"] / "clip.mp4", "src/clip.mp4"))),
                       S.mark(S.link("root/uploads/clip.mp4", str(G["victim"] / "victim.txt")))),
         lambda S, e: e.open(S.p("src/clip.mp4"), uploaded=True), "Editor.open(uploaded) over a link"))
tool("Editor.open ../outside", "raise:EditorError",
     _ed(lambda S, e: S.mark(str(S.copy(G["base"] / "clip.mp4", "out.mp4"))), lambda S, e: e.open("../out.mp4"),
         "Editor.open('../out.mp4')"))
tool("Editor.open symlink leaving root", "raise:EditorError",
     _ed(lambda S, e: (S.mark(str(S.copy(G["base"] / "clip.mp4", "out.mp4"))), S.link("root/l.mp4", S.p("out.mp4"))),
         lambda S, e: e.open("l.mp4"), "Editor.open('l.mp4' -> outside)"))
tool("Editor.media hides links leaving root", "media_no_link",
     _ed(lambda S, e: (S.mark(str(S.copy(G["base"] / "clip.mp4", "out.mp4"))), S.link("root/l.mp4", S.p("out.mp4"))),
         lambda S, e: e.media(), "Editor.media()"))
tool("Editor.open a text file", "raise:EditorError",
     _ed(lambda S, e: S.mark(S.user("root/notes.mp4", b"not a video")), lambda S, e: e.open("notes.mp4"),
         "Editor.open('notes.mp4' text)"))
tool("Editor.open_session garbage zip", "raise:EditorError",
     _ed(lambda S, e: S.mark(S.user("root/sessions/x.vos-session.zip", b"PK garbage")),
         lambda S, e: e.open_session("x.vos-session.zip"), "Editor.open_session(garbage)"))
tool("Editor root is a file", "raise:EditorError",
     lambda S: (S.mark(S.user("rootfile")), S.lib("Editor(seg, file)", lambda: importlib.import_module(
         "vos.editor").Editor(seg(), S.p("rootfile"))))[-1])


def _check_inside(S: Sandbox, path: Path) -> None:
    if not str(Path(path).resolve()).startswith(S.p("root/sessions")):
        S.extra.append(f"session written outside root/sessions: {path}")


# ---------------------------------------------------------------------------- 5. bad values

def bad(title: str, module: str, argv_fn: Callable[[Sandbox], List[str]], expect: str = "refuse",
        must: Optional[str] = None) -> None:
    def fn(S: Sandbox) -> Outcome:
        S.mark(S.user("keep.txt"))
        o = S.call("training.__main__" if module == "training" else module, argv_fn(S))
        if must and must not in o.stderr:
            S.extra.append(f"message lacks {must!r}")
        return o
    add(C5, f"{module} {title}", expect, fn)


for _flag in ["--out", "--alpha", "--overlay", "--report", "--rle", "--matte", "--first-mask", "--weights",
              "--config", "--masks", "--names", "--soft-width", "--end", "--fps", "--device"]:
    if _flag == "--first-mask":
        bad(f"{_flag} ''", "vos.run", lambda S: [B("clip.mp4"), "--first-mask", "", "--weights", "small", "--out",
                                                 S.p("o")])
    elif _flag == "--masks":
        bad(f"{_flag} ''", "vos.run", lambda S: [B("clip.mp4"), "--masks", "", "--weights", "small", "--out",
                                                 S.p("o")])
    else:
        bad(f"{_flag} ''", "vos.run", (lambda f: lambda S: VR(S.p("o"), f, "") if f != "--out" else
                                       VR(None, "--out", ""))(_flag),
            expect="ok_or_refuse" if _flag == "--names" else "refuse")
bad("video ''", "vos.run", lambda S: VR(S.p("o"), video=""))
bad("video '   '", "vos.run", lambda S: VR(S.p("o"), video="   "))
bad("--out '  '", "vos.run", lambda S: VR(None, "--out", "  "))
for _w in ["0", "0.0009", "1.0001", "-1", "nan", "inf", "-inf", "abc", "1e-4", "2"]:
    bad(f"--soft-width {_w}", "vos.run", (lambda w: lambda S: VR(S.p("o"), "--soft", "--alpha", S.p("a"),
                                                                 "--soft-width", w))(_w))
for _w in ["0.001", "1"]:
    bad(f"--soft-width {_w} (bound)", "vos.run", (lambda w: lambda S: VR(S.p("o"), "--soft", "--alpha", S.p("a"),
                                                                         "--soft-width", w))(_w), expect="ok")
for _title, _extra in [("--end 0", ["--end", "0"]), ("--end -1", ["--end", "-1"]), ("--end abc", ["--end", "abc"]),
                       ("--start 2 --end 1", ["--start", "2", "--end", "1"]), ("--start -5", ["--start", "-5"]),
                       ("--start 99", ["--start", "99"]), ("--fps 0", ["--fps", "0"]), ("--fps nan", ["--fps", "nan"]),
                       ("--memory 0", ["--memory", "0"]), ("--memory -3", ["--memory", "-3"]),
                       ("--memory-stride 0", ["--memory-stride", "0"]), ("--threads 0", ["--threads", "0"]),
                       ("--batch-frames 0", ["--batch-frames", "0"]), ("--lost-after -1", ["--lost-after", "-1"]),
                       ("--names 'garbage'", ["--names", "garbage"]), ("--names '1='", ["--names", "1="]),
                       ("--names '=x'", ["--names", "=x"]), ("--names '999=x'", ["--names", "999=x"]),
                       ("--set nokey", ["--set", "nokey"]), ("--set engine.memory=abc", ["--set", "engine.memory=abc"]),
                       ("--set bogus.key=1", ["--set", "bogus.key=1"]), ("--mask-frame 99", ["--mask-frame", "99"]),
                       ("--mask-frame -1", ["--mask-frame", "-1"]), ("--device bogus", ["--device", "bogus"]),
                       ("--device cuda:99", ["--device", "cuda:99"]),
                       ("--config missing.yaml", ["--config", "/nonexistent/x.yaml"]),
                       ("--overlay x.txt", ["--overlay", "/tmp/adv-never/x.txt"]),
                       ("--matte x.mp4", ["--matte", "/tmp/adv-never/x.mp4"]),
                       ("--adapt-steps -1", ["--adapt-steps", "-1"]), ("unknown option", ["--bogus"])]:
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
bad("--weights garbage .safetensors", "vos.run",
    lambda S: VR(S.p("o"), "--weights", S.user("g.safetensors", os.urandom(3000))))
bad("--prompt '' ''", "seggpt.run", lambda S: ["--prompt", "", "", B("img.png"), "--out", S.p("o"), "--weights",
                                               "small"])
bad("query ''", "seggpt.run", lambda S: SR(S.p("o"), query=""))
bad("--out ''", "seggpt.run", lambda S: SR(""))
bad("query missing", "seggpt.run", lambda S: SR(S.p("o"), query="/nonexistent/q.png"))
bad("query is a text file", "seggpt.run", lambda S: SR(S.p("o"), query=B("notes.txt")))
bad("--batch-size 0", "seggpt.run", lambda S: SR(S.p("o"), "--batch-size", "0"))
bad("--batch-size -2", "seggpt.run", lambda S: SR(S.p("o"), "--batch-size", "-2"))
bad("--prompt-file garbage", "seggpt.run",
    lambda S: ["--prompt-file", S.user("g.safetensors", b"junk"), B("img.png"), "--out", S.p("o"), "--weights",
               "small"])
bad("no --prompt at all", "seggpt.run", lambda S: [B("img.png"), "--out", S.p("o"), "--weights", "small"])
bad("--weights ''", "seggpt.run", lambda S: SR(S.p("o"), "--weights", ""))
bad("--steps 0", "seggpt.tune", lambda S: TUNE(S.p("p.safetensors"))[:-3] + ["--steps", "0", "--out",
                                                                                S.p("p.safetensors")])
bad("--steps -1", "seggpt.tune", lambda S: TUNE(S.p("p.safetensors"), "--steps", "-1"))
bad("--lr nan", "seggpt.tune", lambda S: TUNE(S.p("p.safetensors"), "--lr", "nan"))
bad("--lr -1", "seggpt.tune", lambda S: TUNE(S.p("p.safetensors"), "--lr", "-1"))
bad("--example '' ''", "seggpt.tune", lambda S: ["--weights", "small", "--example", "", "", "--out",
                                                 S.p("p.safetensors")])
bad("--out ''", "seggpt.tune", lambda S: TUNE(""))
bad("--weights ''", "seggpt.tune", lambda S: ["--weights", "", "--example", B("small_img.png"), B("small_mask.png"),
                                              "--out", S.p("p.safetensors")])
bad("--batch-size 0", "seggpt.tune", lambda S: TUNE(S.p("p.safetensors"), "--batch-size", "0"))
bad("DIR ''", "vos.demo", lambda S: [""])
bad("--frames 0", "vos.demo", lambda S: ["--frames", "0", S.p("d")])
bad("--frames -1", "vos.demo", lambda S: ["--frames", "-1", S.p("d")])
bad("--objects 0", "vos.demo", lambda S: ["--objects", "0", S.p("d")])
bad("--objects 1000", "vos.demo", lambda S: ["--objects", "1000", S.p("d")])
bad("--root ''", "benchmarks.vos", lambda S: BV(S.p("o"), root=""))
bad("--out ''", "benchmarks.vos", lambda S: BV(""))
bad("--root missing", "benchmarks.vos", lambda S: BV(S.p("o"), root="/nonexistent/davis"))
bad("--sequences unknown", "benchmarks.vos", lambda S: BV(S.p("o"), "--sequences", "nope"))
bad("--resume and --overwrite", "benchmarks.vos", lambda S: BV(S.p("o"), "--resume", "--overwrite"),
    expect="ok_or_refuse")
bad("--root ''", "benchmarks.evaluate", lambda S: EV(S.p("o"), root=""))
bad("--results ''", "benchmarks.evaluate", lambda S: EV(""))
bad("--results missing", "benchmarks.evaluate", lambda S: EV("/nonexistent/res"))
bad("--processes -1", "benchmarks.evaluate", lambda S: EV(S.p("o"), "--processes", "-1"))
bad("out_dir=''", "training", lambda S: TRAIN(""))
bad("steps=-1", "training", lambda S: TRAIN(S.p("tr"), "steps=-1"))
bad("steps=abc", "training", lambda S: TRAIN(S.p("tr"), "steps=abc"))
bad("unknown key", "training", lambda S: TRAIN(S.p("tr"), "bogus_key=1"))
bad("--config missing", "training", lambda S: ["--config", "/nonexistent.yaml", f"out_dir={S.p('tr')}"])
bad("lr=nan", "training", lambda S: TRAIN(S.p("tr"), "lr=nan"))
bad("--resume with nothing to resume", "training", lambda S: TRAIN(S.p("tr"), "--resume"))


def _zero_mask(S: Sandbox) -> str:
    import numpy as np
    from PIL import Image

    p = S.p("zero.png")
    Image.fromarray(np.zeros(G["size"], np.uint8)).save(p)
    return p


# ---------------------------------------------------------------------------- 6. special files

def special(title: str, module: str, argv_fn: Callable[[Sandbox], List[str]], expect: str = "refuse") -> None:
    def fn(S: Sandbox) -> Outcome:
        S.mark(S.user("keep.txt"))
        return S.sub(module, argv_fn(S), timeout=90)
    add(C6, f"{module} {title}", expect, fn)


def fifo(S: Sandbox, rel: str) -> str:
    p = S.p(rel)
    Path(p).parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(p)
    return p


def sock(S: Sandbox, rel: str) -> str:
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
        lambda S: [B("clip.mp4"), "--masks", os.path.dirname(fifo(S, "mk/00000.png")), "--weights", "small",
                   "--end", "2", "--quiet", "--adapt-steps", "0", "--out", S.p("o")])
special("--report is a FIFO", "vos.run", lambda S: VR(S.p("o"), "--report", fifo(S, "r.json")))
special("--overlay is a FIFO", "vos.run", lambda S: VR(S.p("o"), "--overlay", fifo(S, "ov.mp4")))
special("--rle is /dev/null", "vos.run", lambda S: VR(S.p("o"), "--rle", "/dev/null"), expect="ok_or_refuse")
special("--out holds a FIFO", "vos.run", lambda S: (fifo(S, "o/00000.png"), VR(S.p("o"), "--overwrite"))[-1])
special("query is a FIFO", "seggpt.run", lambda S: SR(S.p("o"), query=fifo(S, "q.png")))
special("prompt image is /dev/zero", "seggpt.run",
        lambda S: ["--prompt", "/dev/zero", B("clip_mask.png"), B("img.png"), "--out", S.p("o"), "--weights",
                   "small"])
special("prompt mask is a FIFO", "seggpt.run",
        lambda S: ["--prompt", B("img.png"), fifo(S, "m.png"), B("img.png"), "--out", S.p("o"), "--weights",
                   "small"])
special("--prompt-file is a FIFO", "seggpt.run",
        lambda S: ["--prompt-file", fifo(S, "p.safetensors"), B("img.png"), "--out", S.p("o"), "--weights", "small"])
special("example is a FIFO", "seggpt.tune",
        lambda S: ["--weights", "small", "--example", fifo(S, "e.png"), B("small_mask.png"), "--out",
                   S.p("p.safetensors")])
special("--out is a FIFO", "seggpt.tune", lambda S: TUNE(fifo(S, "p.safetensors")))
special("--config is a FIFO", "training", lambda S: ["--config", fifo(S, "c.yaml"), f"out_dir={S.p('tr')}"])
special("--root annotation is a FIFO", "benchmarks.vos",
        lambda S: (davis_local(S), os.unlink(S.p("davis/Annotations/480p/synth-000/00000.png")),
                   fifo(S, "davis/Annotations/480p/synth-000/00000.png"), S.mark(S.p("davis")),
                   BV(S.p("o"), root=S.p("davis")))[-1], expect="error")


def _lib_fifo(S: Sandbox, expr: str) -> Outcome:
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
    lambda S: _lib_fifo(S, "import vos; from vos.editor import Editor; import os\n"
                           "    Editor(vos.VideoSegmenter('small', device='cpu'), os.path.dirname(p)).open('f.mp4')"))

# ---------------------------------------------------------------------------- 7. library inputs


def L(title: str, expect: str, fn: Callable[[], Any]) -> None:
    add(C7, title, expect, lambda S: S.lib(title, fn))


def _state():
    return seg().init_state(B("clip.mp4"))


def _mask(kind: str):
    import numpy as np

    h, w = G["size"]
    m = np.zeros((h, w), np.float32)
    m[5:20, 5:25] = 1
    if kind == "nan":
        m[0, 0] = np.nan
    elif kind == "inf":
        m[0, 0] = np.inf
    elif kind == "-inf":
        m[0, 0] = -np.inf
    return m


def _add(mask_fn: Callable[[], Any], frame: Any = 0, obj: Any = 1):
    def fn():
        s = _state()
        seg().add_new_mask(s, frame, obj, mask_fn())
    return fn


def _np():
    import numpy as np
    return np


def _torch():
    import torch
    return torch


L("add_new_mask NaN", "inputerror", _add(lambda: _mask("nan")))
L("add_new_mask inf", "inputerror", _add(lambda: _mask("inf")))
L("add_new_mask -inf", "inputerror", _add(lambda: _mask("-inf")))
L("add_new_mask all NaN float16", "inputerror", _add(lambda: _np().full(G["size"], _np().nan, _np().float16)))
L("add_new_mask wrong shape", "inputerror", _add(lambda: _np().ones((10, 10), bool)))
L("add_new_mask (H,W,1)", "inputerror_or_ok", _add(lambda: _mask("")[..., None]))
L("add_new_mask (H,W,3) rgb", "inputerror", _add(lambda: _np().repeat(_mask("")[..., None], 3, -1)))
L("add_new_mask transposed (W,H)", "inputerror", _add(lambda: _mask("").T.copy()))
L("add_new_mask dtype object", "inputerror", _add(lambda: _mask("").astype(object)))
L("add_new_mask string", "inputerror", _add(lambda: "mask.png"))
L("add_new_mask None", "inputerror", _add(lambda: None))
L("add_new_mask complex", "inputerror", _add(lambda: _mask("").astype(complex)))
L("add_new_mask list of lists", "inputerror_or_ok", _add(lambda: _mask("").tolist()))
L("add_new_mask int8 ok", "returned", _add(lambda: _mask("").astype(_np().int8)))
L("add_new_mask uint8 0/255 ok", "returned", _add(lambda: (_mask("") * 255).astype(_np().uint8)))
L("add_new_mask bool ok", "returned", _add(lambda: _mask("") > 0))
L("add_new_mask torch tensor", "inputerror_or_ok", _add(lambda: _torch().from_numpy(_mask(""))))
L("add_new_mask torch NaN tensor", "inputerror", _add(lambda: _torch().from_numpy(_mask("nan"))))
L("add_new_mask empty mask new object", "inputerror", _add(lambda: _np().zeros(G["size"], bool)))
L("add_new_mask frame -1", "inputerror", _add(lambda: _mask(""), frame=-1))
L("add_new_mask frame 999", "inputerror", _add(lambda: _mask(""), frame=999))
L("add_new_mask frame 1.5", "inputerror", _add(lambda: _mask(""), frame=1.5))
L("add_new_mask frame '0'", "inputerror", _add(lambda: _mask(""), frame="0"))
L("add_new_mask frame None", "inputerror", _add(lambda: _mask(""), frame=None))
L("add_new_mask obj 0", "inputerror", _add(lambda: _mask(""), obj=0))
L("add_new_mask obj -1", "inputerror", _add(lambda: _mask(""), obj=-1))
L("add_new_mask obj 256 (ids are not limited to 255)", "returned", _add(lambda: _mask(""), obj=256))
L("add_new_mask obj 'a'", "inputerror", _add(lambda: _mask(""), obj="a"))
L("add_new_mask obj True", "inputerror", _add(lambda: _mask(""), obj=True))
L("add_new_mask obj 1.0", "inputerror_or_ok", _add(lambda: _mask(""), obj=1.0))
L("init_state ''", "inputerror", lambda: seg().init_state(""))
L("init_state missing", "inputerror", lambda: seg().init_state("/nonexistent/v.mp4"))
L("init_state image file", "inputerror", lambda: seg().init_state(B("img.png")))
L("init_state /dev/zero", "inputerror", lambda: seg().init_state("/dev/zero"))
L("init_state None", "inputerror", lambda: seg().init_state(None))
L("init_state 2-D array", "inputerror", lambda: seg().init_state(_np().zeros((32, 48), _np().uint8)))
L("init_state 5-D array", "inputerror", lambda: seg().init_state(_np().zeros((1, 2, 32, 48, 3), _np().uint8)))
L("init_state empty (0,H,W,3)", "inputerror", lambda: seg().init_state(_np().zeros((0, 32, 48, 3), _np().uint8)))
L("init_state channels-first (T,3,H,W)", "inputerror_or_ok",
  lambda: seg().init_state(_np().zeros((2, 3, 32, 48), _np().uint8)))
L("init_state float NaN frames", "inputerror", lambda: seg().init_state(_np().full((2, 32, 48, 3), _np().nan,
                                                                                     _np().float32)))
L("init_state int8 frames", "inputerror_or_ok", lambda: seg().init_state(_np().zeros((2, 32, 48, 3), _np().int8)))
L("init_state empty list", "inputerror", lambda: seg().init_state([]))
L("init_state (T,H,W,5) channels", "inputerror", lambda: seg().init_state(_np().zeros((2, 32, 48, 5), _np().uint8)))
L("init_state uint8 (T,H,W,3) ok", "returned", lambda: seg().init_state(_np().zeros((2, 32, 48, 3), _np().uint8)))


def _inf(images=None, pi=None, pm=None, et="instance", dtype=None, mod=None):
    def fn():
        torch = _torch()
        h, w = seg().predictor.image_size
        x = torch.zeros(1, 3, h, w) if images is None else images(h, w)
        p = torch.zeros(1, 1, 3, h, w) if pi is None else pi(h, w)
        m = torch.zeros(1, 1, 3, h, w) if pm is None else pm(h, w)
        from seggpt import SegGPTPredictor

        pred = SegGPTPredictor(seg().model)
        with torch.no_grad():
            pred.infer(x, p, m, embedding_type=et)
    return fn


T = _torch
L("infer numpy images", "inputerror", _inf(images=lambda h, w: _np().zeros((1, 3, h, w), _np().float32)))
L("infer numpy prompt masks", "inputerror", _inf(pm=lambda h, w: _np().zeros((1, 1, 3, h, w), _np().float32)))
L("infer 4-D prompt images (no K)", "inputerror", _inf(pi=lambda h, w: T().zeros(1, 3, h, w)))
L("infer 4-D prompt masks (no K)", "inputerror", _inf(pm=lambda h, w: T().zeros(1, 3, h, w)))
L("infer uint8 images", "inputerror", _inf(images=lambda h, w: T().zeros(1, 3, h, w, dtype=T().uint8)))
L("infer int8 prompt masks", "inputerror", _inf(pm=lambda h, w: T().zeros(1, 1, 3, h, w, dtype=T().int8)))
L("infer bool masks", "inputerror", _inf(pm=lambda h, w: T().zeros(1, 1, 3, h, w, dtype=T().bool)))
L("infer NaN images", "inputerror", _inf(images=lambda h, w: T().full((1, 3, h, w), float("nan"))))
L("infer inf prompt images", "inputerror", _inf(pi=lambda h, w: T().full((1, 1, 3, h, w), float("inf"))))
L("infer NaN prompt masks", "inputerror", _inf(pm=lambda h, w: T().full((1, 1, 3, h, w), float("nan"))))
L("infer channels-last images", "inputerror", _inf(images=lambda h, w: T().zeros(1, h, w, 3)))
L("infer channels-last prompts", "inputerror", _inf(pi=lambda h, w: T().zeros(1, 1, h, w, 3)))
L("infer wrong size", "inputerror", _inf(images=lambda h, w: T().zeros(1, 3, h + 8, w)))
L("infer batch mismatch", "inputerror", _inf(images=lambda h, w: T().zeros(2, 3, h, w)))
L("infer K mismatch", "inputerror", _inf(pm=lambda h, w: T().zeros(1, 2, 3, h, w)))
L("infer K = 0", "inputerror", _inf(pi=lambda h, w: T().zeros(1, 0, 3, h, w), pm=lambda h, w: T().zeros(1, 0, 3, h, w)))
L("infer 1 channel", "inputerror", _inf(images=lambda h, w: T().zeros(1, 1, h, w)))
L("infer embedding_type bogus", "inputerror", _inf(et="panoptic"))
L("infer images None", "inputerror", _inf(images=lambda h, w: None))
L("infer list images", "inputerror", _inf(images=lambda h, w: [[0.0]]))
L("infer float64 ok", "returned", _inf(images=lambda h, w: T().zeros(1, 3, h, w, dtype=T().float64)))
L("infer float32 ok", "returned", _inf())
L("SegGPTPredictor dtype int8", "inputerror", lambda: importlib.import_module("seggpt").SegGPTPredictor(
    seg().model, dtype=T().int8))
L("SegGPTPredictor dtype 'fp16' string", "inputerror", lambda: importlib.import_module("seggpt").SegGPTPredictor(
    seg().model, dtype="fp16"))
L("SegGPTPredictor('') weights", "inputerror", lambda: importlib.import_module("seggpt").SegGPTPredictor(""))
L("SegGPTPredictor(missing file)", "inputerror", lambda: importlib.import_module("seggpt").SegGPTPredictor(
    "/nonexistent/w.safetensors"))
L("VideoSegmenter('') weights", "inputerror", lambda: importlib.import_module("vos").VideoSegmenter(""))
L("VideoSegmenter(text file)", "inputerror", lambda: importlib.import_module("vos").VideoSegmenter(B("notes.txt")))
L("VideoSegmenter device bogus", "inputerror", lambda: importlib.import_module("vos").VideoSegmenter(
    "small", device="bogus"))
L("VideoSegmenter dtype int8", "inputerror", lambda: importlib.import_module("vos").VideoSegmenter(
    "small", device="cpu", dtype="int8"))


def sam():
    if "sam" not in G:
        from vos.sam2 import build_sam2_video_predictor

        G["sam"] = build_sam2_video_predictor("small", device="cpu")
    return G["sam"]


def _s_add(mask_fn, frame: Any = 0, obj: Any = 1):
    def fn():
        st = sam().init_state(B("clip.mp4"))
        sam().add_new_mask(st, frame, obj, mask_fn())
    return fn


def _s_prop(**kw):
    def fn():
        st = sam().init_state(B("clip.mp4"))
        if kw.pop("_mask", True):
            sam().add_new_mask(st, 0, 1, _mask("") > 0)
        list(sam().propagate_in_video(st, **kw))
    return fn


L("sam2 build('')", "inputerror", lambda: importlib.import_module("vos.sam2").build_sam2_video_predictor(""))
L("sam2 build(missing)", "inputerror", lambda: importlib.import_module("vos.sam2").build_sam2_video_predictor(
    "/nonexistent.pt"))
L("sam2 build device bogus", "inputerror", lambda: importlib.import_module("vos.sam2").build_sam2_video_predictor(
    "small", device="bogus"))
L("sam2 init_state ''", "inputerror", lambda: sam().init_state(""))
L("sam2 init_state missing", "inputerror", lambda: sam().init_state("/nonexistent.mp4"))
L("sam2 init_state image", "inputerror", lambda: sam().init_state(B("img.png")))
L("sam2 init_state /dev/null", "inputerror", lambda: sam().init_state("/dev/null"))
L("sam2 add_new_mask NaN", "inputerror", _s_add(lambda: _mask("nan")))
L("sam2 add_new_mask inf", "inputerror", _s_add(lambda: _mask("inf")))
L("sam2 add_new_mask torch NaN", "inputerror", _s_add(lambda: T().from_numpy(_mask("nan"))))
L("sam2 add_new_mask torch inf (1,H,W)", "inputerror", _s_add(lambda: T().from_numpy(_mask("inf"))[None]))
L("sam2 add_new_mask torch (1,H,W) ok", "returned", _s_add(lambda: T().from_numpy(_mask(""))[None]))
L("sam2 add_new_mask int8 ok", "returned", _s_add(lambda: _mask("").astype(_np().int8)))
L("sam2 add_new_mask wrong aspect", "inputerror", _s_add(lambda: _np().ones((10, 40), bool)))
L("sam2 add_new_mask 3-D (2,H,W)", "inputerror", _s_add(lambda: _np().ones((2,) + tuple(G["size"]), bool)))
L("sam2 add_new_mask None", "inputerror", _s_add(lambda: None))
L("sam2 add_new_mask string", "inputerror", _s_add(lambda: "m.png"))
L("sam2 add_new_mask obj 'a'", "inputerror_or_ok", _s_add(lambda: _mask("") > 0, obj="a"))
L("sam2 add_new_mask obj None", "inputerror", _s_add(lambda: _mask("") > 0, obj=None))
L("sam2 add_new_mask frame -1", "inputerror", _s_add(lambda: _mask("") > 0, frame=-1))
L("sam2 add_new_mask frame 99", "inputerror", _s_add(lambda: _mask("") > 0, frame=99))
L("sam2 add_new_mask empty mask", "inputerror", _s_add(lambda: _np().zeros(G["size"], bool)))
L("sam2 add_new_mask numpy float64 nan via list", "inputerror",
  _s_add(lambda: [[float("nan")] * G["size"][1]] * G["size"][0]))
L("sam2 propagate without masks", "inputerror", _s_prop(_mask=False))
L("sam2 propagate start_frame_idx 99", "inputerror", _s_prop(start_frame_idx=99))
L("sam2 propagate start_frame_idx -1", "inputerror", _s_prop(start_frame_idx=-1))
L("sam2 propagate max_frame_num_to_track -1", "inputerror", _s_prop(max_frame_num_to_track=-1))
L("sam2 propagate max_frame_num_to_track 'x'", "inputerror", _s_prop(max_frame_num_to_track="x"))
L("sam2 propagate ok", "returned", _s_prop())
L("sam2 propagate on a non-state dict", "inputerror", lambda: list(sam().propagate_in_video({})))

# ============================================================================ judging


def one_error_line(o: Outcome) -> Optional[str]:
    lines = [ln for ln in o.stderr.strip().splitlines() if ln.strip()]
    if not lines:
        return "nothing on stderr"
    if len(lines) != 1:
        return f"{len(lines)} lines on stderr: {' | '.join(ln[:100] for ln in lines[:3])}"
    if not lines[0].startswith("error: "):
        return f"stderr not 'error: ...': {lines[0][:160]}"
    return None


def judge(S: Sandbox, expect: str, protected_before: Dict[str, Dict[str, tuple]]) -> tuple:
    o = S.outcome
    assert o is not None
    reasons: List[str] = list(S.extra)
    after = snap(S.d)
    lost = [str(p.relative_to(S.d)) if S.d in p.parents else str(p) for p, e in S.users.items() if entry(p) != e]
    for name, before in protected_before.items():
        d = diff(before, snap(G[name]))
        lost += [f"{name}/{x}" for x in d]
    if lost:
        reasons.append(f"DATA LOSS: {', '.join(lost[:4])}")
    first = (o.stderr.strip().splitlines() or [""])[0][:160]
    if o.tb:
        reasons.append("traceback printed")
    if expect == "refuse":
        if o.code != 2:
            reasons.append(f"exit {o.code}, expected 2 ({first or o.stdout.strip()[:120]})")
        else:
            bad_err = one_error_line(o)
            if bad_err:
                reasons.append(bad_err)
        written = diff(S.before or {}, after)
        if written and not lost:
            reasons.append(f"wrote before refusing: {', '.join(written[:4])}")
    elif expect == "error":  # a failure, but a clean one
        if o.code not in (1, 2):
            reasons.append(f"exit {o.code}, expected 1 or 2")
        elif o.code == 2 and not first.startswith("error"):
            reasons.append(f"stderr not 'error: ...': {first}")
    elif expect == "ok":
        if o.code != 0:
            reasons.append(f"exit {o.code}, expected 0 ({first})")
    elif expect in ("ok_or_refuse", "ok_or_refuse_keep"):
        if o.code not in (0, 2):
            reasons.append(f"exit {o.code}, expected 0 or 2 ({first})")
        elif o.code == 2 and one_error_line(o):
            reasons.append(one_error_line(o))
    elif expect in ("inputerror", "inputerror_or_ok"):
        from seggpt.errors import InputError

        if o.exc is None:
            if expect == "inputerror":
                reasons.append("no exception, expected InputError")
        elif not (isinstance(o.exc, InputError) and isinstance(o.exc, ValueError)):
            reasons.append(f"{type(o.exc).__name__}: {str(o.exc)[:140]} (expected InputError)")
        elif "\n" in str(o.exc).strip():
            reasons.append("InputError message spans several lines")
    elif expect.startswith("raise:"):
        want = expect.split(":", 1)[1]
        if o.exc is None:
            reasons.append(f"no exception, expected {want}")
        elif type(o.exc).__name__ != want:
            reasons.append(f"{type(o.exc).__name__}: {str(o.exc)[:140]} (expected {want})")
    elif expect in ("returned", "returned_inside"):
        if o.exc is not None:
            reasons.append(f"{type(o.exc).__name__}: {str(o.exc)[:160]}")
    elif expect == "media_no_link":
        if o.exc is not None or any("l.mp4" in str(v) for v in (o.value or [])):
            reasons.append(f"media() lists a link leaving root: {o.value} {o.exc or ''}")
    elif expect in ("sub_inputerror", "sub_error"):
        res = [ln for ln in o.stdout.splitlines() if ln.startswith("RESULT:")]
        if o.code == "timeout":
            reasons.append("blocked (timeout)")
        elif not res:
            reasons.append(f"no result, exit {o.code}: {o.stderr.strip()[-200:]}")
        elif expect == "sub_inputerror" and not res[0].startswith("RESULT:InputError"):
            reasons.append(res[0][:200])
        elif expect == "sub_error" and res[0].startswith("RESULT:returned"):
            reasons.append("opened a FIFO without an error")
    if o.code == "timeout" and "blocked (timeout)" not in reasons:
        reasons.append("blocked (timeout)")
    return (not reasons, "; ".join(reasons) if reasons else f"exit {o.code}" + (f" ({first[:90]})" if first else ""),
            bool(lost), o.tb)


# ============================================================================ main


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", default="", help="only cases whose category or name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="seggpt-adv-"))
    t0 = time.time()
    failures: List[str] = []
    tally: Dict[str, List[int]] = {}
    try:
        print(f"setting up inputs and templates in {tmp} ...", flush=True)
        build_inputs(tmp)
        build_templates(tmp)
        print(f"setup {time.time() - t0:.0f} s; {len(CASES)} cases", flush=True)
        for i, (cat, name, expect, fn) in enumerate(CASES):
            if args.k and args.k not in cat and args.k not in name:
                continue
            S = Sandbox(tmp / "cases" / f"c{i:03d}")
            protected = {"base": snap(G["base"]), "victim": snap(G["victim"])}
            try:
                fn(S)
                if S.outcome is None:
                    raise RuntimeError("the case ran nothing")
                if expect == "media_no_link":
                    pass
                ok, reason, lost, tb = judge(S, expect, protected)
                if expect == "media_no_link" and S.outcome.exc is None:
                    pass
                if expect == "ok_or_refuse_keep" and lost:
                    ok = False
            except Exception as e:  # noqa: BLE001 - a broken case setup is reported, never hidden
                ok, reason, lost, tb = False, f"CASE SETUP ERROR {type(e).__name__}: {e}", False, False
            t = tally.setdefault(cat, [0, 0, 0, 0])
            t[0] += 1
            t[1] += ok
            t[2] += lost
            t[3] += tb
            line = f"{cat:22s} {'PASS' if ok else 'FAIL'}  {name}  -- {reason}"
            print(line, flush=True)
            if not ok:
                cmd = S.outcome.cmd if S.outcome else "?"
                failures.append(f"{line}\n    command: {cmd}\n    stderr: {S.outcome.stderr.strip()[-600:] if S.outcome else ''}")
            for p in G.pop("sleepers", []):
                p.kill()
                p.wait()
            for s in G.pop("socks", []):
                s.close()
    finally:
        for p in G.pop("sleepers", []):
            p.kill()
        if not args.keep:
            for dirpath, dirnames, filenames in os.walk(tmp):
                for n in filenames:
                    try:
                        os.chmod(Path(dirpath) / n, 0o644, follow_symlinks=False)
                    except (OSError, NotImplementedError):
                        pass
            shutil.rmtree(tmp, ignore_errors=True)
    print("\n" + "=" * 78)
    print(f"{'category':22s} {'cases':>6s} {'passed':>7s} {'data loss':>10s} {'tracebacks':>11s}")
    tot = [0, 0, 0, 0]
    for cat in sorted(tally):
        t = tally[cat]
        tot = [a + b for a, b in zip(tot, t)]
        print(f"{cat:22s} {t[0]:6d} {t[1]:7d} {t[2]:10d} {t[3]:11d}")
    print(f"{'TOTAL':22s} {tot[0]:6d} {tot[1]:7d} {tot[2]:10d} {tot[3]:11d}   ({time.time() - t0:.0f} s)")
    if failures:
        print("\nFAILURES:")
        for f in failures:
            print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
