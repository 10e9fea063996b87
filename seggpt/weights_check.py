"""Deprecated: the checks of a weights file are part of the one loader now; this module goes in the next release.

``SegGPT.from_pretrained`` (`seggpt.weights.load_model`) runs every check this module's `load_checked`
ran; the torch-free checks are in `seggpt.weights_file`, and `WeightsFileError` is `WeightsError`.
"""
from __future__ import annotations

import warnings
from typing import Optional, Union

import torch

from .errors import WeightsError
from .model import SegGPT
from .weights import load_model
from .weights_file import (check_against_header, check_weights_file, code_globals, expected_shapes,
                           packaged_weights, pickle_globals, read_safetensors_header, refusal_message, weights_input)

warnings.warn("seggpt.weights_check is deprecated: load weights with SegGPT.from_pretrained (it checks every file); "
              "the checks are in seggpt.weights_file, WeightsFileError is seggpt.errors.WeightsError",
              DeprecationWarning, stacklevel=2)

WeightsFileError = WeightsError


def load_checked(name_or_path: str, device: Optional[Union[str, torch.device]] = None) -> SegGPT:
    """Deprecated name of ``SegGPT.from_pretrained``."""
    return load_model(name_or_path, device=device)


__all__ = ["WeightsFileError", "load_checked", "check_against_header", "check_weights_file", "code_globals",
           "expected_shapes", "packaged_weights", "pickle_globals", "read_safetensors_header", "refusal_message",
           "weights_input"]
