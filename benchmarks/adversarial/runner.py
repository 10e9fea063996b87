"""What every adversarial pass shares: what a folder holds (a byte-for-byte snapshot), how a case calls a
tool (in process, or as a subprocess) or the library, how a refusal and a library error are judged, and
the table of results (`run_pass`).

The passes over the output and input rules (`output_pass`) and over the app's editing (`editor`) run
their cases through `run_pass`; the tests' FFV1 videos are written by `write_ffv1`.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence


ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


# ============================================================================ what a folder holds


def digest(p: Path) -> str:
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
        try:
            return ("file", st.st_size, digest(p), stat.S_IMODE(st.st_mode))
        except OSError:
            return ("unreadable", st.st_size, stat.S_IMODE(st.st_mode))
    return ("special", stat.S_IFMT(st.st_mode))


def snapshot(folder: Path) -> Dict[str, tuple]:
    """Every entry under `folder` (links not followed), by path relative to it; none when it is missing."""
    return {os.path.relpath(Path(d) / n, folder): entry(Path(d) / n)
            for d, dirs, files in os.walk(folder, followlinks=False) for n in dirs + files}


def changed(a: Dict[str, tuple], b: Dict[str, tuple]) -> List[str]:
    """The paths whose entry differs between two snapshots: `path:new`, `path:gone` or `path:changed`."""
    return [f"{k}:{'new' if k not in a else 'gone' if k not in b else 'changed'}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


# ============================================================================ calling a tool or the library


@dataclass
class Outcome:
    """How one call ended: an exit code, or "exception" / "timeout" / "returned" / an exception's class name."""

    cmd: str = ""
    code: Any = None
    stdout: str = ""
    stderr: str = ""
    exc: Optional[BaseException] = None
    tb: bool = False
    value: Any = None


def _q(a: str) -> str:
    return a if a and all(c.isalnum() or c in "/._-=:" for c in a) else json.dumps(a)


def command(module: str, argv: Sequence[str]) -> str:
    return f"python -m {module} " + " ".join(_q(a) for a in argv)


def call_main(module: str, argv: Sequence[str], cwd: Path) -> Outcome:
    """A tool's main(argv) in this process, run in `cwd` (a default output lands there, never in the
    repository); stdout and stderr captured, stderr also at the file descriptor (what C code writes)."""
    o = Outcome(cmd=command(module, argv))
    main = importlib.import_module(module).main
    err, out = io.StringIO(), io.StringIO()
    here = os.getcwd()
    with tempfile.TemporaryFile() as fd_file:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(fd_file.fileno(), 2)
        os.chdir(cwd)
        try:
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
            os.chdir(here)
            os.dup2(saved, 2)
            os.close(saved)
        fd_file.seek(0)
        o.stderr = fd_file.read().decode(errors="replace") + err.getvalue()
    o.stdout = out.getvalue()
    o.code = 0 if o.code is None else o.code  # main() returning None exits 0
    o.tb = "Traceback" in o.stderr
    return o


