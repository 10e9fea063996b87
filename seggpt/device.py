"""The one device and dtype resolver: every CLI, the engine and the trainer read `--device`/`--dtype` here."""
from __future__ import annotations

import contextlib
import functools
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import torch

from .errors import InputError, is_integer

DTYPES = {"fp32": None, "float32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}
DEVICE_HELP = "auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:N or mps"
#: the CLIs' --dtype: its choices and what auto picks (`resolve_dtype`)
DTYPE_CHOICES = ("auto", "fp32", "bf16", "fp16")
DTYPE_HELP = ("the model's precision; auto: bf16 on CUDA, fp16 on MPS; on a CPU bf16 where it computes bf16 natively "
              "(AMX, AVX-512 BF16) and the model is wide enough to gain (ViT-L, not the small model), else fp32")


#: the name of this module's errors (a device or dtype that cannot be used here): an alias of InputError
DeviceError = InputError


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """auto: CUDA, then Apple's MPS, then the CPU; `cuda:N` must name a GPU that exists."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu")
    text = str(device)
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", text):
        raise InputError(f"unknown device {text!r}; use {DEVICE_HELP}")
    dev = torch.device(text)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {text} was asked for, but no CUDA GPU is available (use cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {text}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    if dev.type == "mps" and not _mps_available():
        raise InputError("device mps was asked for, but Apple's MPS is not available here (use cpu)")
    return dev


#: ISA features that decide CPU matmul speed, as /proc/cpuinfo names them (x86) and what they give
CPU_FEATURES = ("amx_bf16", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")
#: --dtype auto picks bf16 on a CPU with native bf16 only for models at least this wide: measured on a
#: 2-core AMD EPYC (AVX-512 BF16), one query, bf16 / fp32 time: the 128-wide `small` model 0.89 (K=1) and
#: 1.02 (K=9), no gain; the 256-wide `medium` 0.52 and 0.90; ViT-L (1024) 0.62 and 0.56 (benchmarks/RESULTS.md)
BF16_MIN_WIDTH = 256


@dataclass(frozen=True)
class CpuInfo:
    """What the CPU is and which of `CPU_FEATURES` it has (empty where the OS does not say)."""

    model: str
    machine: str
    features: Tuple[str, ...]

    @property
    def native_bf16(self) -> bool:
        """bf16 matmuls in hardware: Intel AMX or AVX-512 BF16 (x86). Elsewhere (ARM included, not measured
        here) bf16 is left to the user's choice."""
        return "amx_bf16" in self.features or "avx512_bf16" in self.features


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """The CPU's model name and ISA features, from /proc/cpuinfo on Linux (platform's names elsewhere)."""
    model, flags = "", set()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return CpuInfo(model or platform.processor() or "unknown CPU", platform.machine(),
                   tuple(f for f in CPU_FEATURES if f in flags))


def resolve_dtype(dtype: Optional[Union[str, torch.dtype]], device: torch.device,
                  width: Optional[int] = None) -> Optional[torch.dtype]:
    """The model call's dtype (None: fp32). auto: bf16 on CUDA, fp16 on MPS; on a CPU bf16 where it
    computes bf16 natively and the model is at least `BF16_MIN_WIDTH` wide (`width`: its embed_dim), else
    fp32. `dtype_reason` says why in words."""
    device = torch.device(device)
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise InputError(f"dtype {dtype} cannot run the model; use torch.float32, torch.bfloat16 or torch.float16")
        return None if dtype == torch.float32 else dtype
    if width is not None and not is_integer(width):
        raise InputError(f"width must be the model's embed_dim (an integer), got {width!r}")
    if dtype is None or dtype == "auto":
        auto = {"cuda": torch.bfloat16, "mps": torch.float16}
        return _cpu_auto(width)[0] if device.type == "cpu" else auto.get(device.type)
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use auto, fp32, bf16 or fp16")
    return DTYPES[dtype]


def dtype_reason(asked: Optional[Union[str, torch.dtype]], device: torch.device, width: Optional[int]) -> str:
    """Why `resolve_dtype` chose what it did, for the summary line of the CLIs."""
    if not (asked is None or asked == "auto"):
        return "as asked"
    if device.type != "cpu":
        return f"auto on {device.type}"
    return _cpu_auto(width)[1]


def _cpu_auto(width: Optional[int]) -> Tuple[Optional[torch.dtype], str]:
    """`--dtype auto` on a CPU: bf16 with native bf16 and a model at least `BF16_MIN_WIDTH` wide, and why."""
    cpu = cpu_info()
    if not cpu.native_bf16:
        return None, "auto: this CPU has no native bf16 (AMX or AVX-512 BF16)"
    if width is None or width < BF16_MIN_WIDTH:
        return None, f"auto: native bf16, but a {width}-wide model gains nothing from it (bf16 from width {BF16_MIN_WIDTH})"
    return torch.bfloat16, "auto: this CPU computes bf16 natively (" + ", ".join(f for f in cpu.features if "bf16" in f) + ")"


def describe_precision(device: torch.device, dtype: Optional[torch.dtype], threads: int, reason: str) -> str:
    """How the model call runs, for the CLIs' summaries: ', 2 threads, bf16 (why)' (threads on a CPU only)."""
    name = {None: "fp32", torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))
    count = f", {threads} thread{'' if threads == 1 else 's'}" if device.type == "cpu" else ""
    return f"{count}, {name} ({reason})"


#: more threads than any machine has cores: OpenMP fails beyond (a crash, not an error, at 100,000)
MAX_THREADS = 4096


def set_threads(threads: Optional[int], option: Optional[str] = None) -> int:
    """Use `threads` CPU threads for torch (None: the machine's cores); returns the number in use.
    `option` (a CLI's ``--threads``) starts the error's line, naming what the user typed."""
    if threads is not None:
        if not is_integer(threads) or not 1 <= threads <= MAX_THREADS:
            named = f"{option}: " if option else ""
            raise InputError(f"{named}threads must be a whole number from 1 to {MAX_THREADS}, got {threads!r}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """Autocast to `dtype` on `device`, or nothing for None (fp32): the one switch for reduced precision."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)


__all__ = ["autocast", "resolve_device", "resolve_dtype", "dtype_reason", "describe_precision", "cpu_info", "CpuInfo",
           "set_threads",
           "DeviceError", "DTYPES", "DEVICE_HELP", "DTYPE_CHOICES", "DTYPE_HELP", "BF16_MIN_WIDTH", "MAX_THREADS"]
