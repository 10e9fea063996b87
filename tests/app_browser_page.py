"""The page and the server of the app's browser test (`test_app_browser.py`): `python -m vos.app` on a free port,
headless Chromium on it (Debian's package, driven by Playwright), the page as the checks use it (`App`), and
the geometry a stroke's check needs."""
import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.adversarial.editor_drawing import distance_to_path
from benchmarks.adversarial.runner import write_ffv1
from seggpt.io import write_mp4

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium():
    names = (os.environ.get("VOS_CHROMIUM"), "chromium", "chromium-browser")
    return next((shutil.which(name) for name in names if name and shutil.which(name)), None)


def _need(what, ok):
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the browser test needs {what} (CI is set: it must not skip; .ci/run installs it)")
    pytest.skip(f"{what} is not installed")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_video(path, frames):
    """An mp4 (H.264 pads odd sizes to even), or for an odd size a lossless FFV1 .mkv that keeps it."""
    if path.suffix == ".mp4":
        write_mp4(path, frames, fps=8)
    else:
        write_ffv1(str(path), frames, pix_fmt="yuv444p")


def need_browser():
    for module in ("gradio", "playwright"):
        _need(f"the python package {module} (pip install -e '.[test]')", importlib.util.find_spec(module))
    _need("Chromium (apt-get install chromium)", _chromium())


