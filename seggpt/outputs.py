"""Where every tool writes: never onto an input, never over a file that is not ours.

One guard for every path a tool of the project writes (`vos.run`, `seggpt.run`, `seggpt.tune`,
`python -m training`, `vos.demo`, `benchmarks.vos`, `benchmarks.evaluate`, the app's exports):

* **Inputs are never outputs** (`check_not_inputs`). Every output path is resolved to its real path
  (symlinks and `..` cannot hide a clash) and refused when it is, or is inside, an input (the video,
  the frames folder, a mask, the dataset's images or annotations, the weights, the config); an output
  *folder* that holds an input is refused too (a written file could land on it).
* **A file is ours only while it holds what we wrote.** Every folder we write into keeps a manifest,
  ``.seggpt-vos-manifest.json``, listing each file a run of ours wrote there with its size and SHA-256,
  taken when the run ended. A file is ours to replace or delete only if its current content still
  has that size and hash. A file a person changed after our run (a hand-corrected mask), a name we
  never wrote, and a symbolic link are never replaced or deleted: the run is refused before any work
  starts, in one line naming those files, whatever ``--overwrite`` says. Links inside an output
  folder are never followed. A manifest that does not parse, has an unknown format or lists a path
  outside its folder counts as none. Files listed without a hash by an earlier version (manifests of
  format 1) count as ours only with ``--overwrite``. The files a run killed outright may have written
  (known only by the patterns its first manifest names: no hash, so they cannot be told from a file a
  person put there) count as ours only to ``resume`` that run (``benchmarks.vos --resume``,
  ``python -m training --resume``); anything else refuses them, ``--overwrite`` included. Ctrl-C
  and SIGTERM are not "killed outright": the manifest is finished with every hash.
* **Output folders are one run's alone** (`claim_folder`: ``--out``, ``--alpha``, a training
  ``out_dir``). A folder holding only an earlier run of ours is emptied of that run's files first
  (re-running a command just works), or kept with ``resume=True`` (``benchmarks.vos --resume``,
  ``python -m training --resume``). The manifest is written before the first output, marked
  ``running``, and rewritten when the run ends (through `seggpt.cli.on_exit`, or `finish` for
  library callers): ``complete`` with exit code 0 or 1 (a benchmark with failed sequences ended
  normally), a reason otherwise (interrupted, terminated, a bad frame midway).
* **Single files** (`claim_files`: ``--overlay``, ``--report``, ``--rle``, ``--matte``, a tuned
  prompt, an export) are recorded in the manifest of the folder that holds them: the manifest of the
  output folder when they lie inside it, else one in their own folder that lists only the files we
  wrote there (``"claimed": false``; the folder's other files are never looked at or touched). An
  existing file at such a path is replaced only when that manifest proves it ours.

The manifests themselves (the records, reading and writing them, who owns each file) are `seggpt.manifest`'s.

Torch-free, like `seggpt.cli`: the checks run before a model is loaded.
"""
from __future__ import annotations

import os
import socket
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from seggpt.cli import on_exit
from seggpt.errors import InputError
from seggpt.manifest import (FORMAT, LEGACY_FORMATS, MANIFEST, TEMPORARY, PathLike, Record,  # noqa: F401
                             file_record, matches, ownership_of, process_alive, read_manifest, record_in_folder, scan,
                             unchanged, write_manifest, written_by_us)

#: containers the overlay writer (H.264 or MPEG-4 Part 2) can write
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
#: the one help text of every tool's --overwrite
OVERWRITE_HELP = ("also replace the files that an earlier version of ours listed without a content hash; a file "
                  "we did not write, or one changed since we wrote it, is never replaced or deleted (default: "
                  "off; files an earlier run of ours wrote, unchanged, are replaced without it)")
#: how many names a refusal lists before "and N more"
_NAMED = 3


#: the name of this module's refusals (an output that would replace an input, a file that is not ours):
#: an alias of InputError, not another class
OutputRefused = InputError


