from pathlib import Path

import pytest
import torch

from helpers import DATA, require
from seggpt import SegGPT
from vos.data.synthetic import write_davis2017

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture
def shared_data() -> Path:
    return require(DATA)


@pytest.fixture(scope="module")
def tiny_model():
    """A random-weight test-tiny SegGPT in eval mode (seed 0), one per test module: tests that change a
    model's weights never reach another module's."""
    torch.manual_seed(0)
    return SegGPT("test-tiny").eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> str:
    """A random-weight test-tiny SegGPT saved in our format: what CLI tests pass to --weights."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    SegGPT("test-tiny").save_pretrained(str(path))
    return str(path)


@pytest.fixture(scope="session")
def davis(tmp_path_factory) -> Path:
    """A small synthetic DAVIS 2017 (2 sequences of 4 frames, 32x48): tests copy it before they change it."""
    root = tmp_path_factory.mktemp("davis")
    write_davis2017(root, num_sequences=2, seed=5, num_frames=4, size=(32, 48), num_objects=(1, 2))
    return root


@pytest.fixture(scope="session")
def davis17(tmp_path_factory) -> Path:
    """A synthetic DAVIS 2017 of 3 sequences of 6 frames (48x64), 2 or 3 objects each."""
    root = tmp_path_factory.mktemp("d17")
    write_davis2017(root, num_sequences=3, seed=3, num_frames=6, size=(48, 64), num_objects=(2, 3))
    return root


@pytest.fixture
def refused(capsys):
    """refused(call, *args, last=False): `call(*args)` (a CLI's main) must return exit code 2 and write one line
    to stderr, "error: ...", which is returned. With last=True, lines before it (warnings) are allowed."""

    def check(call, *args, last=False) -> str:
        assert call(*args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert (len(err) >= 1 if last else len(err) == 1) and err[-1].startswith("error: "), err
        return err[-1]

    return check


@pytest.fixture
def bench(capsys):
    """bench(*argv): `benchmarks.vos` in process with --quiet; returns (exit code, stdout, stderr)."""
    from benchmarks import vos

    def run(*argv):
        code = vos.main([*argv, "--quiet"])
        return (code, *capsys.readouterr())

    return run


@pytest.fixture
def copy_first(bench):
    """copy_first(dataset, root, out, *extra): `bench` with the copy-first method on `dataset` at `root`."""
    return lambda dataset, root, out, *extra: bench("--dataset", dataset, "--root", str(root), "--out", str(out),
                                                    "--method", "copy-first", *extra)