@contextlib.contextmanager
def serve(weights, root, tmp_path):
    """`python -m vos.app` on a free port until the block ends; its log must hold no traceback."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               GRADIO_TEMP_DIR=str(tmp_path / "gradio"), OMP_NUM_THREADS="1")
    log_path = tmp_path / "app.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "vos.app", "--root", str(root), "--weights", weights,
                             "--device", "cpu", "--port", str(port), "--set", "engine.memory=1"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(tmp_path))
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    log.flush()
                    pytest.fail(f"the app did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    text = log_path.read_text()
    assert "Traceback" not in text, f"the app's log holds a traceback:\n{text[-3000:]}"


@contextlib.contextmanager
def open_browser(tmp_path, url):
    """Chromium on `url`: (page, requests that left 127.0.0.1, errors the page raised)."""
    from playwright.sync_api import sync_playwright

    outside, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=_chromium(), args=CHROMIUM_FLAGS, headless=True,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.on("request", lambda r: outside.append(r.url)
                    if not r.url.startswith((url.rstrip("/"), "data:", "blob:")) else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, wait_until="networkidle")
            yield page, outside, errors
        finally:
            browser.close()


# ---------------------------------------------------------------------- geometry the checks use


def check_stroke(before, after, stroke, brush):
    """A stroke changed what lies within its radius (brush: set; eraser: cleared) and nothing farther away."""
    d = distance_to_path(before.shape, stroke["points"])
    r = stroke["radius"]
    core, far = d <= r - 1.5, d >= r + 1.5
    assert core.any(), "the stroke covers no pixel of the frame"
    assert (after[core] == brush).all(), f"{int((after[core] != brush).sum())} pixels under the stroke unchanged"
    assert np.array_equal(after[far], before[far]), \
        f"{int((after[far] != before[far]).sum())} pixels away from the stroke changed"


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


# ---------------------------------------------------------------------- the page


class App:
    """The page, as the checks use it; every wait named, every timing kept."""

    def __init__(self, page, root, shots):
        self.page, self.root, self.shots = page, root, shots
        self.timings = {}
        self.saves = 0

    def time(self, what, seconds):
        self.timings.setdefault(what, []).append(round(seconds, 3))

    def watch_status(self):
        """Keep every value the status line takes (one action's status can follow another's within a poll)."""
        self.seen = 0
        self.page.evaluate("""() => { window.vosStatuses = []; let last = null;
            setInterval(() => { const t = document.querySelector('#status textarea');
                if (t && t.value !== last) { last = t.value; window.vosStatuses.push(last); } }, 5); }""")

    def watch_views(self):
        """Keep every (status, slider, frame info) the page shows, as they change together or not."""
        self.page.evaluate("""() => { window.vosViews = []; let last = null;
            setInterval(() => { const s = document.querySelector('#status textarea'),
                    f = document.querySelector('#frame input[type=number]'), i = document.querySelector('#frame-info');
                if (!s || !f || !i) return;
                const now = JSON.stringify([s.value, f.value, i.innerText]);
                if (now !== last) { last = now; window.vosViews.push([s.value, f.value, i.innerText]); } }, 5); }""")

    def status(self, prefix, contains="", timeout=180000):
        """The next status, in order, that starts with `prefix` and holds `contains`."""
        found = self.page.wait_for_function(
            "([p, c, from]) => { const all = window.vosStatuses;"
            " for (let i = from; i < all.length; i++) if (all[i].startsWith(p) && all[i].includes(c)) return [i, all[i]];"
            " return false; }", arg=[prefix, contains, self.seen], timeout=timeout).json_value()
        self.seen = found[0] + 1
        return found[1]

    def serial(self):
        return self.page.evaluate("() => document.querySelector('.vos-canvas').dataset.serial || ''")

    def canvas_after(self, old, timeout=60000):
        """Wait for the canvas to show a view newer than `old` with a frame in it; returns its key."""
        self.page.wait_for_function(
            "old => { const s = document.querySelector('.vos-canvas').dataset.serial;"
            " return s && s !== old && window.vosCanvas && window.vosCanvas.key(); }", arg=old, timeout=timeout)
        return self.page.evaluate("() => window.vosCanvas.key()")

    @contextlib.contextmanager
    def new_view(self, what=None):
        """The block's action ends once the canvas shows a newer view (its key then in `self.key`); the time it
        took is kept as `what`."""
        old, t0 = self.serial(), time.perf_counter()
        yield
        self.key = self.canvas_after(old)
        if what:
            self.time(what, time.perf_counter() - t0)

    def shot(self, name):
        if self.shots:
            self.page.wait_for_timeout(300)
            self.page.screenshot(path=str(Path(self.shots) / name), full_page=True)

    def upload(self, component, path):
        clear = self.page.locator(f"{component} button[aria-label='Clear']")
        if clear.count():  # the last file is still shown: the drop zone comes back once it is cleared
            clear.first.click()
        self.page.locator(f"{component} input[type=file]").set_input_files(str(path))

    def open(self, clip, expect):
        with self.new_view("open"):
            self.upload("#upload-video", clip)
            assert expect in self.status("opened", contains=clip.name)

    def add_object(self, name):
        self.page.fill("#object-name textarea, #object-name input", name)
        with self.new_view("add object"):
            self.page.click("#add-object")
            self.status("added object", contains=name)

    def upload_mask(self, path, frame_idx):
        self.upload("#upload-mask", path)
        self.page.wait_for_timeout(1000)  # the file reaches the server before the button reads it
        with self.new_view():
            self.page.click("#use-mask")
            self.status(f"mask PNG on frame {frame_idx}: object(s)")

    def start(self, clip, expect, name, mask):
        """Open `clip` (its status holds `expect`), add the object `name`, give it `mask` on frame 0."""
        self.open(clip, expect)
        self.add_object(name)
        self.upload_mask(mask, 0)

    def goto(self, frame_idx):
        old, t0 = self.serial(), time.perf_counter()
        number = self.page.locator("#frame input[type=number]")
        number.fill(str(frame_idx))
        number.press("Enter")
        key = self.canvas_after(old)
        while not key.startswith(f"{frame_idx}:"):  # a view of the old frame can come first
            key = self.canvas_after(self.serial())
        self.time("slider jump", time.perf_counter() - t0)
        self.page.wait_for_function("f => document.querySelector('#frame-info').innerText.includes(`frame ${f} of`)",
                                    arg=frame_idx)

    def stroke(self, tool, points, size=None):
        """Drag with `tool` through frame-pixel `points`; returns the stroke as the canvas recorded it."""
        self.page.evaluate("t => window.vosCanvas.tool(t)", tool)
        if size is not None:
            self.page.evaluate("v => { const s = document.querySelector('.vos-size'); s.value = v; }", size)
        view = self.page.locator(".vos-view")
        view.scroll_into_view_if_needed()  # the mouse reaches what the viewport shows only
        box = view.bounding_box()
        w, h = self.page.evaluate("() => { const c = document.querySelector('.vos-view'); return [c.width, c.height]; }")

        def at(p):
            return box["x"] + p[0] * box["width"] / w, box["y"] + p[1] * box["height"] / h

        self.page.mouse.move(*at(points[0]))
        self.page.mouse.down()
        for p in points[1:]:
            self.page.mouse.move(*at(p), steps=4)
        self.page.mouse.up()
        if tool == "box":
            return json.loads(self.page.evaluate("() => window.vosCanvas.box()"))["box"]
        recorded = json.loads(self.page.evaluate("() => window.vosCanvas.strokes()"))["strokes"][-1]
        for (x, y), (rx, ry) in zip((points[0], points[-1]), (recorded["points"][0], recorded["points"][-1])):
            assert abs(x - rx) <= 1.0 and abs(y - ry) <= 1.0, "the canvas put the pointer somewhere else"
        return recorded

    def draw(self, tool, points, name, frame_idx, size=None):
        """A `tool` stroke through `points` used as the mask of object 1 (`name`) on `frame_idx`: returns the
        stroke as the canvas recorded it and the masks and origins the app holds then (`saved`)."""
        stroke = self.stroke(tool, points, size)
        self.commit("#use-drawing", f"mask of 1: {name} on frame {frame_idx}", "use drawing")
        return (stroke, *self.saved())

    def commit(self, selector, status_prefix, what):
        with self.new_view(what):
            self.page.click(selector)
        return self.status(status_prefix), self.key

    def saved(self):
        """The masks the app holds now, read back from a saved session: {(frame, object): bool mask}."""
        self.saves += 1
        name = f"check {self.saves}"
        self.page.fill("#session-name textarea, #session-name input", name)
        self.page.click("#save-session")
        self.status("saved session", contains=f"check_{self.saves}.vos-session.zip")
        masks = {}
        with zipfile.ZipFile(self.root / "sessions" / f"check_{self.saves}.vos-session.zip") as z:
            doc = json.loads(z.read("session.json"))
            for note in doc["annotations"]:
                with z.open(note["mask"]) as f:
                    masks[(note["frame"], note["object"])] = np.array(Image.open(f)) > 127
        return masks, {(n["frame"], n["object"]): n["origin"] for n in doc["annotations"]}

    def wait_on_frame(self, frame_idx, timeout=30000):
        """Wait until the slider and the frame info both show `frame_idx`."""
        self.page.wait_for_function("f => document.querySelector('#frame input[type=number]').value === String(f)"
                                    " && document.querySelector('#frame-info').innerText.startsWith(`frame ${f} of`)",
                                    arg=frame_idx, timeout=timeout)


def screenshots():
    """The folder VOS_APP_SCREENSHOTS names, made (None where it is not set)."""
    shots = os.environ.get("VOS_APP_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
    return shots