def real(path: PathLike) -> Path:
    """The real path (symlinks resolved, `..` folded, `~` expanded); the file need not exist."""
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_path_given(option: str, path: Optional[PathLike]) -> None:
    """An empty or blank path is an error (never "the current folder", never "use the default")."""
    if path is not None and not str(path).strip():
        raise InputError(f"{option}: an empty path; name a file or folder (or leave the option out)")


def _names(items: Sequence[str]) -> str:
    """The first few names, hidden ones last (a user's own file is the one to see first)."""
    items = sorted(items, key=lambda rel: any(part.startswith(".") for part in rel.split("/")))
    return ", ".join(items[:_NAMED]) + (f" and {len(items) - _NAMED} more" if len(items) > _NAMED else "")


# ---------------------------------------------------------------------------------------------- inputs


def check_not_inputs(outputs: Mapping[str, Optional[PathLike]], inputs: Mapping[str, Optional[PathLike]],
                     folders: Iterable[str] = ()) -> None:
    """Refuse (InputError, one line) any output that is, or is inside, an input.

    outputs / inputs: a label (the option that named it, e.g. "--out", "the mask") -> a path; None is
    skipped, and inputs that do not exist are skipped (a Hub id is not a path). `folders`: the labels of
    outputs that are folders, which also must not hold an input.
    """
    folders = set(folders)
    for out_label, out_path in outputs.items():
        check_path_given(out_label, out_path)
    resolved = [(label, path, real(path)) for label, path in inputs.items()
                if path is not None and str(path) and os.path.lexists(os.path.expanduser(str(path)))]
    for out_label, out_path in outputs.items():
        if out_path is None:
            continue
        out_real = real(out_path)
        for in_label, in_path, in_real in resolved:
            if out_real == in_real:
                raise InputError(f"{out_label} {out_path} is the {in_label} ({in_path}): outputs never replace "
                                 f"inputs; choose another {out_label}")
            if is_within(out_real, in_real):
                raise InputError(f"{out_label} {out_path} is inside the {in_label} ({in_path}): outputs never go "
                                 f"into an input; choose another {out_label}")
            if out_label in folders and is_within(in_real, out_real):
                raise InputError(f"{out_label} {out_path} holds the {in_label} ({in_path}): a written file could "
                                 f"replace it; choose another {out_label}")


def check_video_output(label: str, path: PathLike) -> None:
    """An overlay video path: not a folder, a container the writer can write."""
    check_path_given(label, path)
    p = Path(os.path.expanduser(str(path)))
    if p.is_dir():
        raise InputError(f"{label} {path} is a folder; name the video file to write (e.g. {p / 'overlay.mp4'})")
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"{label} {path}: the overlay is a video, its name must end in "
                         f"{', '.join(VIDEO_SUFFIXES)} (got {p.suffix or 'no extension'})")


# ---------------------------------------------------------------------------------------------- single files


@dataclass
class OutputFiles:
    """Single output files checked by `claim_files`; `finish(code)` records those the run wrote."""

    tool: str
    paths: Dict[str, Path] = field(default_factory=dict)  # option -> real path (outside any claimed folder)
    before: Dict[Path, Record] = field(default_factory=dict)  # what each held at the claim (ours), or absent
    finished: bool = False

    def finish(self, code: Optional[int] = 0) -> None:
        """Record in each file's folder what the run wrote (a file still as it was at the claim: not ours now)."""
        if self.finished:
            return
        self.finished = True
        by_folder: Dict[Path, Dict[str, Record]] = {}
        for path in self.paths.values():
            record = file_record(path)
            if record is None or (path in self.before and record == self.before[path]):
                continue  # not written by this run (it failed first, or never got there)
            by_folder.setdefault(path.parent, {})[path.name] = record
        for folder, records in by_folder.items():
            record_in_folder(folder, records, self.tool)


