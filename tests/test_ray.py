"""``--engine ray`` on a real local Ray instance: same files and scores as the local engine, retries, failures."""

from __future__ import annotations

import csv
import json
import shutil
import socket
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")

from vos.data.synthetic import write_ytvos  # noqa: E402


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the module; the harness joins it instead of starting its own."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def pngs(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): np.array(Image.open(p)) for p in sorted(folder.rglob("*.png"))}


def test_unreachable_address_is_one_line_exit_2(davis17, tmp_path, copy_first):
    """Runs before the module's Ray session starts (file order): the harness must try to connect itself."""
    assert not ray.is_initialized()
    with socket.socket() as probe:  # a port nobody listens at
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.perf_counter()
    code, _, err = copy_first("davis2017", davis17, tmp_path / "o", "--engine", "ray", "--address", f"127.0.0.1:{port}")
    assert code == 2 and time.perf_counter() - start < 30
    assert err.startswith("error: --address 127.0.0.1:") and err.count("\n") == 1
    assert not ray.is_initialized()


def test_ray_matches_local_davis2017(ray_session, davis17, tmp_path, copy_first):
    assert copy_first("davis2017", davis17, tmp_path / "local")[0] == 0
    assert copy_first("davis2017", davis17, tmp_path / "ray", "--engine", "ray")[0] == 0
    assert ray.is_initialized()  # the harness joined the session and left it running
    local, remote = pngs(tmp_path / "local"), pngs(tmp_path / "ray")
    assert local.keys() == remote.keys() and len(local) == 18
    assert all(np.array_equal(local[k], remote[k]) for k in local)
    for name in ("global_results-val.csv", "per-sequence_results-val.csv"):
        assert read_csv(tmp_path / "local" / name) == read_csv(tmp_path / "ray" / name)
    report = json.loads((tmp_path / "ray" / "benchmark-val.json").read_text())
    assert report["engine_backend"] == "ray"
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in report["sequences"])
    # resume through Ray: nothing to redo
    assert copy_first("davis2017", davis17, tmp_path / "ray", "--engine", "ray", "--resume")[0] == 0
    report = json.loads((tmp_path / "ray" / "benchmark-val.json").read_text())
    assert {r["status"] for r in report["sequences"]} == {"skipped"}


def test_ray_failed_task_is_retried_once_and_others_go_on(ray_session, davis17, tmp_path, copy_first):
    out = tmp_path / "res"
    out.mkdir()
    (out / "synth-001" / "00003.png").mkdir(parents=True)  # a folder where a PNG goes: fails inside the task
    code, _, err = copy_first("davis2017", davis17, out, "--engine", "ray")
    assert code == 1 and "synth-001: FAILED" in err and "Traceback" not in err
    report = json.loads((out / "benchmark-val.json").read_text())
    by_name = {r["name"]: r for r in report["sequences"]}
    assert by_name["synth-001"]["status"] == "failed" and by_name["synth-001"]["attempts"] == 2
    assert "synth-001" in by_name["synth-001"]["error"] and "\n" not in by_name["synth-001"]["error"]
    assert by_name["synth-000"]["status"] == by_name["synth-002"]["status"] == "done"
    assert report["failed"] == ["synth-001"]


def test_ray_seggpt_tiny_ytvos(ray_session, tiny_weights, tmp_path, bench):
    root = tmp_path / "yt"
    write_ytvos(root, num_videos=2, seed=2, num_frames=6, size=(48, 64), num_objects=(2, 2))
    out = tmp_path / "res"
    code, _, err = bench("--dataset", "ytvos", "--root", str(root), "--out", str(out), "--engine", "ray",
                         "--weights", tiny_weights, "--memory", "1")
    assert code == 0, err
    report = json.loads((out / "benchmark-valid.json").read_text())
    assert report["method"] == "seggpt" and report["engine"]["memory"] == 1
    assert all(r["status"] == "done" and r["frames"] == 6 for r in report["sequences"])
    meta = json.loads((root / "valid" / "meta.json").read_text())["videos"]
    expected = sorted({f"Annotations/{v}/{f}.png" for v, info in meta.items() for o in info["objects"].values()
                       for f in o["frames"]})
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert sorted(archive.namelist()) == expected
    shutil.rmtree(out)
