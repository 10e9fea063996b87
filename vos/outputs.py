"""Where the command-line tools write: never onto an input, never into a mix of two runs.

Two rules, for every CLI that writes (`vos.run`, `benchmarks.vos`, `benchmarks.evaluate`):

* **Inputs are never outputs** (`check_not_inputs`). Every output path is resolved to its real path
  (symlinks and `..` cannot hide a clash) and refused when it is, or is inside, an input (the video,
  the frames folder, a mask, the dataset's images or annotations, the weights, the config); an output
  *folder* that holds an input is refused too (a frame PNG could land on it).
* **No mixed runs** (`claim_folder`). Every output folder gets a manifest, ``.seggpt-vos-manifest.json``
  (a file: evaluation tools take every sub-folder for a sequence), listing the files the run wrote,
  the folders it made and its named outside files (the overlay video). A folder holding only an
  earlier run of ours is emptied of that run's files first (re-running a command just works); a folder
  holding anything else is refused unless ``--overwrite``, which removes only the files a manifest of
  ours lists, never another file, and refuses to write over one. ``resume=True`` keeps an earlier run's
  files (``benchmarks.vos --resume``). The manifest is written before the first output, marked
  incomplete, and rewritten when the run ends (through `seggpt.cli.on_exit`): complete with exit
  code 0 or 1 (a benchmark with failed sequences ended normally), incomplete otherwise (interrupted,
  terminated, a bad frame midway). A run killed outright leaves the first manifest: incomplete, with
  the patterns of the files it was going to write, so the next run still recognises them as ours.

Torch-free, like `seggpt.cli`.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Union

from seggpt.cli import UserError, on_exit

MANIFEST = ".seggpt-vos-manifest.json"
FORMAT = "seggpt-vos-manifest/1"
#: containers the overlay writer (H.264 or MPEG-4 Part 2) can write
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
#: hidden temporary names our atomic writers use (".<name>.<random>.tmp[.suffix]", ".vos-write-test-*"):
#: one left behind by a killed run is ours
_TEMPORARY = re.compile(r"^\..+\.[0-9A-Za-z_]{6,}\.tmp(\.[0-9A-Za-z]+)?$|^\.vos-write-test-")

PathLike = Union[str, "os.PathLike[str]"]


class OutputRefused(UserError, ValueError):
    """An output that would replace an input, or mix with files that are not from a run of ours."""


def real(path: PathLike) -> Path:
    """The real path (symlinks resolved, `..` folded, `~` expanded); the file need not exist."""
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# ---------------------------------------------------------------------------------------------- inputs


def check_not_inputs(outputs: Mapping[str, Optional[PathLike]], inputs: Mapping[str, Optional[PathLike]],
                     folders: Iterable[str] = ()) -> None:
    """Refuse (OutputRefused, one line) any output that is, or is inside, an input.

    outputs / inputs: a label (the option that named it, e.g. "--out", "the mask") -> a path; None is
    skipped, and inputs that do not exist are skipped (a Hub id is not a path). `folders`: the labels of
    outputs that are folders, which also must not hold an input.
    """
    folders = set(folders)
    resolved = [(label, path, real(path)) for label, path in inputs.items()
                if path is not None and str(path) and os.path.lexists(os.path.expanduser(str(path)))]
    for out_label, out_path in outputs.items():
        if out_path is None or not str(out_path):
            continue
        out_real = real(out_path)
        for in_label, in_path, in_real in resolved:
            if out_real == in_real:
                raise OutputRefused(f"{out_label} {out_path} is the {in_label} ({in_path}): outputs never replace "
                                    f"inputs; choose another {out_label}")
            if _within(out_real, in_real):
                raise OutputRefused(f"{out_label} {out_path} is inside the {in_label} ({in_path}): outputs never go "
                                    f"into an input; choose another {out_label}")
            if out_label in folders and _within(in_real, out_real):
                raise OutputRefused(f"{out_label} {out_path} holds the {in_label} ({in_path}): a written file could "
                                    f"replace it; choose another {out_label}")


def check_video_output(label: str, path: PathLike) -> None:
    """An overlay video path: not a folder, a container the writer can write."""
    p = Path(os.path.expanduser(str(path)))
    if p.is_dir():
        raise OutputRefused(f"{label} {path} is a folder; name the video file to write (e.g. {p / 'overlay.mp4'})")
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise OutputRefused(f"{label} {path}: the overlay is a video, its name must end in "
                            f"{', '.join(VIDEO_SUFFIXES)} (got {p.suffix or 'no extension'})")


# ---------------------------------------------------------------------------------------------- manifest


def read_manifest(folder: PathLike) -> Optional[dict]:
    """The manifest of a folder, or None (none, unreadable, or not ours)."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    for key in ("files", "dirs", "patterns", "external"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None
        data[key] = value
    return data


