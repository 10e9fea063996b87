"""`python -m vos.app` in a real browser: headless Chromium (Debian's package, driven by Playwright) opens the
app, uploads a clip and a mask, propagates, draws a correction, exports, and the exported files are checked.

Screenshots (not committed): set VOS_APP_SCREENSHOTS=DIR to keep 1-drawn-mask.png, 2-mid-propagation.png and
3-exported-overlay.png there. Where the environment variable CI is set this test never skips: a missing
browser or package fails it.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vos.exports import read_matte, rle_decode
from vos.synthetic import make_clip
from seggpt.io import save_index_png, write_mp4
from seggpt.outputs import written_by_us

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FRAMES = 24


def _chromium():
    for name in (os.environ.get("VOS_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


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


@pytest.fixture
def app_server(tiny_weights, tmp_path):
    for module in ("gradio", "playwright"):
        try:
            __import__(module)
        except ImportError:
            _need(f"the python package {module} (pip install -e '.[test]')", False)
    _need("Chromium (apt-get install chromium)", _chromium())
    root = tmp_path / "root"
    root.mkdir()
    frames, labels = make_clip(31, FRAMES, size=(96, 128), num_objects=1)
    write_mp4(tmp_path / "clip.mp4", frames, fps=8)
    save_index_png(tmp_path / "mask0.png", labels[0])
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               GRADIO_TEMP_DIR=str(tmp_path / "gradio"), OMP_NUM_THREADS="1")
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "vos.app", "--root", str(root), "--weights", tiny_weights,
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
                    pytest.fail(f"the app did not start:\n{(tmp_path / 'app.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, root, tmp_path, labels
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_app_in_a_real_browser(app_server):
    from playwright.sync_api import sync_playwright

    url, root, tmp, labels = app_server
    shots = os.environ.get("VOS_APP_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
    outside = []  # every request that leaves 127.0.0.1: the app must work offline

    def shot(page, name):
        page.wait_for_function("() => !document.body.innerText.includes('processing |')", timeout=60000)
        page.wait_for_timeout(300)
        if shots:
            page.screenshot(path=str(Path(shots) / name), full_page=True)

    def wait_status(page, prefix, timeout=180000, contains=""):
        """The status once it starts with `prefix` (and holds `contains`), read in the same poll."""
        return page.wait_for_function(
            "([p, c]) => { const v = document.querySelector('#status textarea').value;"
            " return v.startsWith(p) && v.includes(c) ? v : false; }",
            arg=[prefix, contains], timeout=timeout).json_value()

    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp / "profile"), executable_path=_chromium(), args=CHROMIUM_FLAGS, headless=True,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.on("request", lambda r: outside.append(r.url)
                    if not r.url.startswith((url.rstrip("/"), "data:", "blob:")) else None)
            page.goto(url, wait_until="networkidle")

            # open: upload the clip
            page.locator("#upload-video input[type=file]").set_input_files(str(tmp / "clip.mp4"))
            assert f"{FRAMES} frames, 128x96" in wait_status(page, "opened")
            page.fill("#object-name textarea, #object-name input", "runner")
            page.click("#add-object")
            wait_status(page, "added object 1: runner")
            # a mask PNG for it on frame 0
            page.locator("#upload-mask input[type=file]").set_input_files(str(tmp / "mask0.png"))
            page.wait_for_timeout(1500)
            page.click("#use-mask")
            wait_status(page, "mask PNG on frame 0: object(s) [1]")

            # propagate forward: a live progress line, then cancel
            page.click("#forward")
            text = wait_status(page, "propagating forward")
            assert re.search(r"\d+/%d frames" % FRAMES, text)
            shot(page, "2-mid-propagation.png")
            page.click("#cancel")
            text = wait_status(page, "propagation forward", contains="run 1)")
            done = int(re.search(r"(\d+)/%d frames" % FRAMES, text).group(1))
            assert ("cancelled" in text and done < FRAMES) or ("done" in text and done == FRAMES)
            page.click("#forward")  # again, to the end
            assert f"{FRAMES}/{FRAMES} frames" in wait_status(page, "propagation forward done", contains="run 2)")

            # a correction drawn on frame 4
            number = page.locator("#frame input[type=number]")
            number.fill("4")
            number.press("Enter")
            page.wait_for_function("() => document.querySelector('#frame-info').innerText.includes('frame 4 of')")
            drawn = 0
            for attempt in range(3):  # the canvas loads the frame after the slider moves: on a busy CPU, late
                page.wait_for_function("() => !document.body.innerText.includes('processing |')", timeout=60000)
                page.wait_for_timeout(1500 * (attempt + 1))
                box = page.locator("#draw canvas").first.bounding_box()
                x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
                page.mouse.move(x, y)
                page.mouse.down()
                for i in range(12):
                    page.mouse.move(x + 6 * i, y + 3 * i)
                page.mouse.up()
                page.wait_for_timeout(500)
                page.click("#use-drawing")
                page.wait_for_timeout(300)
                page.wait_for_function("() => !document.body.innerText.includes('processing |')", timeout=60000)
                text = wait_status(page, "mask of 1: runner")
                drawn = int(re.search(r"on frame 4: (\d+) pixels", text).group(1))
                if drawn:
                    break
            assert drawn > 50
            shot(page, "1-drawn-mask.png")
            page.click("#forward")
            assert f"{FRAMES - 4}/{FRAMES - 4} frames" in wait_status(page, "propagation forward done",
                                                                      contains="run 3)")

            # export, and the overlay read back from the zip at this frame
            page.click("#export")
            assert "exported" in wait_status(page, "exported")
            page.wait_for_selector("#exported-view img", timeout=60000)
            shot(page, "3-exported-overlay.png")
            page.fill("#session-name textarea, #session-name input", "browser test")
            page.click("#save-session")
            wait_status(page, "saved session")
        finally:
            browser.close()

    assert outside == [], f"requests left the machine: {outside[:5]}"
    assert (root / "sessions" / "browser_test.vos-session.zip").is_file()
    zips = list((root / "exports").glob("*.zip"))
    # one zip and the folder's manifest (what the output guard needs to know the zip is ours); no
    # temporary file left behind
    hidden = sorted(p.name for p in (root / "exports").iterdir() if p.name.startswith("."))
    assert len(zips) == 1 and hidden == [".seggpt-vos-manifest.json"], hidden
    assert written_by_us(root / "exports", zips[0].name)
    out = tmp / "exported"
    with zipfile.ZipFile(zips[0]) as z:
        z.extractall(out)
    index = [np.array(Image.open(out / "masks" / f"{t:05d}.png")) for t in range(FRAMES)]
    assert np.array_equal(index[0] == 1, labels[0] == 1)  # the uploaded mask, exactly
    assert int((index[4] == 1).sum()) == drawn  # the drawn correction is frame 4's mask
    for t in (0, 4, FRAMES - 1):
        obj = np.array(Image.open(out / "objects" / "001" / f"{t:05d}.png"))
        assert set(np.unique(obj)) <= {0, 255} and np.array_equal(obj == 255, index[t] == 1)
        rgba = np.array(Image.open(out / "alpha" / f"{t:05d}.png"))  # one object: no sub-folder
        assert rgba.shape == (96, 128, 4) and np.array_equal(rgba[..., 3] == 255, index[t] == 1)
    doc = json.loads((out / "rle.json").read_text())
    assert doc["objects"][0]["name"] == "runner" and len(doc["frames"]) == FRAMES
    for fr in doc["frames"]:
        for o in fr["objects"]:
            assert np.array_equal(rle_decode(o["segmentation"]), index[fr["frame_idx"]] == o["id"])
    matte = read_matte(out / "matte.mkv")
    assert matte.shape == (FRAMES, 96, 128) and np.array_equal(matte[4] == 255, index[4] == 1)
    with av.open(str(out / "overlay.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == FRAMES
