"""The one machinery of the two adversarial passes over the output and input rules: how a case sets its
scene and calls a tool or the library, the inputs every case shares, how a call is judged, the table.

Both passes (``python -m benchmarks.adversarial_outputs``, cases in `outputs_*`, and
``python -m benchmarks.output_safety_cases``, cases in `safety_*`) register their cases here with `add`
(or the one-row forms `vos_case`, `tool_case`, `case`) and run them with `main`. Each case runs in its
own folder (a `Scene`). What is in it before the call is the user's and must stay byte for byte
(symlinks: the link itself), except what an earlier run of ours wrote there and nobody changed since
(`Scene.prior`, `Scene.template`) and the manifests; paths marked with `Scene.mark` (anywhere, the
manifests too) and the shared inputs and a victim folder outside the case folders must not change
either. Any difference is DATA LOSS. A refusal is exit code 2, exactly one stderr line starting
``error: ``, no traceback, and nothing written anywhere in the case folder (refused before any work).
A library call given a bad argument raises a one-line ``seggpt.errors.InputError``.

`runner.run_pass` prints one line per case (category, PASS/FAIL, name, reason), then per category the cases,
passes, cases with data loss and cases that printed a traceback, then the failures with their command
and stderr. Exit code 1 if any case failed. Everything happens under a temporary folder in /tmp
(removed at the end, kept with --keep). Cheap: the packaged `small` weights, 2-3 frames,
`--adapt-steps 0`.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from seggpt.outputs import MANIFEST

from .runner import (ROOT, Case, Outcome, Result, call_lib, call_main, call_python, call_sub, changed, digest, entry,
                     failure_detail, input_error_problem, parse_args, refusal_problem, run_pass, snapshot)


# ============================================================================ the inputs every case shares

G: Dict[str, Any] = {}  # tmp, base (the shared inputs), victim, size, the templates, seg, sam, sleepers, socks
MODULES = {"vos": "vos.run", "seggpt": "seggpt.run", "tune": "seggpt.tune", "demo": "vos.demo",
           "eval": "benchmarks.evaluate", "training": "training.__main__"}


def B(rel: str) -> str:
    """A shared input (never to be changed by a case)."""
    return str(G["base"] / rel)


def quiet(fn: Callable[[], Any]) -> Any:
    """A setup step, its output swallowed; it must succeed."""
    with contextlib.redirect_stderr(io.StringIO()) as e, contextlib.redirect_stdout(io.StringIO()):
        try:
            r = fn()
        except SystemExit as x:
            r = x.code
    if r not in (0, None):
        raise RuntimeError(f"setup failed ({r}): {e.getvalue()[-2000:]}")
    return r


def build_inputs(tmp: Path) -> None:
    """The shared inputs: the demo clip of 3 frames, its frames, mask, masks folder and 64 x 64 copies, the
    small weights, a config, a text file, a tiny DAVIS root; the full demo clip and 3 noise frames of its
    size (copied into a case folder by `Scene.inputs`); a victim folder beside the case folders."""
    import av
    import numpy as np
    from PIL import Image

    from vos.data.synthetic import write_davis2017

    base = tmp / "base"
    G.update(tmp=tmp, base=base, victim=tmp / "victim")
    G["victim"].mkdir(parents=True)
    (G["victim"] / "victim.txt").write_bytes(b"do not touch me\n")
    (G["victim"] / "photo.png").write_bytes(b"\x89PNG not really\n")
    demo = importlib.import_module("vos.demo").main
    quiet(lambda: demo(["--frames", "3", str(base)]))
    quiet(lambda: demo([str(base / "demo")]))
    for folder in ("frames", "masks", "noise"):
        (base / folder).mkdir()
    with av.open(str(base / "clip.mp4")) as c:
        for i, f in enumerate(c.decode(video=0)):
            f.to_image().save(base / "frames" / f"{i:05d}.png")
    shutil.copy2(base / "frames" / "00000.png", base / "img.png")
    shutil.copy2(base / "clip_mask.png", base / "masks" / "00000.png")
    m = Image.open(base / "clip_mask.png")
    Image.open(base / "img.png").convert("RGB").resize((64, 64)).save(base / "small_img.png")
    m.resize((64, 64), Image.NEAREST).save(base / "small_mask.png")
    shutil.copy2(ROOT / "seggpt" / "weights" / "small.safetensors", base / "small.safetensors")
    (base / "config.yaml").write_text("engine:\n  memory: 4\n")
    (base / "notes.txt").write_text("a text file\n")
    w, h = Image.open(base / "demo" / "clip_mask.png").size
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(base / "noise" / f"{i:05d}.png")
    quiet(lambda: write_davis2017(str(base / "davis"), num_sequences=1, seed=3, num_frames=3, size=(32, 48),
                                  num_objects=(1, 1)) and None)
    G["size"] = np.array(m).shape[:2]


def VR(out: Optional[str], *extra: str, video: Optional[str] = None, mask: Optional[str] = None) -> List[str]:
    """vos.run's argv: the shared clip, 2 frames, small weights, no adaptation."""
    a = [B("clip.mp4") if video is None else video, "--first-mask", B("clip_mask.png") if mask is None else mask,
         "--weights", "small", "--end", "2", "--quiet", "--adapt-steps", "0"]
    return a + (["--out", out] if out is not None else []) + list(extra)


