"""Adversarial checks of the project's output and input promises, as a careless or hostile user would try them.

Run from the repository root:

    python -m benchmarks.adversarial_outputs            # every case
    python -m benchmarks.adversarial_outputs -k alpha    # only cases whose category/name contains "alpha"

What it checks (output options first), one case module per pair of categories:

1. data loss in --out / --alpha folders: user files, hand-edited outputs, names slipped into the
   manifest, tampered / garbage / foreign-format manifests, paths outside the folder, symlinks inside,
   the manifest as a folder or a link, killed and running runs, hard links;
2. single-file outputs (--overlay, --report, --rle, --matte) over user files, links, folders, with and
   without --overwrite, and one path given for two outputs (1 and 2: `outputs_folders`);
3. outputs that are inputs (the video, the mask, a frames folder, the weights, the config, a dataset;
   through symlinks and `..`);
4. the other tools' outputs: seggpt.run, seggpt.tune, vos.demo, training, benchmarks.vos,
   benchmarks.evaluate, the web app's Editor (exports, sessions, uploads) (3 and 4: `outputs_tools`);
5. bad values and empty strings;
6. special files (FIFOs, /dev/zero, /dev/null, sockets) as inputs and outputs (subprocesses, timeouts)
   (5 and 6: `outputs_values`);
7. library inputs (NaN, inf, wrong dtype / shape / layout, numpy vs torch, int8) (`outputs_library`).

For every case: the expected outcome, the exit code (or exception), whether every pre-existing user byte
is unchanged (each case runs in its own sandbox folder; the user's files in it are marked, and the
shared inputs and a victim folder outside the sandboxes are snapshotted before and after), whether a
traceback was printed, and for refusals whether anything was written (a refusal must come before any
work). The runner (`runner.run_pass`) prints one line per case and a tally by category; exit code 1 if
any case failed. Everything happens under a temporary folder in /tmp (removed at the end, kept with
--keep). Cheap: the packaged `small` weights, 2-3 frames, `--adapt-steps 0`.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from seggpt.outputs import MANIFEST

from .runner import (ROOT, Case, Outcome, Result, call_lib, call_main, call_python, call_sub, changed, digest,
                     entry, failure_detail, input_error_problem, parse_args, refusal_problem, run_pass, snapshot)

CASE_MODULES = ("outputs_folders", "outputs_tools", "outputs_values", "outputs_library")
C1, C2, C3, C4, C5, C6, C7 = ("1-folders", "2-single-files", "3-outputs-are-inputs", "4-other-tools",
                              "5-bad-values", "6-special-files", "7-library")

# ============================================================================ the sandbox of one case


class Sandbox:
    """One case's folder; the user's files in it are marked (`mark`), everything else may be ours."""

    def __init__(self, d: Path):
        self.d = d
        d.mkdir(parents=True)
        self.users: Dict[Path, Optional[tuple]] = {}
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
                for k, v in snapshot(p).items():
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
    def _run(self, call: Callable[[], Outcome]) -> Outcome:
        self.before = snapshot(self.d)
        for p in list(self.users):
            if self.users[p] is None:
                self.users[p] = entry(p)
        self.outcome = call()
        return self.outcome

    def call(self, module: str, argv: List[str]) -> Outcome:
        """A tool's main(argv) in-process, in the sandbox."""
        return self._run(lambda: call_main(module, argv, self.d))

    def sub(self, module: str, argv: List[str], timeout: float = 90) -> Outcome:
        """A tool as a subprocess (FIFOs, devices: it must not block)."""
        return self._run(lambda: call_sub(module, argv, self.d, timeout))

    def pyrun(self, code: str, timeout: float = 90) -> Outcome:
        """A snippet in a subprocess; it prints RESULT:<exception class names or ok>."""
        return self._run(lambda: call_python(code, self.d, timeout))

    def lib(self, desc: str, fn: Callable[[], Any]) -> Outcome:
        return self._run(lambda: call_lib(desc, fn))


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
    quiet(lambda: importlib.import_module("vos.demo").main(["--frames", "3", str(base)]))
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
    from vos.data.synthetic import write_davis2017

    write_davis2017(str(base / "davis"), num_sequences=1, seed=3, num_frames=3, size=(32, 48), num_objects=(1, 1))
    G["size"] = np.array(m).shape[:2]


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


def VR(out: Optional[str], *extra: str, video: Optional[str] = None, mask: Optional[str] = None) -> List[str]:
    """vos.run's argv: the demo clip, 2 frames, small weights, no adaptation."""
    a = [B("clip.mp4") if video is None else video, "--first-mask", B("clip_mask.png") if mask is None else mask,
         "--weights", "small", "--end", "2", "--quiet", "--adapt-steps", "0"]
    if out is not None:
        a += ["--out", out]
    return a + list(extra)


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


TRAIN_FAST = ["steps=1", "eval_pairs=2", "eval_clips=1", "batch_size=2", "num_workers=0"]


def TRAIN(out: str, *extra: str) -> List[str]:
    return ["--config", str(ROOT / "configs" / "train_small.yaml"), f"out_dir={out}", *TRAIN_FAST, *extra]


def BV(out: str, *extra: str, root: Optional[str] = None) -> List[str]:
    return ["--dataset", "davis2017", "--root", B("davis") if root is None else root, "--out", out, "--method",
            "copy-first", "--quiet", *extra]


def EV(results: str, *extra: str, root: Optional[str] = None) -> List[str]:
    return ["--dataset", "davis2017", "--root", B("davis") if root is None else root, "--results", results, *extra]