def _check_single(option: str, file: PathLike, accept_unhashed: bool, legacy_external: Set[str],
                  ownership: bool = True) -> Tuple[Path, Record]:
    """One single output path: not a folder, not a link, and (when it exists) a file of ours.

    ownership=False: only the kind of path (a file inside a claimed folder: the folder's claim judged it).
    """
    check_path_given(option, file)
    if Path(os.path.expanduser(str(file))).is_symlink():
        raise InputError(f"{option} {file} is a symbolic link; we never write over links (even with "
                         f"--overwrite): remove it or choose another name")
    r = real(file)
    if r.is_dir():
        raise InputError(f"{option} {file} is a folder; name the file to write")
    if not os.path.lexists(r):
        return r, None
    if not stat.S_ISREG(os.lstat(r).st_mode):
        raise InputError(f"{option} {file} exists and is not a regular file; choose another name")
    if not ownership:
        return r, None
    state = ownership_of(r.parent, r.name, read_manifest(r.parent))
    if state == "unhashed" or (state == "foreign" and str(r) in legacy_external):
        if not accept_unhashed:
            raise InputError(f"{option} {file} exists and an earlier version or an unfinished run of ours listed "
                             f"it without a content hash; pass --overwrite to replace it, or choose another name")
    elif state in ("foreign", "unfinished"):
        raise InputError(f"{option} {file} exists and was not written by a run of ours, or changed since (we keep "
                         f"what we wrote in {r.parent / MANIFEST}); we never replace such a file, even with "
                         f"--overwrite: move it away or choose another name")
    return r, file_record(r)


def claim_files(files: Mapping[str, Optional[PathLike]], tool: str, *, overwrite: bool = False,
                register: bool = True, dry_run: bool = False,
                _legacy_external: Set[str] = frozenset()) -> Optional[OutputFiles]:  # type: ignore[assignment]
    """Check single output files (option -> path; None skipped); record them when the run ends.

    An existing file is replaced only when its folder's manifest proves it ours (see the module
    docstring). register: record them when the CLI run in progress ends (`seggpt.cli.on_exit`);
    library callers call `finish()` themselves. dry_run: only the checks; returns None.
    """
    run = OutputFiles(tool)
    seen: Dict[Path, str] = {}
    for option, file in files.items():
        if file is None:
            continue
        r, before = _check_single(option, file, overwrite, set(_legacy_external))
        if r in seen:
            raise InputError(f"{option} {file} is also {seen[r]}: one file cannot hold two outputs")
        seen[r] = option
        run.paths[option] = r
        if before is not None:
            run.before[r] = before
    if dry_run:
        return None
    if register and run.paths:
        on_exit(run.finish)
    return run


# ---------------------------------------------------------------------------------------------- folders


@dataclass
class OutputFolder:
    """A claimed output folder (see the module docstring); `finish(code)` rewrites its manifest."""

    folder: Path
    tool: str
    dirs_before: Set[str] = field(default_factory=set)
    kept: Dict[str, Record] = field(default_factory=dict)  # files of an earlier run kept (resume)
    kept_dirs: Set[str] = field(default_factory=set)
    patterns: List[str] = field(default_factory=list)
    files: Optional[OutputFiles] = None  # the run's single files outside the folder
    command: List[str] = field(default_factory=list)
    started: str = ""
    finished: bool = False

    def manifest(self, complete: bool, status: str) -> dict:
        """Every file the run wrote (its patterns, kept files of an earlier run) with its hash now."""
        files, dirs = scan(self.folder) if self.folder.is_dir() else ([], [])
        records: Dict[str, Record] = {}
        if status != "running":
            for rel in files:
                if rel == MANIFEST or TEMPORARY.match(rel.rsplit("/", 1)[-1]):
                    continue
                kept = self.kept.get(rel)
                if kept is not None and unchanged(self.folder / rel, kept):
                    records[rel] = kept  # an earlier run's file kept as it was (resume)
                elif matches(rel, self.patterns) or (rel in self.kept and kept is None):
                    record = file_record(self.folder / rel)  # written by this run (or kept unhashed: resume)
                    if record is not None:
                        records[rel] = record
        else:
            records = dict(self.kept)
        own_dirs = sorted(d for d in dirs if d not in self.dirs_before or d in self.kept_dirs)
        return {"format": FORMAT, "claimed": True, "tool": self.tool, "command": self.command,
                "started": self.started, "pid": os.getpid(), "host": socket.gethostname(),
                "ended": time.strftime("%Y-%m-%dT%H:%M:%S") if status != "running" else None,
                "complete": complete, "status": status, "files": records, "dirs": own_dirs,
                "patterns": self.patterns}

    def finish(self, code: Optional[int] = 0) -> None:
        """Record what the run wrote; complete for exit codes 0 and 1 (see the module docstring)."""
        if self.finished:
            return
        self.finished = True
        status = {0: "complete", 1: "complete (some work failed)", 2: "stopped: bad input",
                  130: "interrupted", 143: "terminated"}.get(code, "stopped by an error")  # type: ignore[arg-type]
        if self.folder.is_dir():
            write_manifest(self.folder, self.manifest(code in (0, 1), status))
        if self.files is not None:
            self.files.finish(code)


