"""Adversarial output-safety and bad-input cases for the command-line tools and the library.

Run: ``python -m benchmarks.output_safety_cases`` (from the repository root).

Checks, per case, in a fresh temporary folder:

* no tool replaces, deletes or rewrites a file it did not write: every file that exists before the
  call (inputs, user files, files edited after an earlier run, symlinks and their targets) is
  snapshotted byte for byte (symlinks: the link itself) and must be identical afterwards, except
  files an earlier run of ours wrote and that were left unchanged, and the manifests;
  any difference is counted as DATA LOSS;
* a refused run: exit code 2, exactly one stderr line, starting ``error: ``, no traceback, and no
  new file anywhere under the case folder (refused before any work);
* an accepted run: exit code 0 and no traceback;
* library calls: bad arguments raise ``seggpt.errors.InputError`` (a ValueError).

Categories: out-folder (--out/--alpha), single-file (--overlay/--report/--rle/--matte, tuned prompt,
evaluate CSVs), out-is-input, other-tools, bad-values, special-files, library.

One line per case (category, name, PASS/FAIL, reason), then a tally per category; exit code 1 if
any case fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np
from PIL import Image

MANIFEST = ".seggpt-vos-manifest.json"
ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

CASES: list = []


def case(cat, name=None):
    def deco(fn):
        CASES.append((cat, name or fn.__name__, fn))
        return fn

    return deco


# ----------------------------------------------------------------------------- data


_CACHE: dict = {}


def _data() -> Path:
    if "d" not in _CACHE:
        d = Path(tempfile.mkdtemp(prefix="ost-data-"))
        from vos.demo import main as demo

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            demo([str(d / "demo")])
        mask = Image.open(d / "demo" / "clip_mask.png")
        w, h = mask.size
        fr = d / "frames"
        fr.mkdir()
        rng = np.random.default_rng(0)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(fr / f"{i:05d}.png")
        from vos.synthetic import write_davis2017

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            write_davis2017(d / "davis", num_sequences=1, seed=3, num_frames=3, size=(32, 48), num_objects=(1, 1))
        _CACHE["d"] = d
    return _CACHE["d"]


class Ctx:
    """One case's folder: inputs copied in, helpers to prepare the scene."""

    def __init__(self, root: Path):
        self.root = root
        d = _data()
        self.inp = root / "in"
        self.inp.mkdir()
        shutil.copy(d / "demo" / "clip.mp4", self.inp / "clip.mp4")
        shutil.copy(d / "demo" / "clip_mask.png", self.inp / "clip_mask.png")
        shutil.copytree(d / "frames", self.inp / "frames")
        self.v = str(self.inp / "clip.mp4")
        self.m = str(self.inp / "clip_mask.png")
        self.frames = str(self.inp / "frames")
        self.ours: set[str] = set()
        self.allow_new = False  # refused cases: no new files at all

    def p(self, *parts) -> str:
        return str(self.root.joinpath(*parts))

    def davis(self) -> tuple[str, str]:
        """A tiny DAVIS root and a results folder (copy of its annotations)."""
        dv = self.root / "davis"
        if not dv.exists():
            shutil.copytree(_data() / "davis", dv)
            shutil.copytree(dv / "Annotations" / "480p", self.root / "results")
        return str(dv), str(self.root / "results")

    def vos_args(self, *extra, out=None):
        a = [self.v, "--first-mask", self.m, "--weights", "small", "--quiet", "--end", "2", "--adapt-steps", "0"]
        a += ["--out", self.p("out") if out is None else out]
        return a + list(extra)

    def prior(self, tool, args):
        """An earlier run of ours: whatever it creates is ours (may be replaced)."""
        before = snapshot(self.root)
        rc, err, tb = call(tool, args)
        if rc != 0:
            raise RuntimeError(f"prior run failed rc={rc}: {err.strip()[-300:]}")
        after = snapshot(self.root)
        for k, v in after.items():
            if before.get(k) != v:
                self.ours.add(k)
        return rc

    def user(self, path, data=b"user data\n"):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        if path.is_symlink():
            path.unlink()
        path.write_bytes(data)
        self.ours.discard(str(path))
        return str(path)

    def link(self, path, target):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        os.symlink(target, path)
        self.ours.discard(str(path))
        return str(path)

    def manifest(self, folder):
        return Path(folder) / MANIFEST

    def read_manifest(self, folder):
        return json.loads(self.manifest(folder).read_text())

    def write_manifest(self, folder, obj):
        t = self.manifest(folder)
        t.write_text(obj if isinstance(obj, str) else json.dumps(obj, indent=1))


def snapshot(root: Path) -> dict:
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, n)
            if os.path.islink(p):
                snap[p] = ("link", os.readlink(p))
            elif os.path.isfile(p):
                try:
                    snap[p] = ("file", hashlib.sha256(Path(p).read_bytes()).hexdigest())
                except OSError:
                    snap[p] = ("special",)
            else:
                snap[p] = ("special",)
    return snap


