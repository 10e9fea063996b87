"""SegGPT: in-context segmentation (Wang et al., ICCV 2023), faithful and fast."""
from .config import PRESETS, SegGPTConfig, get_config
from .model import SegGPT

__all__ = ["SegGPT", "SegGPTConfig", "PRESETS", "get_config"]
