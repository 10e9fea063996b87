"""Adversarial cases for vos.editing.drawing and vos.editing.editor.Editor (library level), and the app in a browser.

Run: ``python -m benchmarks.adversarial_editor [-k TEXT] [--browser]``

The cases (`editor_drawing`: strokes, boxes, GrabCut; `editor_inputs`: hostile arguments, sessions,
names, files and frame sizes given to the Editor; `editor_session`: undo, propagation, cancelling and
export keeping the session consistent) run through the shared runner (`runner.run_pass`): a case
passes when it returns, fails on an AssertionError (a broken promise) or any other exception.
``--browser`` adds the checks of `editor_browser` (headless Chromium against ``python -m vos.app``).
Exits 1 if any case or check fails.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import tempfile
import traceback
import zipfile
from typing import Callable, List, Optional, Sequence

import numpy as np

from .runner import Case, Result, run_pass, write_ffv1  # noqa: F401 - write_ffv1: for the case modules

CASE_MODULES = ("editor_drawing", "editor_inputs", "editor_session")
CASES: List[Case] = []


def case(fn: Callable[[], None]) -> Callable[[], None]:
    """Register a case; its category is its module's last word (drawing, inputs, session)."""
    CASES.append(Case(fn.__module__.rsplit("_", 1)[-1], fn.__name__, fn))
    return fn


def _alarm(signum, frame):
    raise TimeoutError("took too long")


def expect_error(fn, etype, what="", limit=5.0):
    """fn() must raise etype (one line) or return; never another exception, never slow."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        fn()
    except TimeoutError:
        raise AssertionError(f"{what}: hang (> {limit}s)") from None
    except etype as e:
        msg = str(e)
        if "\n" in msg or not msg.strip():
            raise AssertionError(f"{what}: {etype.__name__} message not one line: {msg!r:.200}") from None
        return e
    except Exception as e:
        raise AssertionError(f"{what}: {type(e).__name__} instead of {etype.__name__}: {str(e)[:150]}") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return None


def must_raise(fn, etype, what="", limit=5.0):
    e = expect_error(fn, etype, what, limit)
    if e is None:
        raise AssertionError(f"{what}: accepted silently (expected {etype.__name__})")
    return e


# ====================================================================== the editor under test

_SEG = {}


def segmenter():
    if "s" not in _SEG:
        from vos import VideoSegmenter
        _SEG["s"] = VideoSegmenter("small", device="cpu", config={"memory": 1})
    return _SEG["s"]


def make_editor(n=6, size=(48, 64), name="clip.mp4", steps=0, root=None, seed=0):
    from seggpt.io import write_mp4
    from vos.editing.editor import Editor
    from vos.data.synthetic import make_clip
    root = root or tempfile.mkdtemp(prefix="adv_ed_")
    fr, lab = make_clip(seed, n, size=size, num_objects=1)
    write_mp4(os.path.join(root, name), fr, fps=8)
    ed = Editor(segmenter(), root)
    ed.set_adapt_steps(steps)
    ed.open(name)
    return ed, root, lab


def drawn_editor(**kwargs):
    """`make_editor` with an object "a" drawn on frame 0 (`BR(10, 10)`): (editor, root, a)."""
    ed, root, _ = make_editor(**kwargs)
    a = ed.add_object("a")
    ed.draw(0, a, BR(10, 10))
    return ed, root, a


def run_all(gen):
    return list(gen)


def check_invariants(ed, where=""):
    """Saved session masks == given; labels show given masks (no overlap); removed objects absent."""
    from PIL import Image

    p = ed.save_session("inv")
    with zipfile.ZipFile(p) as z:
        doc = json.loads(z.read("session.json"))
        saved = {}
        for n in doc["annotations"]:
            with z.open(n["mask"]) as f:
                saved[(n["frame"], n["object"])] = np.array(Image.open(f)) > 127
    given = {(f, o): m for f in ed.annotated_frames() for o, m in ed.given(f).items()}
    assert set(saved) == set(given), f"{where}: session holds {sorted(saved)} but given is {sorted(given)}"
    for k in given:
        assert np.array_equal(saved[k], given[k]), f"{where}: session mask {k} differs from given"
    ids = set(ed.objects)
    for (f, o) in given:
        assert o in ids, f"{where}: given mask of removed object {o} on frame {f}"
    for f in range(ed.num_frames):
        lab = ed.labels(f)
        extra = set(np.unique(lab).tolist()) - ids - {0}
        assert not extra, f"{where}: labels({f}) shows removed/unknown object ids {sorted(extra)}"
        g = ed.given(f)
        for o, m in g.items():
            others = [mm for oo, mm in g.items() if oo != o]
            excl = m & ~np.any(others, axis=0) if others else m
            if not np.array_equal(lab[excl] == o, np.ones(int(excl.sum()), bool)):
                raise AssertionError(f"{where}: labels({f}) does not show given mask of object {o} "
                                     f"({int((lab[excl] != o).sum())} px missing)")
            if ((lab == o) & ~m).any() and f in ed.results:
                raise AssertionError(f"{where}: labels({f}) shows object {o} outside its given mask "
                                     f"({int(((lab == o) & ~m).sum())} px)")


def BR(x, y, r=6):
    """One brush stroke from (x, y) to (x + 8, y + 4)."""
    return [{"tool": "brush", "radius": r, "points": [[x, y], [x + 8, y + 4]]}]


# ====================================================================== running

def all_cases() -> List[Case]:
    for module in CASE_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return CASES


def run_case(one: Case) -> Result:
    try:
        one.fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported with where it happened
        where = traceback.extract_tb(e.__traceback__)[-1]
        at = f"{os.path.basename(where.filename)}:{where.lineno} {where.line or ''}"[:150]
        if isinstance(e, AssertionError):
            return Result(False, f"{e or 'assertion failed'} [{at}]")
        return Result(False, f"unexpected {type(e).__name__}: {str(e)[:200]} [{at}]")
    return Result(True, "ok")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", action="append", default=[], metavar="TEXT",
                    help="only cases whose category or name contains TEXT (repeatable: any of them)")
    ap.add_argument("--browser", action="store_true", help="also the checks in headless Chromium")
    args = ap.parse_args(argv)
    if not __debug__:  # the cases check with assert statements, which -O removes: every case would pass
        ap.error("run the pass without python -O / PYTHONOPTIMIZE (its checks are assert statements)")
    code = run_pass(all_cases(), lambda i, c: run_case(c), args.k)
    if args.browser:
        from .editor_browser import browser_checks

        failed = browser_checks()
        for name in failed:
            print(f"FAIL browser: {name}")
        code = 1 if failed else code
    return code