def claim_folder(folder: PathLike, tool: str, *, overwrite: bool = False, resume: bool = False,
                 patterns: Sequence[str] = (), files: Mapping[str, Optional[PathLike]] = {}, option: str = "--out",
                 register: bool = True, dry_run: bool = False,
                 legacy_names: Sequence[str] = ()) -> Optional[OutputFolder]:
    """Make `folder` ready for a run of `tool` (see the module docstring) and write its first manifest.

    patterns: what the run will write (`*.png`, `objects/`): the files of the run at its end, and, for
    a run killed outright, the names the next run may take as ours with --overwrite.
    files: named single output files (option -> path) inside or outside the folder (see `claim_files`).
    resume: keep an earlier run's files (and take those a run killed outright left, unhashed, as ours).
    register: finish the manifest when the CLI run in progress ends (`seggpt.cli.on_exit`).
    dry_run: only the checks (every refusal), nothing removed or written; returns None.
    legacy_names: in a folder with no manifest, the names a version of the tool from before manifests
    wrote (a training run's `last.pt`): listed without a hash, so ours only with --overwrite or resume.
    """
    check_path_given(option, folder)
    path = Path(os.path.expanduser(str(folder)))
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {folder}: exists and is not a folder")
    old = read_manifest(path) if path.is_dir() else None
    existing, dirs = scan(path) if path.is_dir() else ([], [])
    if old is not None and old.get("status") == "running" and process_alive(old):
        raise InputError(f"{option} {folder}: another run ({old.get('tool')}, process {old.get('pid')}) is writing "
                         f"into this folder now; wait for it or choose another folder")
    links = [f for f in existing if (path / f).is_symlink()]
    if links:  # a file written "into" a link lands wherever it points: a dataset, a user's folder
        raise InputError(f"{option} {folder}: {links[0]} is a symbolic link; we never write through links "
                         f"(even with --overwrite): remove it or choose another folder")
    if (path / MANIFEST).is_dir():
        raise InputError(f"{path / MANIFEST} is a folder; the manifest of our runs is a file: remove or rename it")
    state = {f: ownership_of(path, f, old) for f in existing}
    if old is None and legacy_names:
        state.update({f: "unhashed" for f in existing if f in legacy_names and state[f] == "foreign"
                      and not (path / f).is_symlink()})
    foreign, unhashed, unfinished = ([f for f, s in state.items() if s == kind]
                                     for kind in ("foreign", "unhashed", "unfinished"))
    if foreign:
        raise InputError(
            f"{option} {folder} holds {len(foreign)} file(s) that are not ours ({_names(foreign)}): no run of ours "
            f"wrote them, or they changed after it; we never replace or delete such files, even with --overwrite: "
            f"move them away or choose another path")
    if unhashed and not (overwrite or resume):
        raise InputError(
            f"{option} {folder} holds {len(unhashed)} file(s) that an earlier version or an unfinished run of ours "
            f"listed without a content hash ({_names(unhashed)}); pass --overwrite to replace them, or choose "
            f"another path")
    if unfinished and not resume:
        raise InputError(
            f"{option} {folder} holds {len(unfinished)} file(s) that a run of ours killed outright may have "
            f"written ({_names(unfinished)}); they carry no content hash, so they cannot be told from yours: "
            f"continue that run with --resume where the tool has one, or remove them yourself (even --overwrite "
            f"never does)")
    clash = [d for d in dirs if not (old and d in old["dirs"]) and matches(d, [p for p in patterns if not p.endswith("/")])]
    if clash:
        raise InputError(f"{option} {folder}: {clash[0]} is a folder that no run of ours made, where this run "
                         f"writes a file; move it away or choose another folder")
    inside: Dict[str, str] = {}
    outside: Dict[str, Optional[PathLike]] = {}
    for option_name, file in files.items():
        if file is None:
            continue
        check_path_given(option_name, file)
        r = real(file)
        if r == real(path):
            raise InputError(f"{option_name} {file} is also {option} {folder}: one path cannot hold two outputs")
        if is_within(r, real(path)):
            rel = r.relative_to(real(path)).as_posix()
            if matches(rel, patterns):
                raise InputError(f"{option_name} {file} lies where {option} {folder} writes its own files "
                                 f"({', '.join(patterns)}): choose another name")
            if rel in inside.values():
                raise InputError(f"{option_name} {file}: one file cannot hold two outputs")
            _check_single(option_name, file, True, set(), ownership=False)  # its ownership: the folder's, above
            inside[option_name] = rel
        else:
            outside[option_name] = file
    legacy = set(old["external"]) if old and old["format"] != FORMAT else set()
    singles = claim_files(outside, tool, overwrite=overwrite, register=False, dry_run=dry_run, _legacy_external=legacy)
    if dry_run:
        return None
    run = OutputFolder(path, tool, patterns=[*patterns, *inside.values()], files=singles,
                       command=[Path(sys.argv[0]).name, *sys.argv[1:]], started=time.strftime("%Y-%m-%dT%H:%M:%S"))
    ours = [f for f, s in state.items() if s in ("ours", "unhashed", "unfinished") and f != MANIFEST]
    if resume:
        run.kept = {f: (old["files"].get(f) if old else None) for f in ours if not TEMPORARY.match(f.rsplit("/", 1)[-1])}
        run.kept_dirs = set(old["dirs"]) if old else set()
    else:
        _remove(path, ours, old)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{option} {folder}: cannot create the folder ({e.strerror or e})") from None
    run.dirs_before = set(scan(path)[1]) - run.kept_dirs
    write_manifest(path, run.manifest(False, "running"))
    if register:
        on_exit(run.finish)
    return run