def VM(video: str, masks: str, out: str, *extra: str) -> List[str]:
    """vos.run's argv with a --masks folder instead of a first mask, 2 frames, small weights, no adaptation."""
    return [video, "--masks", masks, "--weights", "small", "--end", "2", "--quiet", "--adapt-steps", "0", "--out", out, *extra]


def SR(out: str, *extra: str, query: Optional[str] = None, prompt: Optional[str] = None,
       mask: Optional[str] = None) -> List[str]:
    """seggpt.run's argv: the shared prompt image and mask and one query (each replaceable), small weights."""
    return ["--prompt", B("img.png") if prompt is None else prompt, B("clip_mask.png") if mask is None else mask,
            B("frames/00001.png") if query is None else query, "--out", out, "--weights", "small", *extra]


def TUNE(out: str, *extra: str, weights: str = "small", image: Optional[str] = None,
         mask: Optional[str] = None) -> List[str]:
    """seggpt.tune's argv: one step on the small example (image and mask replaceable)."""
    return ["--weights", weights, "--example", B("small_img.png") if image is None else image,
            B("small_mask.png") if mask is None else mask, "--steps", "1", "--out", out, *extra]


def TRAIN(out: str, *extra: str) -> List[str]:
    return ["--config", str(ROOT / "configs" / "train_small.yaml"), f"out_dir={out}", "steps=1", "eval_pairs=2",
            "eval_clips=1", "batch_size=2", "num_workers=0", *extra]


def BV(out: str, *extra: str, root: Optional[str] = None) -> List[str]:
    return ["--dataset", "davis2017", "--root", B("davis") if root is None else root, "--out", out, "--method",
            "copy-first", "--quiet", *extra]


def EV(results: str, *extra: str, root: Optional[str] = None) -> List[str]:
    return ["--dataset", "davis2017", "--root", B("davis") if root is None else root, "--results", results, *extra]


TEMPLATES: Dict[str, Tuple[str, Callable[[Path], List[str]]]] = {
    "vr": ("vos.run", lambda d: VR(str(d / "o"), "--object-masks", "--alpha", str(d / "a"), "--overlay",
                                   str(d / "ov.mp4"), "--report", str(d / "r.json"), "--rle", str(d / "rle.json"),
                                   "--matte", str(d / "m.mkv"))),
    "sr": ("seggpt.run", lambda d: SR(str(d / "sr"))),
    "tu": ("seggpt.tune", lambda d: TUNE(str(d / "p.safetensors"))),
    "bv": ("benchmarks.vos", lambda d: BV(str(d / "bv"))),
    "demo": ("vos.demo", lambda d: ["--frames", "2", str(d / "d")]),
    "tr": ("training.__main__", lambda d: TRAIN(str(d / "tr"))),
}


def template(key: str) -> Path:
    """A folder holding one run of ours of a tool (made on first use, copied into cases by `Scene.template`)."""
    d = G["tmp"] / "templates" / key
    if not d.exists():
        module, argv = TEMPLATES[key]
        d.mkdir(parents=True)
        quiet(lambda: importlib.import_module(module).main(argv(d)))
    return d


def seg() -> Any:
    """One VideoSegmenter (small weights, CPU) for every library case."""
    if "seg" not in G:
        from vos import VideoSegmenter

        G["seg"] = VideoSegmenter("small", device="cpu")
    return G["seg"]


# ============================================================================ one case's folder


