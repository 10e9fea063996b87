"""The machine a speed figure was measured on, and its own peak, so that figures are fractions of it.

Seconds alone do not travel between hosts (a 2-core AMD EPYC with AVX-512 BF16 and an Intel Xeon with
AMX differ 6x in bf16 matmul speed); a fraction of the peak the same run measured does. The peak is
measured one fixed way: `torch.mm` of two 4096 x 4096 matrices in the dtype, with the threads the run
uses, best of 5 after 2 warm-up calls; 2 * 4096^3 FLOPs per call.
"""
from __future__ import annotations

import platform
import time
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from seggpt.device import cpu_info

PEAK_SIZE = 4096


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # kernels run asynchronously: time them to completion


def timed(fn: Callable[[], Any], device: torch.device) -> Tuple[float, Any]:
    """One call of `fn`, timed to completion of its kernels: (seconds, what it returned)."""
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def best_seconds(fn: Callable[[], Any], device: torch.device, reps: int) -> float:
    """The fastest of `reps` calls of `fn`, seconds, each timed to completion of its kernels."""
    return min(timed(fn, device)[0] for _ in range(reps))


def peak_gflops(dtype: torch.dtype, device: torch.device, reps: int = 5, size: int = PEAK_SIZE) -> float:
    """The machine's matmul peak in `dtype` on `device`, GFLOP/s (the module docstring's fixed recipe)."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=g).to(device=device, dtype=dtype) for _ in range(2))
    for _ in range(2):
        torch.mm(a, b)
    return 2.0 * size**3 / best_seconds(lambda: torch.mm(a, b), device, reps) / 1e9


def machine_facts(device: torch.device) -> Dict[str, Any]:
    """CPU model and ISA features, threads, torch version, and the GPU's name on CUDA."""
    cpu = cpu_info()
    facts: Dict[str, Any] = dict(cpu=cpu.model, machine=cpu.machine, isa=list(cpu.features),
                                 native_bf16=cpu.native_bf16, threads=torch.get_num_threads(),
                                 torch=torch.__version__, python=platform.python_version(), device=str(device))
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
    return facts


def describe(facts: Dict[str, Any], peaks: Optional[Dict[str, float]] = None) -> str:
    """One line: the machine, and the peaks if given."""
    line = (f"machine: {facts['cpu']} ({facts['machine']}; ISA {', '.join(facts['isa']) or 'none of AVX2/AVX-512/AMX'}), "
            f"{facts['threads']} threads, torch {facts['torch']}, device {facts['device']}"
            + (f" ({facts['gpu']})" if "gpu" in facts else ""))
    if peaks:
        line += "; torch.mm 4096 peak " + ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in peaks.items())
    return line


__all__ = ["timed", "best_seconds", "peak_gflops", "machine_facts", "describe", "sync", "PEAK_SIZE"]
