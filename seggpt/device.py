"""The one device and dtype resolver: every CLI, the engine and the trainer read `--device`/`--dtype` here."""
from __future__ import annotations

import contextlib
import re
from typing import Optional, Union

import torch

DTYPES = {"fp32": None, "float32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}
DEVICE_HELP = "auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:N or mps"


class DeviceError(ValueError):
    """A device or dtype that cannot be used here (one-line message)."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """auto: CUDA, then Apple's MPS, then the CPU; `cuda:N` must name a GPU that exists."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    text = str(device)
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", text):
        raise DeviceError(f"unknown device {text!r}; use {DEVICE_HELP}")
    dev = torch.device(text)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {text} was asked for, but no CUDA GPU is available (use cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {text}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    if dev.type == "mps" and not _mps_available():
        raise DeviceError("device mps was asked for, but Apple's MPS is not available here (use cpu)")
    return dev


def resolve_dtype(dtype: Optional[Union[str, torch.dtype]], device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype (None: fp32). auto: bf16 on CUDA, fp16 on MPS, fp32 on the CPU."""
    if isinstance(dtype, torch.dtype):
        return None if dtype == torch.float32 else dtype
    if dtype is None or dtype == "auto":
        return {"cuda": torch.bfloat16, "mps": torch.float16}.get(device.type)
    if dtype not in DTYPES:
        raise DeviceError(f"unknown dtype {dtype!r}; use auto, fp32, bf16 or fp16")
    return DTYPES[dtype]


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """Autocast to `dtype` on `device`, or nothing for None (fp32): the one switch for reduced precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


__all__ = ["autocast", "resolve_device", "resolve_dtype", "DeviceError", "DTYPES", "DEVICE_HELP"]
