"""The installed wheel works outside the checkout: packaged weights and configs, `--help`, and the README's
main job with the same PNGs as from the checkout (an installed user must not silently get other settings)."""
import hashlib
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAIN_JOB = [["-m", "vos.demo", "example"],
            ["-m", "vos.run", "example/clip.mp4", "--first-mask", "example/clip_mask.png", "--weights", "small",
             "--overlay", "example/overlay.mp4", "--out", "example/masks", "--quiet"]]


def _run(python, args, cwd, env=None):
    done = subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).glob("*.png"))}


@pytest.fixture(scope="module")
def installed_python(tmp_path_factory):
    """A fresh venv with the project's wheel installed --no-deps; torch & co. come from this environment."""
    tmp = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
                          str(ROOT)], cwd=tmp)
    wheel = next((tmp / "dist").glob("seggpt_vos-*.whl"))
    venv = tmp / "venv"
    _run(sys.executable, ["-m", "venv", "--system-site-packages", str(venv)], cwd=tmp)
    python = venv / "bin" / "python"
    # this environment's packages (torch is not installed again); a plain path, so its editable
    # install of the checkout is not activated there
    target = Path(_run(python, ["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip())
    (target / "outer_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(python, ["-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], cwd=tmp)
    return python


def test_the_wheel_runs_the_readme_main_job_like_the_checkout(installed_python, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = _run(installed_python, ["-c", "import seggpt, vos; print(seggpt.__file__, vos.__file__)"], tmp_path, env)
    assert str(ROOT) not in where and "site-packages" in where  # the installed copy, not the checkout
    assert "--config" in _run(installed_python, ["-m", "vos.run", "--help"], tmp_path, env)
    packaged = _run(installed_python, ["-c", "from seggpt.settings import config_path; "
                                             "print(config_path('benchmark_davis'))"], tmp_path, env)
    assert "site-packages" in packaged
    (tmp_path / "installed").mkdir()
    (tmp_path / "checkout").mkdir()
    for args in MAIN_JOB:
        _run(installed_python, args, tmp_path / "installed", env)
        _run(sys.executable, args, tmp_path / "checkout", env)
    installed = _digests(tmp_path / "installed" / "example" / "masks")
    assert len(installed) == 48
    assert installed == _digests(tmp_path / "checkout" / "example" / "masks")


#: setup.cfg's console scripts and the words their --help starts with (each CLI's own parser)
CONSOLE_SCRIPTS = {"seggpt-run": "python -m seggpt.run", "seggpt-tune": "python -m seggpt.tune",
                   "seggpt-train": "python -m training", "vos-run": "python -m vos.run",
                   "vos-app": "python -m vos.app", "vos-demo": "python -m vos.demo"}


def test_console_scripts_are_installed_and_answer_help(installed_python, tmp_path):
    """Each console script of the wheel is in the venv's bin/, runs `--help` (exit 0) and prints
    its CLI's usage; setup.cfg lists exactly these (a new CLI gets a script and a line here)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = [line.split("=")[0].strip() for line in cfg["options.entry_points"]["console_scripts"].splitlines()
              if line.strip()]
    assert sorted(listed) == sorted(CONSOLE_SCRIPTS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    bin_dir = installed_python.parent
    for script, prog in CONSOLE_SCRIPTS.items():
        if script == "vos-app" and sys.version_info < (3, 10):
            continue  # the app needs Gradio, Python >= 3.10
        path = bin_dir / script
        assert path.is_file(), f"{script} is not installed in {bin_dir}"
        done = subprocess.run([str(path), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{script} --help: {done.stderr[-2000:]}"
        assert done.stdout.startswith(f"usage: {prog}"), f"{script} --help: {done.stdout[:300]}"