def _write_manifest(folder: Path, data: dict) -> None:
    path = folder / MANIFEST
    if path.is_dir():  # never ours: claim refuses such a folder unless --overwrite, and cannot fix it then
        raise OutputRefused(f"{path} is a folder; the manifest of our runs is a file: remove or rename it")
    tmp = folder / f".{MANIFEST}.{os.getpid()}{int(time.time() * 1e6) % 10 ** 8:08d}.tmp"
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _scan(folder: Path) -> tuple:
    """(files, dirs) under `folder` as relative POSIX paths; links are files (never followed)."""
    files: List[str] = []
    dirs: List[str] = []

    def walk(d: Path, rel: str) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            r = f"{rel}{e.name}"
            if e.is_dir(follow_symlinks=False):
                dirs.append(r)
                walk(Path(e.path), r + "/")
            else:
                files.append(r)

    walk(folder, "")
    return files, dirs


def _matches(rel: str, patterns: Iterable[str]) -> bool:
    """`dir/` is everything under dir; other patterns match names at the top (`*.png`) or paths."""
    for pat in patterns:
        if pat.endswith("/"):
            if rel.startswith(pat):
                return True
        elif "/" not in rel or "/" in pat:
            if fnmatch.fnmatchcase(rel, pat):
                return True
    return False