# ----------------------------------------------------------------------------- calling


def _tool(tool):
    if tool == "vos":
        from vos.run import main
    elif tool == "seggpt":
        from seggpt.run import main
    elif tool == "tune":
        from seggpt.tune import main
    elif tool == "demo":
        from vos.demo import main
    elif tool == "eval":
        from benchmarks.evaluate import main
    else:
        raise KeyError(tool)
    return main


MODULES = {"vos": "vos.run", "seggpt": "seggpt.run", "tune": "seggpt.tune", "demo": "vos.demo", "eval": "benchmarks.evaluate"}


def call(tool, args, sub=False, timeout=60):
    """Run a tool; returns (rc, stderr text, traceback?)."""
    if sub:
        try:
            r = subprocess.run([PY, "-m", MODULES[tool], *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return "timeout", "", False
        return r.returncode, r.stderr, "Traceback" in r.stderr
    err = io.StringIO()
    fd_file = tempfile.TemporaryFile()
    saved = os.dup(2)
    sys.stderr.flush()
    os.dup2(fd_file.fileno(), 2)
    tb = False
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = _tool(tool)(list(args))
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if not isinstance(e.code, int) and e.code is not None:
                    err.write(str(e.code) + "\n")
            except BaseException:
                tb = True
                err.write(traceback.format_exc())
                rc = "exception"
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
    fd_file.seek(0)
    text = fd_file.read().decode(errors="replace") + err.getvalue()
    if rc is None:
        rc = 0
    return rc, text, tb or "Traceback" in text


# ----------------------------------------------------------------------------- running


RESULTS: list = []


def run_case(cat, name, fn):
    root = Path(tempfile.mkdtemp(prefix="ost-"))
    ctx = Ctx(root)
    loss = False
    tb = False
    try:
        spec = fn(ctx)
    except Exception as e:  # setup failure
        RESULTS.append((cat, name, False, f"setup failed: {type(e).__name__}: {e}", False, False))
        shutil.rmtree(root, ignore_errors=True)
        return
    kind = spec.get("kind", "cli")
    expect = spec.get("expect", "refuse")
    if kind == "lib":
        ok, reason, tb = run_lib(spec)
        RESULTS.append((cat, name, ok, reason, False, tb))
        shutil.rmtree(root, ignore_errors=True)
        return
    before = snapshot(root)
    rc, err, tb = call(spec["tool"], spec["args"], sub=spec.get("sub", False), timeout=spec.get("timeout", 60))
    after = snapshot(root)
    reasons = []
    for k, v in before.items():
        if k in ctx.ours or k.endswith(MANIFEST):
            continue
        if after.get(k) != v:
            loss = True
            reasons.append(f"DATA LOSS: {os.path.relpath(k, root)} {'gone' if k not in after else 'changed'}")
    # a symlink's target outside root
    for t in spec.get("protect", []):
        pass
    lines = [l for l in err.splitlines() if l.strip()]
    if tb:
        reasons.append("traceback: " + (lines[-1] if lines else ""))
    if expect == "refuse":
        if rc != 2:
            reasons.append(f"rc={rc}, expected 2")
        if len(lines) != 1 or not lines[0].startswith("error: "):
            reasons.append(f"stderr {len(lines)} lines: {' | '.join(lines)[:300]!r}")
        new = [os.path.relpath(k, root) for k in after if k not in before and not k.endswith(MANIFEST)]
        if new and not spec.get("allow_new"):
            reasons.append(f"refused but wrote {new[:4]}")
        for word in spec.get("mentions", []):
            if word not in err:
                reasons.append(f"message lacks {word!r}")
    elif expect == "ok":
        if rc != 0:
            reasons.append(f"rc={rc}, expected 0: {' | '.join(lines)[-300:]!r}")
    elif expect == "either":
        if rc == 2:
            if len(lines) < 1 or not any(l.startswith("error: ") for l in lines):
                reasons.append(f"rc 2 without 'error: ' line: {lines[:3]}")
            elif len(lines) != 1:
                reasons.append(f"rc 2 with {len(lines)} stderr lines: {' | '.join(lines)[:300]!r}")
        elif rc != 0:
            reasons.append(f"rc={rc}")
    check = spec.get("check")
    if check and not reasons:
        msg = check(ctx, rc, err)
        if msg:
            reasons.append(msg)
    ok = not reasons
    RESULTS.append((cat, name, ok, "; ".join(reasons) if reasons else f"rc={rc}", loss, tb))
    shutil.rmtree(root, ignore_errors=True)


def run_lib(spec):
    from seggpt.errors import InputError

    fn = spec["fn"]
    expect = spec.get("expect", "InputError")
    done = {}

    def target():
        try:
            fn()
            done["r"] = None
        except BaseException as e:  # noqa: BLE001
            done["r"] = e
            done["tb"] = traceback.format_exc()

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(spec.get("timeout", 60))
    if th.is_alive():
        return False, "timed out (blocked)", False
    e = done["r"]
    if expect == "InputError":
        if isinstance(e, InputError) and isinstance(e, ValueError):
            return True, f"InputError: {str(e)[:80]}", False
        if e is None:
            return False, "no error raised", False
        return False, f"raised {type(e).__name__}: {str(e)[:150]}", True
    if expect == "ok":
        if e is None:
            return True, "ok", False
        return False, f"raised {type(e).__name__}: {str(e)[:150]}", True
    return False, "bad expect", False


# ============================================================================= cases

# --------------------------------------------------------------------------- (1) out folders


@case("out-folder")
def user_png_in_out(c):
    c.user(c.p("out", "00000.png"), b"not ours")
    return dict(tool="vos", args=c.vos_args())


@case("out-folder")
def user_png_in_out_overwrite(c):
    c.user(c.p("out", "00001.png"), b"not ours")
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def rerun_unchanged_ok(c):
    c.prior("vos", c.vos_args())
    return dict(tool="vos", args=c.vos_args(), expect="ok")


@case("out-folder")
def rerun_unchanged_with_alpha_ok(c):
    c.prior("vos", c.vos_args("--alpha", c.p("alpha"), "--report", c.p("r.json")))
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha"), "--report", c.p("r.json")), expect="ok")


@case("out-folder")
def edited_output_refused(c):
    c.prior("vos", c.vos_args())
    c.user(c.p("out", "00000.png"), b"edited by user")
    return dict(tool="vos", args=c.vos_args())


@case("out-folder")
def edited_output_refused_overwrite(c):
    c.prior("vos", c.vos_args())
    c.user(c.p("out", "00001.png"), b"edited by user")
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def user_file_slipped_into_manifest(c):
    c.prior("vos", c.vos_args())
    c.user(c.p("out", "00005.png"), b"user file")
    m = c.read_manifest(c.p("out"))
    m["files"]["00005.png"] = {"size": 9, "sha256": "0" * 64}
    c.write_manifest(c.p("out"), m)
    return dict(tool="vos", args=c.vos_args("--end", "6", "--overwrite"))


@case("out-folder")
def user_non_png_in_out(c):
    c.user(c.p("out", "notes.txt"), b"keep me")
    return dict(tool="vos", args=c.vos_args(), expect="either")


@case("out-folder")
def slipped_name_without_hash(c):
    c.prior("vos", c.vos_args())
    c.user(c.p("out", "00002.png"), b"user file")
    m = c.read_manifest(c.p("out"))
    m["files"]["00002.png"] = {}
    c.write_manifest(c.p("out"), m)
    return dict(tool="vos", args=c.vos_args("--end", "3", "--overwrite"))


@case("out-folder")
def garbage_manifest(c):
    c.user(c.p("out", "00000.png"), b"user")
    c.user(c.p("out", MANIFEST), b"{not json")
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def unknown_format_manifest(c):
    c.prior("vos", c.vos_args())
    c.user(c.p("out", "00000.png"), b"user")
    m = c.read_manifest(c.p("out"))
    m["format"] = "something-else/9"
    m["files"]["00000.png"] = {"size": 4, "sha256": hashlib.sha256(b"user").hexdigest()}
    c.write_manifest(c.p("out"), m)
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def manifest_dotdot_path(c):
    c.prior("vos", c.vos_args())
    c.user(c.p("victim.png"), b"user")
    m = c.read_manifest(c.p("out"))
    m["files"]["../victim.png"] = {"size": 4, "sha256": hashlib.sha256(b"user").hexdigest()}
    c.write_manifest(c.p("out"), m)
    return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")


@case("out-folder")
def manifest_abs_path(c):
    c.prior("vos", c.vos_args())
    v = c.user(c.p("victim.png"), b"user")
    m = c.read_manifest(c.p("out"))
    m["files"][v] = {"size": 4, "sha256": hashlib.sha256(b"user").hexdigest()}
    c.write_manifest(c.p("out"), m)
    return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")


@case("out-folder")
def symlink_png_in_out(c):
    t = c.user(c.p("ext", "target.png"), b"target")
    c.link(c.p("out", "00000.png"), t)
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def symlink_ours_replaced_by_link(c):
    c.prior("vos", c.vos_args())
    t = c.user(c.p("ext", "target.png"), Path(c.p("out", "00000.png")).read_bytes())
    c.link(c.p("out", "00000.png"), t)
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def out_is_symlink_to_dir(c):
    c.user(c.p("ext", "00000.png"), b"user")
    c.link(c.p("out"), c.p("ext"))
    return dict(tool="vos", args=c.vos_args(), expect="either")


@case("out-folder")
def out_is_a_file(c):
    c.user(c.p("out"), b"a file")
    return dict(tool="vos", args=c.vos_args())


@case("out-folder")
def alpha_user_file(c):
    c.user(c.p("alpha", "001", "00000.png"), b"user")
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha")))


@case("out-folder")
def alpha_user_file_overwrite(c):
    c.user(c.p("alpha", "00000.png"), b"user")
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha"), "--overwrite"))


@case("out-folder")
def alpha_edited_output(c):
    c.prior("vos", c.vos_args("--alpha", c.p("alpha")))
    pngs = sorted(Path(c.p("alpha")).rglob("*.png"))
    c.user(pngs[0], b"edited")
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha"), "--overwrite"))


@case("out-folder")
def object_masks_user_file(c):
    c.user(c.p("out", "objects", "001", "00000.png"), b"user")
    return dict(tool="vos", args=c.vos_args("--object-masks", "--overwrite"))


@case("out-folder")
def object_masks_rerun_ok(c):
    c.prior("vos", c.vos_args("--object-masks"))
    return dict(tool="vos", args=c.vos_args("--object-masks"), expect="ok")


@case("out-folder")
def alpha_same_as_out(c):
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("out")), expect="either")


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