def _run(cmd: str, args: List[str], cwd: Path, timeout: float) -> Outcome:
    o = Outcome(cmd=cmd)
    try:
        r = subprocess.run([PY, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           env={**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")})
        o.code, o.stderr, o.stdout = r.returncode, r.stderr, r.stdout
    except subprocess.TimeoutExpired as e:
        o.code = "timeout"
        o.stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    o.tb = "Traceback" in o.stderr
    return o


def call_sub(module: str, argv: Sequence[str], cwd: Path, timeout: float = 90) -> Outcome:
    """A tool as a subprocess (FIFOs, devices: a call that blocks is stopped and reported)."""
    return _run(command(module, argv), ["-m", module, *argv], cwd, timeout)


def call_python(code: str, cwd: Path, timeout: float = 90) -> Outcome:
    """A snippet in a subprocess (it prints what it found on stdout)."""
    return _run(f"python -c <{code.strip().splitlines()[-1][:80]}...>", ["-c", code], cwd, timeout)


def call_lib(desc: str, fn: Callable[[], Any], timeout: Optional[float] = None) -> Outcome:
    """A library call: code "returned" or the class name of what it raised. It runs in a thread, so with a
    timeout a call that blocks (a FIFO opened for reading) is reported instead of waited for."""
    o = Outcome(cmd=desc)
    done: Dict[str, Any] = {}

    def target() -> None:
        try:
            done["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - what escaped the library is the finding
            done["exc"] = e

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        o.code = "timeout"
        return o
    o.value, o.exc = done.get("value"), done.get("exc")
    o.code = "returned" if o.exc is None else type(o.exc).__name__
    return o


# ============================================================================ verdicts


def refusal_problem(o: Outcome) -> Optional[str]:
    """Why stderr is not a clean refusal's (exactly one line, starting ``error: ``), or None."""
    lines = [ln for ln in o.stderr.strip().splitlines() if ln.strip()]
    if not lines:
        return "nothing on stderr"
    if len(lines) != 1:
        return f"{len(lines)} lines on stderr: {' | '.join(ln[:100] for ln in lines[:3])}"
    if not lines[0].startswith("error: "):
        return f"stderr not 'error: ...': {lines[0][:160]}"
    return None


def input_error_problem(exc: Optional[BaseException]) -> Optional[str]:
    """Why `exc` is not the library's answer to a bad argument (a one-line seggpt.errors.InputError,
    which is a ValueError), or None."""
    from seggpt.errors import InputError

    if exc is None:
        return "no exception, expected InputError"
    if not (isinstance(exc, InputError) and isinstance(exc, ValueError)):
        return f"{type(exc).__name__}: {str(exc)[:140]} (expected InputError)"
    if "\n" in str(exc).strip():
        return "InputError message spans several lines"
    return None


# ============================================================================ the pass


@dataclass
class Case:
    category: str
    name: str
    fn: Callable[..., Any]
    expect: str = ""
    module: str = ""  # the case module that registered it (a pass runs the cases of its modules)


@dataclass
class Result:
    ok: bool
    reason: str
    lost: bool = False  # data loss
    tb: bool = False  # a traceback printed
    detail: str = ""  # for a failure: the command and its stderr


def parse_args(description: str, argv: Optional[Sequence[str]], flags: Optional[Dict[str, str]] = None,
               asserts: bool = False) -> argparse.Namespace:
    """-k TEXT (repeatable) and the on/off `flags` (option: help; by default --keep). `asserts`: the pass
    checks with assert statements, which python -O removes (every case would pass): refuse to run then."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("-k", action="append", default=[], metavar="TEXT",
                    help="only cases whose category or name contains TEXT (repeatable: any of them)")
    for flag, text in (flags or {"--keep": "keep the temporary folders"}).items():
        ap.add_argument(flag, action="store_true", help=text)
    args = ap.parse_args(argv)
    if asserts and not __debug__:
        ap.error("run the pass without python -O / PYTHONOPTIMIZE (its checks are assert statements)")
    return args


def run_pass(cases: Sequence[Case], run_one: Callable[[int, Case], Result], only: Sequence[str] = (),
             setup: Optional[Callable[[], None]] = None) -> int:
    """Set up, run the cases (those matching `only`), print a line each and the table; the exit code."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would be stderr lines the verdicts count
    t0 = time.time()
    if setup is not None:
        setup()
    print(f"setup {time.time() - t0:.0f} s; {len(cases)} cases", flush=True)
    tally: Dict[str, List[int]] = {}
    failures: List[str] = []
    for i, case in enumerate(cases):
        if only and not any(k in case.category or k in case.name for k in only):
            continue
        t = time.time()
        try:
            r = run_one(i, case)
        except Exception as e:  # noqa: BLE001 - a broken case setup is reported, never hidden
            r = Result(False, f"CASE SETUP ERROR {type(e).__name__}: {e}")
        tally[case.category] = [a + b for a, b in zip(tally.get(case.category, [0, 0, 0, 0]), (1, r.ok, r.lost, r.tb))]
        line = f"{case.category:22s} {'PASS' if r.ok else 'FAIL'}  {case.name}  -- {r.reason}  [{time.time() - t:.1f}s]"
        print(line, flush=True)
        if not r.ok:
            failures.append(line + (f"\n{r.detail}" if r.detail else ""))
    print("\n" + "=" * 78)
    print(f"{'category':22s} {'cases':>6s} {'passed':>7s} {'data loss':>10s} {'tracebacks':>11s}")
    total = [0, 0, 0, 0]
    for cat, counts in tally.items():
        total = [a + b for a, b in zip(total, counts)]
        print(f"{cat:22s} {counts[0]:6d} {counts[1]:7d} {counts[2]:10d} {counts[3]:11d}")
    print(f"{'TOTAL':22s} {total[0]:6d} {total[1]:7d} {total[2]:10d} {total[3]:11d}   ({time.time() - t0:.0f} s)")
    if failures:
        print("\nFAILURES:", *failures, sep="\n")
    return 1 if failures else 0


def failure_detail(o: Optional[Outcome]) -> str:
    return f"    command: {o.cmd if o else '?'}\n    stderr: {o.stderr.strip()[-600:] if o else ''}"


def write_ffv1(path: str, frames: Sequence[Any], pix_fmt: str = "bgr0") -> None:
    """A lossless FFV1 video of RGB frames ((H, W, 3) uint8 arrays) of any size (the mp4 writer needs even sizes);
    the tests' files store them as ``yuv444p``."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(path, "w") as c:
        s = c.add_stream("ffv1", rate=8)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