def build_templates(tmp: Path) -> None:
    t = tmp / "templates"
    vr = t / "vr"
    vr.mkdir(parents=True)
    quiet(lambda: importlib.import_module("vos.run").main(VR(
        str(vr / "o"), "--object-masks", "--alpha", str(vr / "a"), "--overlay", str(vr / "ov.mp4"),
        "--report", str(vr / "r.json"), "--rle", str(vr / "rle.json"), "--matte", str(vr / "m.mkv"))))
    G["t_vr"] = vr
    for key, folder, module, argv in [("t_sr", "sr", "seggpt.run", lambda d: SR(str(d / "sr"))),
                                      ("t_tu", "tu", "seggpt.tune", lambda d: TUNE(str(d / "p.safetensors"))),
                                      ("t_bv", "bv", "benchmarks.vos", lambda d: BV(str(d / "bv"))),
                                      ("t_demo", "demo", "vos.demo", lambda d: ["--frames", "2", str(d / "d")]),
                                      ("t_tr", "tr", "training.__main__", lambda d: TRAIN(str(d / "tr")))]:
        d = t / folder
        d.mkdir()
        quiet(lambda: importlib.import_module(module).main(argv(d)))
        G[key] = d


# ============================================================================ helpers the case modules share


def mf(folder: str) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text())


def mf_write(folder: str, data: Any) -> None:
    (Path(folder) / MANIFEST).write_text(data if isinstance(data, str) else json.dumps(data))


def rec(path: str) -> dict:
    return {"size": os.path.getsize(path), "sha256": digest(Path(path))}


def outside(S: Sandbox, f: str, rel: str) -> None:
    """A user's victim file listed in folder f's manifest with its real hash, as `rel` ("ABS": its absolute path)."""
    victim = S.user("victim.txt", b"victim of a crafted manifest")
    S.mark(victim)
    m = mf(f)
    m["files"][victim if rel == "ABS" else rel] = rec(victim)
    mf_write(f, m)


def readonly(S: Sandbox, rel: str) -> None:
    p = S.user(rel)
    os.chmod(p, 0o444)
    S.mark(p)


def v1(f: str) -> None:
    """Folder f's manifest rewritten in the first format (names, no hashes)."""
    m = mf(f)
    mf_write(f, {"format": "seggpt-vos-manifest/1", "files": sorted(m["files"]), "dirs": m.get("dirs", [])})


def davis_local(S: Sandbox) -> str:
    S.copy(G["base"] / "davis", "davis")
    S.mark(S.p("davis"))
    return S.p("davis")


def seg():
    """One VideoSegmenter (small weights, CPU) for every library case."""
    if "seg" not in G:
        from vos import VideoSegmenter

        G["seg"] = VideoSegmenter("small", device="cpu")
    return G["seg"]


# ============================================================================ cases and judging

CASES: List[Case] = []


def add(cat: str, name: str, expect: str, fn: Callable[[Sandbox], Any]) -> None:
    CASES.append(Case(cat, name, fn, expect))


def all_cases() -> List[Case]:
    """Every case, in category order (importing a case module registers its cases)."""
    for module in CASE_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return CASES


def judge(S: Sandbox, expect: str, protected_before: Dict[str, Dict[str, tuple]]) -> Result:
    o = S.outcome
    assert o is not None
    reasons: List[str] = list(S.extra)
    after = snapshot(S.d)
    lost = [str(p.relative_to(S.d)) if S.d in p.parents else str(p) for p, e in S.users.items() if entry(p) != e]
    for name, before in protected_before.items():
        lost += [f"{name}/{x}" for x in changed(before, snapshot(G[name]))]
    if lost:
        reasons.append(f"DATA LOSS: {', '.join(lost[:4])}")
    first = (o.stderr.strip().splitlines() or [""])[0][:160]
    if o.tb:
        reasons.append("traceback printed")
    if expect == "refuse":
        if o.code != 2:
            reasons.append(f"exit {o.code}, expected 2 ({first or o.stdout.strip()[:120]})")
        elif refusal_problem(o):
            reasons.append(refusal_problem(o))
        written = changed(S.before or {}, after)
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
        elif o.code == 2 and refusal_problem(o):
            reasons.append(refusal_problem(o))
    elif expect in ("inputerror", "inputerror_or_ok"):
        if o.exc is not None or expect == "inputerror":
            problem = input_error_problem(o.exc)
            if problem:
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
    ok = not reasons
    return Result(ok, "; ".join(reasons) if reasons else f"exit {o.code}" + (f" ({first[:90]})" if first else ""),
                  bool(lost), o.tb, "" if ok else failure_detail(o))


def run_case(tmp: Path, i: int, one: Case) -> Result:
    S = Sandbox(tmp / "cases" / f"c{i:03d}")
    protected = {"base": snapshot(G["base"]), "victim": snapshot(G["victim"])}
    try:
        one.fn(S)
        if S.outcome is None:
            raise RuntimeError("the case ran nothing")
        return judge(S, one.expect, protected)
    finally:
        for p in G.pop("sleepers", []):
            p.kill()
            p.wait()
        for s in G.pop("socks", []):
            s.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(__doc__.split("\n\n")[0], argv)
    tmp = Path(tempfile.mkdtemp(prefix="seggpt-adv-"))

    def setup() -> None:
        print(f"setting up inputs and templates in {tmp} ...", flush=True)
        build_inputs(tmp)
        build_templates(tmp)

    try:
        return run_pass(all_cases(), lambda i, one: run_case(tmp, i, one), args.k, setup)
    finally:
        for p in G.pop("sleepers", []):
            p.kill()
        if not args.keep:
            for dirpath, _, filenames in os.walk(tmp):
                for n in filenames:
                    try:
                        os.chmod(Path(dirpath) / n, 0o644, follow_symlinks=False)
                    except (OSError, NotImplementedError):
                        pass
            shutil.rmtree(tmp, ignore_errors=True)