# =========================================================================== batch 2 (generated)


def _sha(b):
    return hashlib.sha256(b).hexdigest()


# (1) user files of many names in --out / --alpha, with and without --overwrite
for _name in ["00000.png", "00001.png", "00007.png", "objects/001/00000.png", "objects/002/00001.png",
              "sub/x.png", ".hidden", "a.PNG"]:
    for _ow in (False, True):
        def _f(c, _name=_name, _ow=_ow):
            c.user(c.p("out", _name), b"user file")
            extra = ["--object-masks"] if _name.startswith("objects") else []
            return dict(tool="vos", args=c.vos_args(*extra, *(["--overwrite"] if _ow else [])), expect="either")
        case("out-folder", f"user_{_name.replace('/', '_')}{'_ow' if _ow else ''}")(_f)

for _name in ["00000.png", "001/00000.png", "002/00001.png", "notes.txt"]:
    for _ow in (False, True):
        def _f(c, _name=_name, _ow=_ow):
            c.user(c.p("alpha", _name), b"user file")
            return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha"), *(["--overwrite"] if _ow else [])),
                        expect="either")
        case("out-folder", f"alpha_user_{_name.replace('/', '_')}{'_ow' if _ow else ''}")(_f)


# (1) tampered manifests: a user file, claimed with a wrong hash / no hash / outside paths
def _tamper(c, edit, victim_rel="out/00005.png", frames="6"):
    c.prior("vos", c.vos_args())
    c.user(c.p(*victim_rel.split("/")), b"user file")
    m = c.read_manifest(c.p("out"))
    edit(m)
    c.write_manifest(c.p("out"), m)
    return dict(tool="vos", args=c.vos_args("--end", frames, "--overwrite"), expect="either")


