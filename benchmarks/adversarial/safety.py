"""Adversarial output-safety and bad-input cases for the command-line tools and the library.

Run: ``python -m benchmarks.output_safety_cases [-k TEXT] [--keep]`` (from the repository root).

Checks, per case, in a fresh temporary folder:

* no tool replaces, deletes or rewrites a file it did not write: every entry that exists before the
  call (inputs, user files, files edited after an earlier run, folders, symlinks and their targets) is
  snapshotted byte for byte (symlinks: the link itself) and must be identical afterwards, except
  files an earlier run of ours wrote and that were left unchanged, and the manifests;
  any difference is counted as DATA LOSS;
* a refused run: exit code 2, exactly one stderr line, starting ``error: ``, no traceback, and no
  new entry anywhere under the case folder (refused before any work);
* an accepted run: exit code 0 and no traceback;
* library calls: bad arguments raise ``seggpt.errors.InputError`` (a ValueError, one line).

Categories: out-folder (--out/--alpha: `safety_folders`), single-file (--overlay/--report/--rle/--matte)
and out-is-input (`safety_files`), other-tools (seggpt.run, seggpt.tune, vos.demo, benchmarks.evaluate),
bad-values and special-files (`safety_tools`), library (`safety_library`).

A case returns a spec: ``tool`` (a key of MODULES) and ``args``; ``expect`` "refuse" (the default),
"ok" or "either" (accepted, or a clean refusal); ``sub`` to run it as a subprocess (FIFOs, devices)
with ``timeout``; ``mentions``, words a refusal must name. A library case returns ``kind="lib"``,
``fn`` and ``expect`` "InputError" (the default) or "ok". Most cases are one row, `vos_case` or
`tool_case` (an earlier run of ours, a scene set up, the call). The runner (`runner.run_pass`) prints one
line per case and a tally per category; exit code 1 if any case fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
from PIL import Image

from seggpt.errors import InputError
from seggpt.outputs import MANIFEST

from .runner import (Case, Result, call_lib, call_main, call_sub, failure_detail, input_error_problem, parse_args,
                     refusal_problem, run_pass, snapshot)

CASE_MODULES = ("safety_folders", "safety_files", "safety_tools", "safety_library")
MODULES = {"vos": "vos.run", "seggpt": "seggpt.run", "tune": "seggpt.tune", "demo": "vos.demo",
           "eval": "benchmarks.evaluate"}

# ----------------------------------------------------------------------------- data


_CACHE: dict = {}


def _data() -> Path:
    """The inputs every case copies (made once): the demo clip and mask, 3 noise frames, a tiny DAVIS root."""
    if "d" not in _CACHE:
        d = Path(tempfile.mkdtemp(prefix="ost-data-"))
        from vos.demo import main as demo
        from vos.data.synthetic import write_davis2017

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            demo([str(d / "demo")])
        mask = Image.open(d / "demo" / "clip_mask.png")
        w, h = mask.size
        fr = d / "frames"
        fr.mkdir()
        rng = np.random.default_rng(0)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(fr / f"{i:05d}.png")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            write_davis2017(d / "davis", num_sequences=1, seed=3, num_frames=3, size=(32, 48), num_objects=(1, 1))
        _CACHE["d"] = d
    return _CACHE["d"]


class Ctx:
    """One case's folder: inputs copied in, helpers to prepare the scene.

    ours: the entries (relative to the folder) an earlier run of ours wrote and nobody changed since.
    """

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

    def p(self, *parts) -> str:
        return str(self.root.joinpath(*parts))

    def at(self, arg):
        """`arg`, where an "@rel" string (the case tables' shorthand) is the path rel in the case folder."""
        return self.p(arg[1:]) if isinstance(arg, str) and arg.startswith("@") else arg

    def _rel(self, path) -> str:
        return os.path.relpath(path, self.root)

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
        o = call_main(MODULES[tool], args, self.root)
        if o.code != 0:
            raise RuntimeError(f"prior run failed rc={o.code}: {o.stderr.strip()[-300:]}")
        after = snapshot(self.root)
        self.ours.update(k for k, v in after.items() if before.get(k) != v)
        return o.code

    def user(self, path, data=b"user data\n"):
        path = Path(self.at(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        if path.is_symlink():
            path.unlink()
        path.write_bytes(data)
        self.ours.discard(self._rel(path))
        return str(path)

    def link(self, path, target):
        path, target = Path(self.at(path)), self.at(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        os.symlink(target, path)
        self.ours.discard(self._rel(path))
        return str(path)

    def read_manifest(self, folder):
        return json.loads((Path(folder) / MANIFEST).read_text())

    def write_manifest(self, folder, obj):
        (Path(folder) / MANIFEST).write_text(obj if isinstance(obj, str) else json.dumps(obj, indent=1))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def vos_case(cat: str, name: str, *extra: str, prior: Optional[Sequence[str]] = None,
             prep: Optional[Callable[[Ctx], object]] = None, **spec) -> None:
    """A vos.run case in one row: an earlier run of ours with the arguments `prior` (when given), then
    `prep(c)` sets the scene, then vos.run with `extra` on the case's clip and mask, or the `video` and
    `mask` given instead, into `out`. Any of these of the form "@rel" is the path rel in the case folder,
    "@" the folder; `spec`'s other keys are the spec's."""
    paths = {k: spec.pop(k) for k in ("out", "video", "mask") if k in spec}

    def fn(c: Ctx) -> dict:
        if prior is not None:
            c.prior("vos", c.vos_args(*map(c.at, prior)))
        if prep is not None:
            prep(c)
        given = {k: c.at(v) for k, v in paths.items()}
        a = c.vos_args(*map(c.at, extra), out=given.get("out"))
        for k, i in (("video", 0), ("mask", 2)):
            if k in given:
                a[i] = given[k]
        return dict(tool="vos", args=a, **spec)

    CASES.append(Case(cat, name, fn))


def tool_case(cat: str, name: str, tool: str, args: Callable[[Ctx], List[str]], *,
              prior: Optional[Callable[[Ctx], List[str]]] = None, prep: Optional[Callable[[Ctx], object]] = None,
              **spec) -> None:
    """A case of any tool (a key of MODULES) in one row: an earlier run of ours with the arguments
    `prior(c)` (when given), then `prep(c)`, then the tool with `args(c)`; `spec`: the spec's other keys."""
    def fn(c: Ctx) -> dict:
        if prior is not None:
            c.prior(tool, prior(c))
        if prep is not None:
            prep(c)
        return dict(tool=tool, args=args(c), **spec)

    CASES.append(Case(cat, name, fn))


# ----------------------------------------------------------------------------- cases and judging


CASES: List[Case] = []


def case(cat: str, name: Optional[str] = None) -> Callable[[Callable[[Ctx], dict]], Callable[[Ctx], dict]]:
    def deco(fn):
        CASES.append(Case(cat, name or fn.__name__, fn))
        return fn

    return deco


def all_cases() -> List[Case]:
    """Every case (importing a case module registers its cases)."""
    for module in CASE_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return CASES


def judge_lib(spec: dict) -> Result:
    o = call_lib(repr(spec["fn"]), spec["fn"], timeout=spec.get("timeout", 60))
    if o.code == "timeout":
        return Result(False, "timed out (blocked)")
    if spec.get("expect", "InputError") == "ok":
        if o.exc is None:
            return Result(True, "ok")
        return Result(False, f"raised {type(o.exc).__name__}: {str(o.exc)[:150]}", tb=True)
    problem = input_error_problem(o.exc)
    if problem is None:
        return Result(True, f"InputError: {str(o.exc)[:80]}")
    return Result(False, problem, tb=o.exc is not None and not isinstance(o.exc, InputError))


def judge(ctx: Ctx, spec: dict) -> Result:
    """Run a spec's tool in the case folder and judge it (data loss, exit code, stderr, nothing written)."""
    before = snapshot(ctx.root)
    if spec.get("sub"):
        o = call_sub(MODULES[spec["tool"]], spec["args"], ctx.root, timeout=spec.get("timeout", 60))
    else:
        o = call_main(MODULES[spec["tool"]], spec["args"], ctx.root)
    after = snapshot(ctx.root)
    lost = [k for k in before if k not in ctx.ours and not k.endswith(MANIFEST) and after.get(k) != before[k]]
    reasons = [f"DATA LOSS: {k} {'gone' if k not in after else 'changed'}" for k in lost]
    lines = [ln for ln in o.stderr.splitlines() if ln.strip()]
    if o.tb:
        reasons.append("traceback: " + (lines[-1] if lines else ""))
    expect = spec.get("expect", "refuse")
    if o.code == "timeout":
        reasons.append("blocked (timeout)")
    elif expect == "refuse":
        if o.code != 2:
            reasons.append(f"rc={o.code}, expected 2")
        if refusal_problem(o):
            reasons.append(refusal_problem(o))
        new = [k for k in after if k not in before and not k.endswith(MANIFEST)]
        if new:
            reasons.append(f"refused but wrote {new[:4]}")
        reasons += [f"message lacks {word!r}" for word in spec.get("mentions", []) if word not in o.stderr]
    elif expect == "ok":
        if o.code != 0:
            reasons.append(f"rc={o.code}, expected 0: {' | '.join(lines)[-300:]!r}")
    elif expect == "either":
        if o.code == 2 and refusal_problem(o):
            reasons.append(f"rc 2: {refusal_problem(o)}")
        elif o.code not in (0, 2):
            reasons.append(f"rc={o.code}")
    ok = not reasons
    return Result(ok, "; ".join(reasons) if reasons else f"rc={o.code}", bool(lost), o.tb,
                  "" if ok else failure_detail(o))


def run_case(keep: bool, one: Case) -> Result:
    root = Path(tempfile.mkdtemp(prefix="ost-"))
    try:
        ctx = Ctx(root)
        spec = one.fn(ctx)
        return judge_lib(spec) if spec.get("kind") == "lib" else judge(ctx, spec)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(__doc__.split("\n\n")[0], argv)
    return run_pass(all_cases(), lambda i, one: run_case(args.keep, one), args.k, _data)