class Scene:
    """One case's folder and what a case does in it: set the scene (the user's files and links, runs of
    ours), then one call, which `judge` checks. Paths given as "@rel" are rel in the folder ("@": the folder)."""

    def __init__(self, d: Path):
        self.d = d
        d.mkdir(parents=True)
        self.users: Dict[Path, Optional[tuple]] = {}  # marked paths and their entries
        self.ours: Dict[str, tuple] = {}  # what runs of ours left in the folder, by relative path
        self.before: Dict[str, tuple] = {}
        self.outcome: Optional[Outcome] = None
        self.extra: List[str] = []  # extra failure reasons
        self.mentions: Sequence[str] = ()  # words a refusal must name
        self.inp = d / "in"
        self.v, self.m, self.frames = str(self.inp / "clip.mp4"), str(self.inp / "clip_mask.png"), str(self.inp / "frames")

    def p(self, *parts: str) -> str:
        return str(self.d.joinpath(*parts))

    def at(self, arg: Any) -> Any:
        """`arg`, where an "@rel" string (the case tables' shorthand) is the path rel in the case folder."""
        return self.p(arg[1:]) if isinstance(arg, str) and arg.startswith("@") else arg

    def inputs(self) -> None:
        """in/: the full demo clip, its mask and 3 noise frames (the second pass's cases start from these)."""
        for src, rel in [("demo/clip.mp4", "in/clip.mp4"), ("demo/clip_mask.png", "in/clip_mask.png"),
                         ("noise", "in/frames")]:
            self.copy(G["base"] / src, rel)

    # ----------------------------------------------------------- the scene
    def user(self, rel: Any, data: Any = b"my precious notes\n") -> str:
        """A file of the user's (a link there is replaced, not followed)."""
        p = self.d / self.at(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink():
            p.unlink()
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(p)

    def link(self, rel: str, target: str) -> str:
        p = self.d / self.at(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink() or p.exists():
            p.unlink()
        os.symlink(self.at(target), p)
        return str(p)

    def mark(self, *paths: str) -> None:
        """Paths (files, links, folders: everything under them) anywhere, manifests too, that must not change."""
        for path in paths:
            p = Path(path)
            self.users[p] = entry(p)
            if p.is_dir() and not p.is_symlink():
                self.users.update({p / k: v for k, v in snapshot(p).items()})

    def copy(self, src: Path, rel: str = "") -> Path:
        dst = self.d / rel if rel else self.d
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        return dst

    def davis(self, results: bool = True) -> Tuple[str, str]:
        """A copy of the tiny DAVIS root, with `results` a results folder (a copy of its annotations)."""
        if not (self.d / "davis").exists():
            self.copy(G["base"] / "davis", "davis")
            if results:
                self.copy(G["base"] / "davis" / "Annotations" / "480p", "results")
        return self.p("davis"), self.p("results")

    def vos_args(self, *extra: str, out: Optional[str] = None) -> List[str]:
        """vos.run's argv on the case's own clip and mask (`inputs`), into `out` (default: out/)."""
        return VR(self.p("out") if out is None else out, *extra, video=self.v, mask=self.m)

    def ours_from(self, fn: Callable[[], Any]) -> Any:
        """Run `fn`; what it changed in the folder is ours (may be replaced) until someone changes it."""
        before = snapshot(self.d)
        r = fn()
        self.ours.update({k: v for k, v in snapshot(self.d).items() if before.get(k) != v})
        return r

    def prior(self, tool: str, argv: List[str]) -> None:
        """An earlier run of ours (`tool`: a module or a key of MODULES); it must succeed."""
        o = self.ours_from(lambda: call_main(MODULES.get(tool, tool), argv, self.d))
        if o.code != 0:
            raise RuntimeError(f"prior run failed rc={o.code}: {o.stderr.strip()[-300:]}")

    def template(self, key: str) -> None:
        """A copy of a template run of ours into the folder."""
        self.ours_from(lambda: self.copy(template(key)))

    # ----------------------------------------------------------- the call
    def _run(self, call: Callable[[], Outcome]) -> Outcome:
        self.before = snapshot(self.d)
        self.users.update({p: entry(p) for p, e in self.users.items() if e is None})
        self.outcome = call()
        return self.outcome

    def call(self, tool: str, argv: List[str], sub: bool = False, timeout: float = 90) -> Outcome:
        """A tool's main(argv) in this process, or (`sub`: FIFOs, devices) as a subprocess that must not block."""
        module = MODULES.get(tool, tool)
        return self._run(lambda: call_sub(module, argv, self.d, timeout) if sub else call_main(module, argv, self.d))

    def pyrun(self, code: str, timeout: float = 90) -> Outcome:
        """A snippet in a subprocess; it prints RESULT:<exception class names or ok>."""
        return self._run(lambda: call_python(code, self.d, timeout))

    def lib(self, desc: str, fn: Callable[[], Any], timeout: Optional[float] = None) -> Outcome:
        return self._run(lambda: call_lib(desc, fn, timeout))


def read_manifest(folder: str) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text())


def write_manifest(folder: str, data: Any) -> None:
    (Path(folder) / MANIFEST).write_text(data if isinstance(data, str) else json.dumps(data))


def edit_manifest(folder: str, edit: Callable[[dict], Any]) -> None:
    """`folder`'s manifest changed in place by `edit(m)` (a crafted or tampered manifest)."""
    m = read_manifest(folder)
    edit(m)
    write_manifest(folder, m)


def listed(rel: str, record: Any) -> Callable[[dict], Any]:
    """A manifest edit: `rel` listed with `record`."""
    return lambda m: m["files"].__setitem__(rel, record)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def outside(S: Scene, folder: str, rel: str) -> None:
    """A user's victim file listed in `folder`'s manifest with its real hash, as `rel` ("ABS": its absolute path)."""
    victim = S.user("victim.txt", b"victim of a crafted manifest")
    S.mark(victim)
    edit_manifest(folder, listed(victim if rel == "ABS" else rel,
                                 {"size": os.path.getsize(victim), "sha256": digest(Path(victim))}))


def readonly(S: Scene, rel: str) -> None:
    p = S.user(rel)
    os.chmod(p, 0o444)
    S.mark(p)


def v1(folder: str) -> None:
    """`folder`'s manifest rewritten in the first format (names, no hashes)."""
    m = read_manifest(folder)
    write_manifest(folder, {"format": "seggpt-vos-manifest/1", "files": sorted(m["files"]), "dirs": m.get("dirs", [])})


# ============================================================================ the case API

CASES: List[Case] = []


def add(cat: str, name: str, expect: str, fn: Callable[[Scene], Any]) -> None:
    """One case: `fn(S)` sets the scene in S and makes one call (S.call, S.pyrun, S.lib); `expect` names what
    `judge` requires of it."""
    frame = sys._getframe(1)
    while frame.f_globals["__name__"] == __name__:
        frame = frame.f_back
    CASES.append(Case(cat, name, fn, expect, frame.f_globals["__name__"].rsplit(".", 1)[-1]))


def case(cat: str, name: Optional[str] = None, expect: str = "refuse") -> Callable[[Callable[[Scene], Outcome]], Any]:
    """A decorator: the function is a case of the second pass's kind (it starts from `Scene.inputs`)."""
    def deco(fn: Callable[[Scene], Outcome]) -> Callable[[Scene], Outcome]:
        add(cat, name or fn.__name__, expect, lambda S: (S.inputs(), fn(S))[1])
        return fn
    return deco


def tool_case(cat: str, name: str, tool: str, args: Callable[[Scene], List[str]], *, expect: str = "refuse",
              prior: Optional[Callable[[Scene], List[str]]] = None, prep: Optional[Callable[[Scene], object]] = None,
              sub: bool = False, timeout: float = 60, mentions: Sequence[str] = ()) -> None:
    """A case in one row, from `Scene.inputs`: an earlier run of ours of `tool` with the arguments `prior(S)`
    (when given), then `prep(S)` sets the scene, then the tool with `args(S)` (`sub`: as a subprocess)."""
    def fn(S: Scene) -> Outcome:
        S.inputs()
        if prior is not None:
            S.prior(tool, prior(S))
        if prep is not None:
            prep(S)
        S.mentions = mentions
        return S.call(tool, args(S), sub=sub, timeout=timeout)
    add(cat, name, expect, fn)


def vos_case(cat: str, name: str, *extra: str, prior: Optional[Sequence[str]] = None, out: Optional[str] = None,
             video: Optional[str] = None, mask: Optional[str] = None, **spec: Any) -> None:
    """A vos.run `tool_case`: an earlier run with the arguments `prior` (when given), the call with `extra` on
    the case's clip and mask, or the `video` and `mask` given instead, into `out` ("@rel" paths allowed)."""
    def args(S: Scene) -> List[str]:
        a = S.vos_args(*map(S.at, extra), out=S.at(out))
        a[0], a[2] = S.at(video) if video is not None else a[0], S.at(mask) if mask is not None else a[2]
        return a
    tool_case(cat, name, "vos", args, prior=None if prior is None else lambda S: S.vos_args(*map(S.at, prior)), **spec)


# ============================================================================ judging a case

EXIT_CODES = {"refuse": (2,), "error": (1, 2), "ok": (0,), "ok_or_refuse": (0, 2)}


def judge(S: Scene, expect: str, protected_before: Dict[str, Dict[str, tuple]]) -> Result:
    o = S.outcome
    assert o is not None
    reasons: List[str] = list(S.extra)
    after = snapshot(S.d)
    lost = [k for k, v in S.before.items() if S.ours.get(k) != v and not k.endswith(MANIFEST) and after.get(k) != v]
    lost += [str(p.relative_to(S.d)) if S.d in p.parents else str(p) for p, e in S.users.items() if entry(p) != e]
    for name, before in protected_before.items():
        lost += [f"{name}/{x}" for x in changed(before, snapshot(G[name]))]
    lost = sorted(set(lost))
    if lost:
        reasons.append(f"DATA LOSS: {', '.join(lost[:4])}")
    first = (o.stderr.strip().splitlines() or [""])[0][:160]
    if o.tb:
        reasons.append("traceback printed")
    if o.code == "timeout":
        reasons.append("blocked (timeout)")
    elif expect in EXIT_CODES:  # a tool: its exit code; exit 2 is a clean refusal
        if o.code not in EXIT_CODES[expect]:
            wanted = " or ".join(map(str, EXIT_CODES[expect]))
            reasons.append(f"exit {o.code}, expected {wanted} ({first or o.stdout.strip()[:120]})")
        elif o.code == 2 and refusal_problem(o):
            reasons.append(refusal_problem(o))
        written = changed(S.before, after)
        if expect == "refuse" and written:
            reasons.append(f"wrote before refusing: {', '.join(written[:4])}")
        reasons += [f"message lacks {word!r}" for word in S.mentions if word not in o.stderr]
    elif expect in ("inputerror", "inputerror_or_ok"):
        if (o.exc is not None or expect == "inputerror") and (problem := input_error_problem(o.exc)):
            reasons.append(problem)
    elif expect.startswith("raise:"):  # an exception of the Editor's class `want` (its subclasses count)
        want = expect.split(":", 1)[1]
        if o.exc is None:
            reasons.append(f"no exception, expected {want}")
        elif not isinstance(o.exc, getattr(importlib.import_module("vos.editing.editor"), want)):
            reasons.append(f"{type(o.exc).__name__}: {str(o.exc)[:140]} (expected {want})")
    elif expect in ("returned", "returned_inside"):
        if o.exc is not None:
            reasons.append(f"{type(o.exc).__name__}: {str(o.exc)[:160]}")
    elif expect == "media_no_link":
        if o.exc is not None or any("l.mp4" in str(v) for v in (o.value or [])):
            reasons.append(f"media() lists a link leaving root: {o.value} {o.exc or ''}")
    elif expect in ("sub_inputerror", "sub_error"):
        res = [ln for ln in o.stdout.splitlines() if ln.startswith("RESULT:")]
        if not res:
            reasons.append(f"no result, exit {o.code}: {o.stderr.strip()[-200:]}")
        elif expect == "sub_inputerror" and not res[0].startswith("RESULT:InputError"):
            reasons.append(res[0][:200])
        elif expect == "sub_error" and res[0].startswith("RESULT:returned"):
            reasons.append("opened a FIFO without an error")
    else:
        reasons.append(f"unknown expectation {expect!r}")
    ok = not reasons
    return Result(ok, "; ".join(reasons) if reasons else f"exit {o.code}" + (f" ({first[:90]})" if first else ""),
                  bool(lost), o.tb, "" if ok else failure_detail(o))


def _stop_helpers() -> None:
    """End the processes and close the sockets a case's scene started."""
    for p in G.pop("sleepers", []):
        p.kill()
        p.wait()
    for s in G.pop("socks", []):
        s.close()


def run_case(keep: bool, i: int, one: Case) -> Result:
    S = Scene(G["tmp"] / "cases" / f"c{i:03d}")
    protected = {"base": snapshot(G["base"]), "victim": snapshot(G["victim"])}
    try:
        one.fn(S)
        if S.outcome is None:
            raise RuntimeError("the case ran nothing")
        return judge(S, one.expect, protected)
    finally:
        _stop_helpers()
        if not keep:
            shutil.rmtree(S.d, ignore_errors=True)


def main(argv: Optional[Sequence[str]], description: str, case_modules: Sequence[str]) -> int:
    """Run the cases of `case_modules` (one pass): the shared inputs first, then each case in its folder."""
    args = parse_args(description, argv)
    for module in case_modules:
        importlib.import_module(f"{__package__}.{module}")
    tmp = Path(tempfile.mkdtemp(prefix="seggpt-adv-"))
    try:
        return run_pass([c for c in CASES if c.module in case_modules], lambda i, one: run_case(args.keep, i, one),
                        args.k, lambda: build_inputs(tmp))
    finally:
        _stop_helpers()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