_GOOD = {"size": 9, "sha256": _sha(b"user file")}
_TAMPERS = {
    "wrong_size": lambda m: m["files"].__setitem__("00005.png", {"size": 1, "sha256": _sha(b"user file")}),
    "null_hash": lambda m: m["files"].__setitem__("00005.png", {"size": 9, "sha256": None}),
    "upper_hash": lambda m: m["files"].__setitem__("00005.png", {"size": 9, "sha256": _sha(b"x").upper()}),
    "entry_is_string": lambda m: m["files"].__setitem__("00005.png", "yes"),
    "entry_is_null": lambda m: m["files"].__setitem__("00005.png", None),
    "files_is_list": lambda m: m.__setitem__("files", list(m["files"]) + ["00005.png"]),
    "dot_slash": lambda m: m["files"].__setitem__("./00005.png", {"size": 1, "sha256": "0" * 64}),
    "dotdot_inside": lambda m: m["files"].__setitem__("sub/../00005.png", {"size": 1, "sha256": "0" * 64}),
    "format_missing": lambda m: m.pop("format"),
    "format_v1": lambda m: m.__setitem__("format", "seggpt-vos-manifest/1"),
    "format_v3": lambda m: m.__setitem__("format", "seggpt-vos-manifest/3"),
    "complete_false": lambda m: m.__setitem__("complete", False),
    "status_running": lambda m: m.__setitem__("status", "running"),
    "patterns_star": lambda m: m.__setitem__("patterns", ["*"]),
    "dirs_dotdot": lambda m: m.__setitem__("dirs", ["..", "../ext"]),
}
for _k, _e in _TAMPERS.items():
    case("out-folder", f"manifest_{_k}")(lambda c, _e=_e: _tamper(c, _e))

