"""What a benchmark run reports: code version, memory, the JSON record and the printed table.

Numbers without the code, weights and settings that made them cannot be reproduced, so the JSON
carries all of them next to the timings; the table is for the person watching the terminal.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable

__all__ = ["code_version", "peak_rss_mb", "reset_cuda_peak", "cuda_peak_mb", "format_table", "claim_json", "write_json"]

REPO = Path(__file__).resolve().parents[1]


def code_version() -> str:
    """``git describe --always --dirty --tags`` of the checkout, else the installed package version."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=REPO, capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"git {out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"seggpt-vos {version('seggpt-vos')}"
    except PackageNotFoundError:
        return "unknown"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def _cuda():
    """torch, if this process already imported it and uses CUDA (copy-first never imports torch)."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized() else None


def reset_cuda_peak() -> None:
    torch = _cuda()
    if torch is not None:
        torch.cuda.reset_peak_memory_stats()


def cuda_peak_mb() -> float | None:
    """CUDA max allocated since the last reset, MiB; None where CUDA is not used."""
    torch = _cuda()
    return None if torch is None else round(torch.cuda.max_memory_allocated() / 2**20, 1)


def _cell(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(sequences: Iterable[dict[str, Any]], global_results: dict[str, float] | None) -> str:
    """Per-sequence rows (status, frames, frames/s, J, F) and the global J&F line, as plain text."""
    header = ("sequence", "status", "frames", "fps", "J-Mean", "F-Mean")
    rows = []
    for seq in sequences:
        objects = seq.get("objects") or {}
        means = [[o[k] for o in objects.values() if o[k] is not None] for k in ("J-Mean", "F-Mean")]
        rows.append((seq["name"], seq["status"], _cell(seq.get("frames")), _cell(seq.get("fps"), 1),
                     *(_cell(sum(m) / len(m) if m else None) for m in means)))
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    if global_results:
        lines += ["", "  ".join(f"{k} {global_results[k]:.3f}" for k in global_results)]
    return "\n".join(lines)


def claim_json(parser: Any, path: str | None, tool: str) -> Any:
    """A measurement's ``--json``: a new file or one of ours (`seggpt.outputs`), else the parser's one-line error.

    Claimed before the measurement, so that minutes of timing never end in a refusal to write them."""
    from seggpt.outputs import OutputRefused, claim_files

    try:
        return claim_files({"--json": path}, tool, register=False)
    except OutputRefused as e:
        parser.error(str(e))


def write_json(claimed: Any, path: str | None, record: dict[str, Any]) -> None:
    """The measurement's record into ``--json`` (when given), written whole, then recorded as ours."""
    if path is not None:
        from seggpt.io import atomic_write_text

        atomic_write_text(path, json.dumps(record, indent=2))
        claimed.finish(0)
