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

import functools
import importlib
import json
import os
import signal
import tempfile
import traceback
import zipfile
from typing import Callable, List, Optional, Sequence

import numpy as np

from .runner import Case, Result, parse_args, run_pass, write_ffv1

CASE_MODULES = ("editor_drawing", "editor_inputs", "editor_session")
CASES: List[Case] = []


def case(fn: Callable[[], None], name: str = "") -> Callable[[], None]:
    """Register a case (named `name` or as `fn`); its category is its module's last word (drawing, inputs, session)."""
    CASES.append(Case(fn.__module__.rsplit("_", 1)[-1], name or fn.__name__, fn))
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


def each(call, values, etype, what, limit=5.0, check=must_raise):
    """`check` (must_raise or expect_error) call(v) for each value; `what` formats the value ("draw({!r})")."""
    for v in values:
        check(lambda: call(v), etype, what.format(v), limit)


# ====================================================================== the editor under test

@functools.lru_cache(maxsize=None)
def segmenter():
    from vos import VideoSegmenter
    return VideoSegmenter("small", device="cpu", config={"memory": 1})


def make_editor(n=6, size=(48, 64), name="clip.mp4", steps=0, root=None, seed=0, frames=None):
    """An Editor on video `name` in `root` (a new folder by default), opened: (editor, root, labels). The video
    is a synthetic clip (`n` frames of `size`, with its labels), or `frames` (labels None) as lossless FFV1."""
    from seggpt.io import write_mp4
    from vos.editing.editor import Editor
    from vos.data.synthetic import make_clip
    root = root or tempfile.mkdtemp(prefix="adv_ed_")
    if frames is None:
        fr, lab = make_clip(seed, n, size=size, num_objects=1)
        write_mp4(os.path.join(root, name), fr, fps=8)
    else:
        lab = None
        write_ffv1(os.path.join(root, name), frames)
    ed = Editor(segmenter(), root)
    ed.set_adapt_steps(steps)
    ed.open(name)
    return ed, root, lab


def drawn_editor(frame=0, r=6, propagate=False, **kwargs):
    """`make_editor` with an object "a" drawn on `frame` (`BR(10, 10, r)`), propagated from frame 0 if
    `propagate`: (editor, root, a)."""
    ed, root, _ = make_editor(**kwargs)
    a = ed.add_object("a")
    ed.draw(frame, a, BR(10, 10, r))
    if propagate:
        run_all(ed.propagate(0))
    return ed, root, a


def one_object(**kwargs):
    """`make_editor` with an object "a" added, nothing drawn: (editor, a)."""
    ed, root, _ = make_editor(**kwargs)
    return ed, ed.add_object("a")


def two_objects(**kwargs):
    """`make_editor` with objects "a" and "b" added, nothing drawn: (editor, a, b)."""
    ed, root, _ = make_editor(**kwargs)
    return ed, ed.add_object("a"), ed.add_object("b")


run_all = list  # a propagation (a generator) run to its end


def check_invariants(ed, where=""):
    """Saved session masks == given; labels show given masks (no overlap); removed objects absent."""
    from PIL import Image

    with zipfile.ZipFile(ed.save_session("inv")) as z:
        saved = {(n["frame"], n["object"]): np.array(Image.open(z.open(n["mask"]))) > 127
                 for n in json.loads(z.read("session.json"))["annotations"]}
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
            missing, outside = int((lab[excl] != o).sum()), int(((lab == o) & ~m).sum())
            assert not missing, f"{where}: labels({f}) does not show given mask of object {o} ({missing} px missing)"
            assert not (outside and f in ed.results), \
                f"{where}: labels({f}) shows object {o} outside its given mask ({outside} px)"


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
    args = parse_args(__doc__.split("\n\n")[0], argv, {"--browser": "also the checks in headless Chromium"}, asserts=True)
    code = run_pass(all_cases(), lambda i, c: run_case(c), args.k)
    if args.browser:
        from .editor_browser import browser_checks

        failed = browser_checks()
        for name in failed:
            print(f"FAIL browser: {name}")
        code = 1 if failed else code
    return code