# outside paths with the RIGHT hash: must count as none, the victim must survive
_OUTSIDE = {
    "dotdot": lambda c: "../victim.png",
    "dotdot_deep": lambda c: "sub/../../victim.png",
    "abs": lambda c: c.p("victim.png"),
    "backslash": lambda c: "..\\victim.png",
    "in_dir": lambda c: "../in/clip_mask.png",
}
for _k, _rel in _OUTSIDE.items():
    def _f(c, _rel=_rel):
        c.prior("vos", c.vos_args())
        c.user(c.p("victim.png"), b"user file")
        m = c.read_manifest(c.p("out"))
        r = _rel(c)
        target = Path(c.p("out")) / r if not os.path.isabs(r) else Path(r)
        data = target.read_bytes() if target.exists() else b""
        m["files"][r] = {"size": len(data), "sha256": _sha(data)}
        c.write_manifest(c.p("out"), m)
        return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")
    case("out-folder", f"manifest_outside_{_k}")(_f)

for _k, _data_ in {"empty": b"", "list": b"[]", "null": b"null", "number": b"3", "binary": bytes(range(256)),
                   "huge_nesting": b"[" * 5000 + b"]" * 5000, "utf16": '{"format": 1}'.encode("utf-16")}.items():
    def _f(c, _data_=_data_):
        c.prior("vos", c.vos_args())
        c.user(c.p("out", MANIFEST), _data_)
        return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")
    case("out-folder", f"manifest_garbage_{_k}")(_f)


@case("out-folder")
def manifest_is_directory(c):
    c.user(c.p("out", MANIFEST, "x"), b"x")
    return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")


@case("out-folder")
def manifest_is_symlink_to_user_file(c):
    c.prior("vos", c.vos_args())
    t = c.user(c.p("ext", "m.json"), Path(c.p("out", MANIFEST)).read_bytes())
    os.unlink(c.p("out", MANIFEST))
    c.link(c.p("out", MANIFEST), t)
    return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")


@case("out-folder")
def dangling_symlink_in_out(c):
    c.link(c.p("out", "00000.png"), c.p("nowhere.png"))
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def objects_dir_symlink(c):
    c.user(c.p("ext", "001", "00000.png"), b"user")
    c.link(c.p("out", "objects"), c.p("ext"))
    return dict(tool="vos", args=c.vos_args("--object-masks", "--overwrite"), expect="either")


@case("out-folder")
def alpha_subdir_symlink(c):
    c.user(c.p("ext", "00000.png"), b"user")
    c.link(c.p("alpha", "001"), c.p("ext"))
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha"), "--overwrite"), expect="either")


@case("out-folder")
def hardlink_to_our_output(c):
    c.prior("vos", c.vos_args())
    os.makedirs(c.p("ext"))
    os.link(c.p("out", "00000.png"), c.p("ext", "keep.png"))
    return dict(tool="vos", args=c.vos_args(), expect="either")


@case("out-folder")
def our_output_replaced_by_hardlink(c):
    c.prior("vos", c.vos_args())
    os.makedirs(c.p("ext"))
    shutil.copy(c.p("out", "00001.png"), c.p("ext", "keep.png"))
    os.unlink(c.p("out", "00001.png"))
    os.link(c.p("ext", "keep.png"), c.p("out", "00001.png"))
    return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")


@case("out-folder")
def rerun_fewer_frames_ok(c):
    c.prior("vos", c.vos_args())
    return dict(tool="vos", args=c.vos_args("--end", "1"), expect="ok")


@case("out-folder")
def rerun_more_frames_ok(c):
    c.prior("vos", c.vos_args("--end", "1"))
    return dict(tool="vos", args=c.vos_args(), expect="ok")


@case("out-folder")
def rerun_without_object_masks(c):
    c.prior("vos", c.vos_args("--object-masks"))
    return dict(tool="vos", args=c.vos_args(), expect="ok")


@case("out-folder")
def rerun_after_edit_object_mask(c):
    c.prior("vos", c.vos_args("--object-masks"))
    c.user(c.p("out", "objects", "001", "00000.png"), b"edited")
    return dict(tool="vos", args=c.vos_args(), expect="either")


@case("out-folder")
def rerun_alpha_fewer_frames(c):
    c.prior("vos", c.vos_args("--alpha", c.p("alpha")))
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha"), "--end", "1"), expect="ok")


@case("out-folder")
def fifo_in_out(c):
    os.makedirs(c.p("out"))
    os.mkfifo(c.p("out", "00000.png"))
    return dict(tool="vos", args=c.vos_args("--overwrite"), sub=True)


@case("out-folder")
def out_folder_of_other_tool(c):
    c.prior("seggpt", ["--prompt", c.frames + "/00000.png", c.m, c.frames + "/00001.png", "--out", c.p("out"),
                       "--weights", "small"])
    return dict(tool="vos", args=c.vos_args(), expect="either")


# (2) single files: every single-file option
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
    m["files"]["../victim.json"] = {"size": 4, "sha256": _sha(b"user")}
    Path(c.p("sub", MANIFEST)).write_text(json.dumps(m))
    return dict(tool="vos", args=c.vos_args("--report", c.p("sub", "..", "victim.json"), "--overwrite"))