def _is_ours(rel: str, manifest: Optional[dict]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    if rel == MANIFEST or _TEMPORARY.match(name):
        return True
    if manifest is None:
        return False
    if rel in set(manifest["files"]):
        return True
    # a run that never finished (killed outright): what it was going to write is ours too
    return manifest.get("status") == "running" and _matches(rel, manifest["patterns"])


def written_by_us(folder: PathLike, rel: str) -> bool:
    """Whether `folder/rel` is a file an earlier run of ours wrote (the folder's manifest lists it)."""
    return _is_ours(rel, read_manifest(folder))


@dataclass
class OutputFolder:
    """A claimed output folder (see the module docstring); `finish(code)` rewrites its manifest."""

    folder: Path
    tool: str
    foreign: Set[str] = field(default_factory=set)  # files present at the claim that are not ours (kept)
    dirs_before: Set[str] = field(default_factory=set)
    kept: Set[str] = field(default_factory=set)  # files of an earlier run kept (resume)
    kept_dirs: Set[str] = field(default_factory=set)
    patterns: List[str] = field(default_factory=list)
    external: List[str] = field(default_factory=list)
    command: List[str] = field(default_factory=list)
    started: str = ""
    finished: bool = False

    def add_external(self, path: PathLike) -> None:
        """A file outside the folder that this run writes (the overlay): recorded as ours."""
        r = str(real(path))
        if r not in self.external:
            self.external.append(r)

    def manifest(self, complete: bool, status: str) -> dict:
        files, dirs = _scan(self.folder) if self.folder.is_dir() else ([], [])
        ours = sorted(f for f in files if f != MANIFEST and f not in self.foreign and not _TEMPORARY.match(f.rsplit("/", 1)[-1]))
        own_dirs = sorted(d for d in dirs if d not in self.dirs_before or d in self.kept_dirs)
        return {"format": FORMAT, "tool": self.tool, "command": self.command, "started": self.started,
                "pid": os.getpid(), "host": socket.gethostname(),
                "ended": time.strftime("%Y-%m-%dT%H:%M:%S") if status != "running" else None,
                "complete": complete, "status": status, "files": ours, "dirs": own_dirs,
                "patterns": self.patterns, "external": sorted(e for e in self.external if os.path.lexists(e))
                if status != "running" else sorted(self.external)}

    def finish(self, code: Optional[int]) -> None:
        """Record what the run wrote; complete for exit codes 0 and 1 (see the module docstring)."""
        if self.finished:
            return
        self.finished = True
        status = {0: "complete", 1: "complete (some work failed)", 2: "stopped: bad input",
                  130: "interrupted", 143: "terminated"}.get(code, "stopped by an error")  # type: ignore[arg-type]
        if self.folder.is_dir():
            _write_manifest(self.folder, self.manifest(code in (0, 1), status))


def claim_folder(folder: PathLike, tool: str, *, overwrite: bool = False, resume: bool = False,
                 patterns: Sequence[str] = (), files: Mapping[str, PathLike] = (), option: str = "--out",
                 register: bool = True, dry_run: bool = False) -> Optional[OutputFolder]:
    """Make `folder` ready for a run of `tool` (see the module docstring) and write its first manifest.

    patterns: what the run will write (`*.png`, `objects/`), recorded so a killed run's files stay ours.
    files: named output files (option -> path, e.g. {"--overlay": path}) that may lie outside the
    folder: an existing one must be from a run of ours (this folder's manifest) or `overwrite` given.
    register: finish the manifest when the CLI run in progress ends (`seggpt.cli.on_exit`).
    dry_run: only the checks (every refusal), nothing removed or written; returns None.
    """
    path = Path(os.path.expanduser(str(folder)))
    if path.exists() and not path.is_dir():
        raise OutputRefused(f"{option} {folder}: exists and is not a folder")
    old = read_manifest(path) if path.is_dir() else None
    existing, dirs = _scan(path) if path.is_dir() else ([], [])
    ours = [f for f in existing if _is_ours(f, old)]
    foreign = [f for f in existing if not _is_ours(f, old)]
    if old is not None and old.get("status") == "running" and _alive(old):
        raise OutputRefused(f"{option} {folder}: another run ({old.get('tool')}, process {old.get('pid')}) is writing "
                            f"into this folder now; wait for it or choose another folder")
    links = [f for f in existing if (path / f).is_symlink()]
    if links:  # a file written "into" a link lands wherever it points: a dataset, a user's folder
        raise OutputRefused(f"{option} {folder}: {links[0]} is a symbolic link; we never write through links "
                            f"(even with --overwrite): remove it or choose another folder")
    if (path / MANIFEST).is_dir():
        raise OutputRefused(f"{path / MANIFEST} is a folder; the manifest of our runs is a file: remove or rename it")
    if foreign and not overwrite:
        raise OutputRefused(
            f"{option} {folder} holds {len(foreign)} file(s) that no run of ours wrote (e.g. {foreign[0]}); "
            f"choose an empty or new folder, or pass --overwrite (it removes only the files of our earlier "
            f"runs, never others)")
    clash = [f for f in foreign if _matches(f, patterns)]
    clash += [d for d in dirs if not (old and d in old["dirs"]) and _matches(d, [p for p in patterns if not p.endswith("/")])]
    if clash:
        raise OutputRefused(f"{option} {folder}: {clash[0]} was not written by a run of ours and this run could "
                            f"write over it (even with --overwrite); move it away or choose another folder")
    external_old = set(old["external"]) if old else set()
    named_inside: List[str] = []
    seen: Dict[Path, str] = {}
    for option_name, file in dict(files).items():
        if file is None:
            continue
        r = real(file)
        if r in seen:
            raise OutputRefused(f"{option_name} {file} is also {seen[r]}: one file cannot hold two outputs")
        seen[r] = option_name
        if r.is_dir():
            raise OutputRefused(f"{option_name} {file} is a folder; name the file to write")
        if _within(r, real(path)) and r != real(path):
            rel = r.relative_to(real(path)).as_posix()
            if _matches(rel, patterns):
                raise OutputRefused(f"{option_name} {file} lies where {option} {folder} writes its own files "
                                    f"({', '.join(patterns)}): choose another name")
            named_inside.append(rel)
            if rel in foreign:
                raise OutputRefused(f"{option_name} {file}: not written by a run of ours; move it away or choose "
                                    f"another name (--overwrite never replaces files we did not write)")
            continue
        if os.path.lexists(r) and str(r) not in external_old and not overwrite:
            raise OutputRefused(f"{option_name} {file} exists and was not written by a run of ours into {folder}; "
                                f"choose another name, or pass --overwrite to replace it")
    if dry_run:
        return None
    run = OutputFolder(path, tool, foreign=set(foreign), patterns=[*patterns, *named_inside],
                       command=[Path(sys.argv[0]).name, *sys.argv[1:]], started=time.strftime("%Y-%m-%dT%H:%M:%S"))
    for option_name, file in dict(files).items():
        if file is not None and not _within(real(file), real(path)):
            run.add_external(file)
    if resume:
        run.kept = set(ours) - {MANIFEST}
        run.kept_dirs = set(old["dirs"]) if old else set()
    else:
        _remove(path, ours, old)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputRefused(f"{option} {folder}: cannot create the folder ({e.strerror or e})") from None
    run.dirs_before = set(_scan(path)[1]) - run.kept_dirs
    _write_manifest(path, run.manifest(False, "running"))
    if register:
        on_exit(run.finish)
    return run


def _alive(manifest: dict) -> bool:
    """Whether the process that wrote a "running" manifest still runs (on this machine; elsewhere: unknown, no)."""
    pid = manifest.get("pid")
    if manifest.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


def _remove(folder: Path, ours: Sequence[str], old: Optional[dict]) -> None:
    """Delete an earlier run's files, then the folders it made that are empty now (deepest first)."""
    for rel in ours:
        try:
            (folder / rel).unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise OutputRefused(f"{folder / rel}: cannot remove this file of an earlier run ({e.strerror or e})") from None
    made = set(old["dirs"]) if old else set()
    made |= {rel.rsplit("/", 1)[0] for rel in ours if "/" in rel}
    for rel in sorted(made, key=lambda d: d.count("/"), reverse=True):
        parts = rel.split("/")
        for i in range(len(parts), 0, -1):  # a made folder's parents inside the folder, if empty
            d = folder.joinpath(*parts[:i])
            try:
                d.rmdir()
            except OSError:
                break


def record_files(folder: PathLike, names: Iterable[str]) -> bool:
    """Add files written into a folder of ours by another tool (benchmarks.evaluate's CSVs) to its manifest."""
    path = Path(folder)
    data = read_manifest(path)
    if data is None:
        return False
    data["files"] = sorted(set(data["files"]) | set(names))
    _write_manifest(path, data)
    return True


__all__ = ["MANIFEST", "OutputRefused", "OutputFolder", "check_not_inputs", "check_video_output", "claim_folder",
           "read_manifest", "record_files", "real", "VIDEO_SUFFIXES"]


# ---------------------------------------------------------------------------------------------- the CLIs


def weights_input(weights: Optional[str]) -> Optional[str]:
    """The local file or folder a --weights value reads, or None (a packaged name or a Hub id)."""
    if not weights:
        return None
    try:
        from seggpt.weights_check import packaged_weights
    except ImportError:  # pragma: no cover
        packaged_weights = None  # type: ignore[assignment]
    if packaged_weights is not None and packaged_weights(weights) is not None:
        return None
    return weights if os.path.lexists(os.path.expanduser(weights)) else None


@dataclass
class PendingClaim:
    """Checks passed, nothing touched yet: `claim()` empties our earlier run and writes the manifest."""

    folder: PathLike
    tool: str
    options: Dict[str, object]

    def claim(self) -> OutputFolder:
        run = claim_folder(self.folder, self.tool, **self.options)  # checked again: the folder may have changed
        assert run is not None
        return run


def claim_run_outputs(args, weights: Optional[str], out_dir: PathLike) -> PendingClaim:
    """`vos.run`: its --out folder and --overlay checked against its inputs (before the model is loaded).

    Nothing is removed until `.claim()`, called once the model is loaded and the mask accepted, right
    before the first frame is written: a run that fails before that leaves an earlier run's files alone.
    """
    overlay = getattr(args, "overlay", None)
    if overlay:
        check_video_output("--overlay", overlay)
    video_label = "frames folder" if os.path.isdir(str(args.video)) else "video"
    inputs = {video_label: args.video, "mask": getattr(args, "first_mask", None),
              "masks folder": getattr(args, "masks", None), "weights": weights_input(weights),
              "config": getattr(args, "config", None)}
    outputs = {"--out": out_dir, "--overlay": overlay}
    outputs.update({f"--{name}": getattr(args, name, None) for name in ("alpha", "matte", "rle", "report")})
    check_not_inputs(outputs, inputs, folders=("--out", "--alpha"))
    alpha = getattr(args, "alpha", None)
    if alpha and (_within(real(alpha), real(out_dir)) or _within(real(out_dir), real(alpha))):
        raise OutputRefused(f"--alpha {alpha}: is, or lies inside or around, --out {out_dir}: the RGBA PNGs would "
                            f"replace the index PNGs; one folder cannot hold two outputs")
    files = {k: v for k, v in outputs.items() if v and k in ("--overlay", "--matte", "--rle", "--report")}
    options: Dict[str, object] = dict(overwrite=bool(getattr(args, "overwrite", False)), patterns=["*.png", "objects/"],
                                      files=files)
    claim_folder(out_dir, "vos.run", dry_run=True, **options)  # type: ignore[arg-type]
    return PendingClaim(out_dir, "vos.run", options)


__all__ += ["claim_run_outputs", "weights_input", "PendingClaim", "written_by_us"]