def _remove(folder: Path, ours: Sequence[str], old: Optional[dict]) -> None:
    """Delete an earlier run's files (never through a link), then the folders it made that are empty now."""
    for rel in ours:
        target = folder / rel
        if any(p.is_symlink() for p in [target, *target.parents] if is_within(p, folder) and p != folder):
            continue
        try:
            target.unlink(missing_ok=True)
        except OSError as e:
            raise InputError(f"{target}: cannot remove this file of an earlier run ({e.strerror or e})") from None
    made = set(old["dirs"] if old else []) | {rel.rsplit("/", 1)[0] for rel in ours if "/" in rel}
    for rel in sorted(made, key=lambda d: d.count("/"), reverse=True):
        parts = rel.split("/")
        for i in range(len(parts), 0, -1):  # a made folder's parents inside the folder, if empty
            d = folder.joinpath(*parts[:i])
            if d.is_symlink():
                break
            try:
                d.rmdir()
            except OSError:
                break


__all__ = ["MANIFEST", "FORMAT", "OVERWRITE_HELP", "OutputRefused", "OutputFolder", "OutputFiles", "VIDEO_SUFFIXES",
           "check_not_inputs", "check_path_given", "is_within", "check_video_output", "claim_files", "claim_folder",
           "file_record", "read_manifest", "real", "written_by_us"]