# =========================================================================== batch 3


for _k in ("status_running", "entry_is_null"):
    def _f(c, _k=_k):
        spec = _tamper(c, _TAMPERS[_k])
        spec["args"] = [a for a in spec["args"] if a != "--overwrite"]
        return spec
    case("out-folder", f"manifest_{_k}_no_ow")(_f)


@case("out-folder")
def manifest_status_running_user_listed_nothing(c):
    # an unfinished run's manifest (no files listed) + a user PNG: never ours
    os.makedirs(c.p("out"))
    c.user(c.p("out", "00000.png"), b"user file")
    c.write_manifest(c.p("out"), {"format": "seggpt-vos-manifest/2", "tool": "vos.run", "status": "running",
                                  "files": {}, "patterns": ["*.png"], "dirs": []})
    return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")


# (3) outputs that are inputs
def _inp(c, *, out=None, extra=(), video=None, mask=None):
    a = c.vos_args(*extra, out=out)
    if video is not None:
        a[0] = video
    if mask is not None:
        a[2] = mask
    return dict(tool="vos", args=a)


case("out-is-input", "out_holds_video")(lambda c: _inp(c, out=str(c.inp)))
case("out-is-input", "out_is_root_holding_inputs")(lambda c: _inp(c, out=str(c.root)))
case("out-is-input", "out_via_dotdot")(lambda c: _inp(c, out=c.p("in", "frames", "..")))
case("out-is-input", "out_inside_frames")(lambda c: _inp(c, out=c.p("in", "frames", "sub"), video=c.frames))
case("out-is-input", "out_is_mask_file")(lambda c: _inp(c, out=c.m))
case("out-is-input", "alpha_is_frames")(lambda c: _inp(c, extra=("--alpha", c.frames), video=c.frames))
case("out-is-input", "alpha_holds_video")(lambda c: _inp(c, extra=("--alpha", str(c.inp))))
case("out-is-input", "alpha_inside_frames")(lambda c: _inp(c, extra=("--alpha", c.p("in", "frames", "a")), video=c.frames))
case("out-is-input", "report_is_mask")(lambda c: _inp(c, extra=("--report", c.m, "--overwrite")))
case("out-is-input", "rle_is_video")(lambda c: _inp(c, extra=("--rle", c.v, "--overwrite")))
case("out-is-input", "matte_is_video")(lambda c: _inp(c, extra=("--matte", c.v, "--overwrite")))
case("out-is-input", "overlay_is_video")(lambda c: _inp(c, extra=("--overlay", c.v, "--overwrite")))
case("out-is-input", "report_inside_frames")(lambda c: _inp(c, extra=("--report", c.p("in", "frames", "r.json")), video=c.frames))
case("out-is-input", "overlay_is_frame_png")(lambda c: _inp(c, extra=("--overlay", c.p("in", "frames", "00000.png")), video=c.frames))


@case("out-is-input")
def out_symlink_to_inputs(c):
    c.link(c.p("lnk"), str(c.inp))
    return _inp(c, out=c.p("lnk"))


@case("out-is-input")
def report_symlink_to_video(c):
    c.link(c.p("r.json"), c.v)
    return _inp(c, extra=("--report", c.p("r.json"), "--overwrite"))


@case("out-is-input")
def video_via_symlink_out_is_target_dir(c):
    c.link(c.p("v.mp4"), c.v)
    return _inp(c, out=str(c.inp), video=c.p("v.mp4"))


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
    return _inp(c, extra=("--config", cfg, "--report", cfg, "--overwrite"))


@case("out-is-input")
def out_is_our_previous_out_used_as_masks(c):
    c.prior("vos", c.vos_args())
    a = [c.v, "--masks", c.p("out"), "--weights", "small", "--quiet", "--end", "2", "--adapt-steps", "0",
         "--out", c.p("out")]
    return dict(tool="vos", args=a)


# (4) other tools
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
case("other-tools", "seggpt_empty_out")(lambda c: dict(tool="seggpt", args=_sg(c, out="")) if False else
                                        dict(tool="seggpt", args=["--prompt", c.frames + "/00000.png", c.m,
                                                                  c.frames + "/00001.png", "--out", "", "--weights", "small"]))
case("other-tools", "seggpt_empty_query")(lambda c: dict(tool="seggpt", args=_sg(c, query="")) if False else
                                          dict(tool="seggpt", args=["--prompt", c.frames + "/00000.png", c.m, "",
                                                                    "--out", c.p("sg"), "--weights", "small"]))
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
case("other-tools", "eval_empty_results")(lambda c: dict(tool="eval", args=_ev(c, results="")) if False else
                                          dict(tool="eval", args=["--dataset", "davis2017", "--root", c.davis()[0], "--results", ""]))
