from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="module")
def tiny_model():
    """A random-weight test-tiny SegGPT in eval mode (seed 0), one per test module: tests that change a
    model's weights never reach another module's."""
    from seggpt import SegGPT

    torch.manual_seed(0)
    return SegGPT("test-tiny").eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> str:
    """A random-weight test-tiny SegGPT saved in our format: what CLI tests pass to --weights."""
    from seggpt import SegGPT

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    SegGPT("test-tiny").save_pretrained(str(path))
    return str(path)
