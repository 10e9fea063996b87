"""The project's public names, listed once: what README documents and what users import.

A name moved or removed by accident fails here. A module moved on purpose keeps its old name for one
release: importing it gives the same module object with a DeprecationWarning (vos.MOVED lists them).
Every `python -m` that README shows and every console script of setup.cfg resolves to a module that
runs.
"""
from __future__ import annotations

import configparser
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: module -> the names it offers its users
PUBLIC = {
    "seggpt": ["SegGPT", "SegGPTPredictor", "SegGPTConfig", "PRESETS", "get_config"],
    "seggpt.errors": ["InputError", "ConfigError", "WeightsError", "VideoError", "EngineError", "OutputError",
                      "Terminated", "Cancelled", "is_integer"],
    "seggpt.tune": ["TunedPrompt", "tune_prompt", "predict_tuned", "weights_sha256", "main"],
    "vos": ["VideoSegmenter", "EngineConfig", "FrameResult", "InferenceState", "EngineError", "LiveStream"],
    "vos.sam2": ["build_sam2_video_predictor", "SegGPTVideoPredictor"],
    "vos.synthetic": ["make_clip", "iter_clip", "make_pair", "make_scene", "Scene", "write_davis2017", "write_ytvos"],
    "vos.demo": ["main", "write_example"],
    "vos.io.exports": ["Exporter", "ExportSpec", "soft_alpha", "save_rgba_png", "save_object_png",
                       "MatteVideoWriter", "rle_encode"],
    "vos.editing.editor": ["Editor"],
    "vos.data.metrics": ["db_eval_iou", "db_eval_boundary", "db_statistics", "evaluate_sequence", "summarize",
                         "EvalJob", "evaluate_many", "write_official_csvs"],
    "vos.data.datasets": ["DAVIS", "YouTubeVOS", "FolderDataset", "Sequence", "list_frames"],
}
#: the modules `python -m` runs (README's commands), each with a main
ENTRY_POINTS = ("vos.run", "vos.app", "vos.demo", "seggpt.run", "seggpt.tune", "training")
#: setup.cfg: the console scripts and the packages
SETUP = configparser.ConfigParser()
SETUP.read(ROOT / "setup.cfg")


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_import(module):
    loaded = importlib.import_module(module)
    missing = [name for name in PUBLIC[module] if not hasattr(loaded, name)]
    assert not missing, f"{module} lost {missing}"
    if module in ("seggpt", "vos"):
        assert sorted(loaded.__all__) == sorted(PUBLIC[module])


def test_every_python_m_in_readme_is_an_entry_point():
    shown = set(re.findall(r"python -m ([a-z_][\w.]*)", (ROOT / "README.md").read_text()))
    shown = {name for name in shown if name.split(".")[0] in ("vos", "seggpt", "training")}
    assert shown == set(ENTRY_POINTS), f"README runs {sorted(shown)}; this file lists {ENTRY_POINTS}"
    for name in ENTRY_POINTS:
        spec = importlib.util.find_spec(name)
        assert spec is not None, name
        if spec.submodule_search_locations:  # a package runs its __main__
            assert importlib.util.find_spec(f"{name}.__main__") is not None, name
        else:
            assert "def main(" in Path(spec.origin).read_text(), name


def test_console_scripts_resolve():
    entries = [line.split("=") for line in SETUP["options.entry_points"]["console_scripts"].strip().splitlines()]
    assert {name.strip() for name, _ in entries} == {"seggpt-run", "seggpt-tune", "seggpt-train", "vos-run", "vos-app",
                                                     "vos-demo"}
    for _, target in entries:
        module, function = target.strip().split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


def test_every_package_folder_is_packaged():
    packaged = set(SETUP["options"]["packages"].split())
    folders = {".".join(path.parent.relative_to(ROOT).parts) for top in ("seggpt", "vos", "training", "benchmarks")
               for path in (ROOT / top).rglob("__init__.py")}
    assert folders <= packaged, f"not in setup.cfg's packages: {sorted(folders - packaged)}"


def test_moved_modules_keep_their_old_names_for_one_release():
    import vos

    assert vos.MOVED and all(new.startswith("vos.") for new in vos.MOVED.values())
    code = (
        "import importlib, warnings, vos\n"
        "for old, new in sorted(vos.MOVED.items()):\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        module = importlib.import_module(old)\n"
        "    assert module is importlib.import_module(new), old\n"
        "    warned = any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)\n"
        "    assert warned == (old not in vos.KEPT_NAMES), old\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from vos.engine import VideoSegmenter\n"
        "from vos import VideoSegmenter as current\n"
        "assert VideoSegmenter is current and caught and issubclass(caught[0].category, DeprecationWarning)\n"
        "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