case("other-tools", "eval_empty_root")(lambda c: dict(tool="eval", args=["--dataset", "davis2017", "--root", "",
                                                                        "--results", c.davis()[1]]))
case("other-tools", "eval_missing_root")(lambda c: dict(tool="eval", args=_ev(c, root=c.p("nope"))))


# (5) bad values
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
    return _inp(c, mask=c.p("small.png"))


@case("bad-values")
def mask_text_file(c):
    return _inp(c, mask=c.user(c.p("m.png"), b"not a png"))


@case("bad-values")
def mask_all_zero(c):
    Image.open(c.m).point(lambda v: 0).save(c.p("z.png"))
    return _inp(c, mask=c.p("z.png"))


@case("bad-values")
def video_text_file(c):
    return _inp(c, video=c.user(c.p("v.mp4"), b"not a video"))


case("bad-values", "video_missing")(lambda c: _inp(c, video=c.p("nope.mp4")))
case("bad-values", "video_empty_dir")(lambda c: (os.makedirs(c.p("empty")), _inp(c, video=c.p("empty")))[1])
case("bad-values", "mask_empty")(lambda c: _inp(c, mask=""))
case("bad-values", "masks_empty")(lambda c: dict(tool="vos", args=[c.v, "--masks", "", "--weights", "small", "--out", c.p("out")]))
case("bad-values", "masks_missing")(lambda c: dict(tool="vos", args=[c.v, "--masks", c.p("nope"), "--weights", "small",
                                                                    "--out", c.p("out")]))
case("bad-values", "image_frame_as_video")(lambda c: dict(
    tool="vos", args=_inp(c, video=c.frames + "/00000.png")["args"], mentions=["seggpt.run"]))


# (6) special files
def _sub(spec):
    spec["sub"] = True
    return spec


case("special-files", "fifo_as_mask")(lambda c: (os.mkfifo(c.p("f.png")), _sub(_inp(c, mask=c.p("f.png"))))[1])
case("special-files", "fifo_as_config")(lambda c: (os.mkfifo(c.p("f.yaml")), _sub(_inp(c, extra=("--config", c.p("f.yaml")))))[1])
case("special-files", "fifo_as_weights")(lambda c: (os.mkfifo(c.p("f.pt")), _sub(_inp(c, extra=("--weights", c.p("f.pt")))))[1])
case("special-files", "fifo_in_frames")(lambda c: (os.mkfifo(c.p("in", "frames", "00003.png")), _sub(_inp(c, video=c.frames)) | {"expect": "either"})[1])
case("special-files", "fifo_in_masks_dir")(lambda c: (os.makedirs(c.p("mk")), os.mkfifo(c.p("mk", "00000.png")), _sub(dict(
    tool="vos", args=[c.v, "--masks", c.p("mk"), "--weights", "small", "--quiet", "--end", "2", "--adapt-steps", "0",
                      "--out", c.p("out")])))[2])
case("special-files", "dev_zero_as_video")(lambda c: _sub(_inp(c, video="/dev/zero")))
case("special-files", "dev_zero_as_mask")(lambda c: _sub(_inp(c, mask="/dev/zero")))
case("special-files", "dev_null_as_video")(lambda c: _inp(c, video="/dev/null"))
case("special-files", "dev_null_as_config")(lambda c: _inp(c, extra=("--config", "/dev/null")) | {"expect": "either"})
case("special-files", "dev_zero_as_weights")(lambda c: _sub(_inp(c, extra=("--weights", "/dev/zero"))))


# (7) library
def _lib(fn, expect="InputError"):
    return lambda c: dict(kind="lib", fn=lambda: fn(c), expect=expect)


_SEG = {}


def _segmenter():
    if "s" not in _SEG:
        import vos
        _SEG["s"] = vos.VideoSegmenter("small")
    return _SEG["s"]


def _state(c):
    return _segmenter().init_state(c.v)


def _mask(c, dtype=np.uint8, fill=1):
    st = _state(c)
    return st, np.full(tuple(st.size), fill, dtype)


for _k, _src in {"missing": lambda c: c.p("nope.mp4"), "empty": lambda c: "", "none": lambda c: None,
                 "int": lambda c: 3, "array_2d": lambda c: np.zeros((8, 8), np.uint8),
                 "array_empty": lambda c: np.zeros((0, 8, 8, 3), np.uint8), "empty_list": lambda c: [],
                 "text_file": lambda c: c.user(c.p("v.mp4"), b"nope"), "image": lambda c: c.m,
                 "nan_frames": lambda c: np.full((2, 8, 8, 3), np.nan, np.float32),
                 "fifo": lambda c: (os.mkfifo(c.p("f.mp4")), c.p("f.mp4"))[1],
                 "dev_zero": lambda c: "/dev/zero"}.items():
    case("library", f"init_state_{_k}")(_lib(lambda c, _src=_src: _segmenter().init_state(_src(c))) if _k not in ("fifo", "dev_zero")
                                       else (lambda c, _src=_src: dict(kind="lib", fn=lambda: _segmenter().init_state(_src(c)),
                                                                       timeout=20)))


