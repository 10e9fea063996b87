"""Editor pass checks in a browser (`editor`, ``--browser``): headless Chromium against ``python -m vos.app``.

Every button with no video; opening a video and adding objects; forged canvas documents (300,000
points, a radius of 1e9, an unknown tool, a far point, a dict, bogus, null and stale keys) sent with
the "use drawing" button; strokes keyed to frame 0 after the slider moved; propagation, cancel spam,
undo and export; then tiny (8x8) and odd-sized (17x23) videos drawn on, boxed and propagated. Each
answer in the status line is one line (an ``error:`` where the input is refused), and the app's log
holds no traceback. Needs playwright and /usr/bin/chromium.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import List

import numpy as np

from .runner import ROOT, write_ffv1


def browser_checks() -> List[str]:
    """Headless Chromium against `python -m vos.app` (needs playwright and /usr/bin/chromium): the
    failed checks' names (and "app log has Traceback" when the app printed one)."""
    from seggpt.io import write_mp4
    from vos.data.synthetic import make_clip
    root = tempfile.mkdtemp(prefix="adv_browser_")
    fr, _ = make_clip(0, 5, size=(48, 64), num_objects=1)
    write_mp4(os.path.join(root, "clip.mp4"), fr, fps=8)
    for name, (h, w) in {"t8.mkv": (8, 8), "odd.mkv": (17, 23)}.items():
        write_ffv1(os.path.join(root, name), [np.random.randint(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(3)])
    port = 7932
    logf = open(os.path.join(root, "app.log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "vos.app", "--root", root, "--weights", "small",
                             "--device", "cpu", "--port", str(port)], cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
    for _ in range(120):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            time.sleep(0.5)
    from playwright.sync_api import sync_playwright
    results = []
    def status(page):
        return page.locator("#status textarea").input_value()
    def press(page, sel, wait=2.0):
        page.click(sel); time.sleep(wait); return status(page)
    def check(name, s, expect_error=True):
        # expect_error None: a one-line error or a success are both right (content-dependent, e.g. GrabCut)
        ok = ("Traceback" not in s) and ("\n" not in s.strip()) and (
            expect_error is None or (s.startswith("error:") if expect_error else not s.startswith("error:")))
        results.append((name, ok, s[:160])); print("PASS" if ok else "FAIL", name, "|", s[:160].replace("\n", "\\n"), flush=True)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
            page = b.new_page(); page.goto(f"http://127.0.0.1:{port}/"); page.wait_for_selector("#use-drawing", timeout=60000)
            time.sleep(2)
            for sel in ["#use-drawing", "#box-to-mask", "#accept", "#undo", "#forward", "#backward", "#export", "#save-session"]:
                check(f"no video {sel}", press(page, sel, 1.5))
            def openv(n):
                page.click("#pick-video input"); time.sleep(0.5); page.keyboard.press("Control+A"); page.keyboard.type(n); time.sleep(0.5); page.keyboard.press("Enter"); time.sleep(0.5)
                return press(page, "#open", 4)
            check("open clip", openv("clip.mp4"), False)
            page.fill("#object-name input, #object-name textarea", "a"); check("add a", press(page, "#add-object", 2), False)
            page.fill("#object-name input, #object-name textarea", "b"); check("add b", press(page, "#add-object", 2), False)
            time.sleep(1)
            key = page.evaluate("() => window.vosCanvas.key()")
            print("key", key)
            def forge(strokes_js, k="key"):
                page.evaluate("([k, v]) => { window.__o = window.__o || window.vosCanvas.strokes; window.vosCanvas.strokes = () => JSON.stringify({key: k, strokes: v}); }", [key if k == "key" else k, None])
                page.evaluate(f"() => {{ const k = JSON.parse(window.vosCanvas.strokes()).key; const v = {strokes_js}; window.vosCanvas.strokes = () => JSON.stringify({{key: k, strokes: v}}); }}")
                return press(page, "#use-drawing", 3)
            check("forged 300k points", forge("[{tool:'brush',radius:3,points:Array(300000).fill([1,1])}]"))
            check("forged radius 1e9", forge("[{tool:'brush',radius:1e9,points:[[1,1]]}]"))
            check("forged tool", forge("[{tool:'fill',radius:3,points:[[1,1]]}]"))
            check("forged far point", forge("[{tool:'brush',radius:3,points:[[1e7,1]]}]"))
            check("forged strokes dict", forge("{a:1}"))
            check("forged bogus key", forge("[{tool:'brush',radius:3,points:[[5,5]]}]", k="bogus-key"))
            check("forged null key", forge("[{tool:'brush',radius:3,points:[[5,5]]}]", k=None))
            check("forged valid", forge("[{tool:'brush',radius:6,points:[[20,20],[30,25]]}]"), False)
            page.evaluate("() => { window.vosCanvas.strokes = window.__o; }")
            # stale key: the key from before the valid commit
            check("stale key after commit", forge("[{tool:'brush',radius:3,points:[[5,5]]}]", k=key))
            # move slider to frame 2, then send strokes with frame-0 key
            k0 = page.evaluate("() => window.vosCanvas.key()")
            num = page.locator("#frame input[type=number]")
            num.fill("2"); num.press("Enter"); time.sleep(2)
            k2 = page.evaluate("() => window.vosCanvas.key()")
            print("k0", k0, "k2", k2)
            check("strokes with frame-0 key after slider moved (land on frame 0, by design)", forge("[{tool:'brush',radius:3,points:[[5,5]]}]", k=k0), False)
            check("propagate", press(page, "#forward", 8), False)
            for i in range(8): page.click("#cancel")
            check("after cancel spam: undo", press(page, "#undo", 2), False)
            check("export", press(page, "#export", 8), False)
            # tiny/odd videos
            for n in ["t8.mkv", "odd.mkv"]:
                check(f"open {n}", openv(n), False)
                page.fill("#object-name input, #object-name textarea", "a"); press(page, "#add-object", 2)
                page.evaluate("() => { if (window.__o) window.vosCanvas.strokes = window.__o; }")
                key = page.evaluate("() => window.vosCanvas.key()")  # this video's canvas, not the first one's
                check(f"{n} forged valid draw", forge("[{tool:'brush',radius:2,points:[[4,4]]}]"), False)
                check(f"{n} box", (page.evaluate("() => { const k = window.vosCanvas.key(); window.__b = window.__b || window.vosCanvas.box; window.vosCanvas.box = () => JSON.stringify({key: k, box: [0,0,8,8]}); }"), press(page, "#box-to-mask", 3))[1], None)
                check(f"{n} propagate", press(page, "#forward", 10), False)
                page.evaluate("() => { if (window.__b) window.vosCanvas.box = window.__b; }")
            b.close()
    finally:
        proc.terminate(); proc.wait(10); logf.close()
    log = open(os.path.join(root, "app.log")).read()
    tb = log.count("Traceback")
    print("app log Tracebacks:", tb)
    if tb:
        i = log.index("Traceback"); print(log[i:i + 1500])
    print(sum(ok for _, ok, _ in results), "/", len(results), "browser checks passed")
    return [n for n, ok, _ in results if not ok] + (["app log has Traceback"] if tb else [])