def _add(c, frame=0, obj=1, mask=None, dtype=np.uint8, fill=1):
    st, m = _mask(c, dtype, fill)
    _segmenter().add_new_mask(st, frame, obj, m if mask is None else mask(m))


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
    if _k == "mask_none":
        _f = _lib(lambda c, _kw=_kw: (lambda st: _segmenter().add_new_mask(st, 0, 1, None))(_state(c)))
    else:
        _f = _lib(lambda c, _kw=_kw: _add(c, **_kw))
    case("library", f"add_new_mask_{_k}")(_f)

case("library", "add_new_mask_bool_ok")(_lib(lambda c: _add(c, dtype=bool, fill=True), expect="ok"))
case("library", "add_new_mask_float_ok")(_lib(lambda c: _add(c, dtype=np.float32, fill=1.0), expect="ok"))

_PRED = {}


def _pred():
    if "p" not in _PRED:
        import seggpt
        _PRED["p"] = seggpt.SegGPTPredictor(seggpt.SegGPT.from_pretrained("small"))
    return _PRED["p"]


def _infer(B=1, K=1, size=None, ch=3, dtype=None, bad=None, pb=None, pk=None):
    import torch
    p = _pred()
    h, w = size or p.image_size
    dt = dtype or torch.float32
    im = torch.zeros(B, ch, h, w, dtype=dt)
    pi = torch.zeros(pb or B, pk or K, ch, h, w, dtype=dt)
    pm = torch.zeros(pb or B, pk or K, ch, h, w, dtype=dt)
    if bad:
        im, pi, pm = bad(im, pi, pm)
    return p.infer(im, pi, pm)


def _nan(t, v=float("nan")):
    t = t.clone()
    t.view(-1)[0] = v
    return t


_INF = {
    "wrong_size": dict(size=(32, 32)), "wrong_channels": dict(ch=1), "int_dtype": dict(dtype="int"),
    "batch_mismatch": dict(pb=2), "k_mismatch": dict(bad=lambda a, b, m: (a, b, m[:, :0])),
    "k_zero": dict(K=0), "nan_image": dict(bad=lambda a, b, m: (_nan(a), b, m)),
    "nan_prompt": dict(bad=lambda a, b, m: (a, _nan(b), m)), "inf_mask": dict(bad=lambda a, b, m: (a, b, _nan(m, float("inf")))),
    "images_5d": dict(bad=lambda a, b, m: (a[None], b, m)), "prompts_4d": dict(bad=lambda a, b, m: (a, b[:, 0], m[:, 0])),
    "numpy_images": dict(bad=lambda a, b, m: (a.numpy(), b, m)), "none_mask": dict(bad=lambda a, b, m: (a, b, None)),
    "batch_zero": dict(B=0),
}
for _k, _kw in _INF.items():
    def _f(c, _kw=_kw):
        import torch
        kw = dict(_kw)
        if kw.get("dtype") == "int":
            kw["dtype"] = torch.int64
        return _infer(**kw)
    case("library", f"infer_{_k}")(_lib(_f))
case("library", "infer_ok")(_lib(lambda c: _infer(), expect="ok"))
case("library", "infer_bad_embedding")(_lib(lambda c: _pred().infer(*[__import__("torch").zeros(1, 3, *_pred().image_size),
                                                                      __import__("torch").zeros(1, 1, 3, *_pred().image_size),
                                                                      __import__("torch").zeros(1, 1, 3, *_pred().image_size)],
                                                                    embedding_type="bogus")))

# ============================================================================= main


def main() -> int:
    t0 = time.time()
    only = sys.argv[1:]
    for cat, name, fn in CASES:
        if only and not any(o in name or o == cat for o in only):
            continue
        t = time.time()
        run_case(cat, name, fn)
        r = RESULTS[-1]
        print(f"{r[0]:14s} {r[1]:44s} {'PASS' if r[2] else 'FAIL'}  {r[3]}  [{time.time() - t:.1f}s]", flush=True)
    print()
    print(f"{'category':14s} {'cases':>6s} {'passed':>7s} {'dataloss':>9s} {'tracebacks':>11s}")
    cats = []
    for r in RESULTS:
        if r[0] not in cats:
            cats.append(r[0])
    for cat in cats + ["ALL"]:
        rs = [r for r in RESULTS if cat == "ALL" or r[0] == cat]
        print(f"{cat:14s} {len(rs):6d} {sum(r[2] for r in rs):7d} {sum(r[4] for r in rs):9d} {sum(r[5] for r in rs):11d}")
    print(f"\n{time.time() - t0:.0f} s")
    return 0 if all(r[2] for r in RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
