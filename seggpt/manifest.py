"""The manifest of an output folder: which files a run of ours wrote there, and whether each still is ours.

The rules it serves are `seggpt.outputs`' (see its docstring): a file is ours only while it holds
what we wrote, by its size and SHA-256 recorded in the folder's ``.seggpt-vos-manifest.json`` when
the run ended; a manifest that does not parse, has an unknown format or lists a path outside its
folder counts as none; links are never followed. This module reads and writes manifests and tells,
file by file, "ours", "unhashed", "unfinished" or "foreign" (`ownership_of`); `seggpt.outputs` decides
what a claim refuses, keeps or removes.

Torch-free, like `seggpt.cli`.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import socket
import stat
import time
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

from seggpt.errors import InputError, is_integer

MANIFEST = ".seggpt-vos-manifest.json"
FORMAT = "seggpt-vos-manifest/2"
#: earlier formats still read: their files carry no hash, so they count as ours only with --overwrite
LEGACY_FORMATS = ("seggpt-vos-manifest/1",)
#: the hidden temporary names our writers use (`seggpt.io.atomic_path`: ".<stem>.<8 hex>.tmp[.suffix]";
#: the write probe ".vos-write-test-<8>"; the manifest's ".<manifest>.<pid><8 digits>.tmp"): one a killed
#: run left behind carries no hash, so it counts as ours only in a folder of ours, with --overwrite
TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp(\.[0-9A-Za-z]+)?$|^\.vos-write-test-[0-9A-Za-z_]{8}$"
                       r"|^\.\.seggpt-vos-manifest\.json\.[0-9]+\.tmp$")

PathLike = Union[str, "os.PathLike[str]"]
#: a file's record in a manifest: {"size": bytes, "sha256": hex}, or None when listed without a hash
Record = Optional[Dict[str, object]]


# ---------------------------------------------------------------------------------------------- records


def file_record(path: PathLike) -> Record:
    """{"size", "sha256"} of a regular file (never through a link), or None when it is not one."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return {"size": st.st_size, "sha256": digest.hexdigest()}


def unchanged(path: Path, record: Record) -> bool:
    """Whether the file at `path` still holds what `record` says we wrote (size first: cheap)."""
    if not isinstance(record, dict):
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != record.get("size"):
        return False
    now = file_record(path)
    return now is not None and now["sha256"] == record.get("sha256")


# ---------------------------------------------------------------------------------------------- manifest


def _safe_rel(rel: object) -> bool:
    """A relative POSIX path that stays inside its folder."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel or rel.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def _valid_record(record: object) -> bool:
    return record is None or (isinstance(record, dict) and is_integer(record.get("size"))
                              and isinstance(record.get("sha256"), str) and len(record["sha256"]) == 64)


def read_manifest(folder: PathLike) -> Optional[dict]:
    """The manifest of a folder in the current form, or None (none, unreadable, unknown, or unsafe).

    ``files`` maps each relative path to its record (None: listed without a hash, by format 1).
    """
    path = Path(os.path.expanduser(str(folder))) / MANIFEST
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: a hostile nesting of brackets
        return None
    if not isinstance(data, dict) or data.get("format") not in (FORMAT, *LEGACY_FORMATS):
        return None
    for key in ("dirs", "patterns", "external"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None
        data[key] = value
    files = data.get("files", {})
    if data["format"] != FORMAT:  # format 1: a list of names, no hashes
        if not isinstance(files, list):
            return None
        files = {rel: None for rel in files}
    if (not isinstance(files, dict) or not all(_safe_rel(k) and _valid_record(v) for k, v in files.items())
            or not all(_safe_rel(d) for d in data["dirs"])):
        return None
    data["files"] = files
    data["claimed"] = bool(data.get("claimed", True))
    data["legacy"] = data["format"] != FORMAT
    return data


def write_manifest(folder: Path, data: dict) -> None:
    path = folder / MANIFEST
    if path.is_dir() or path.is_symlink():  # never ours: the claim refuses such a folder
        raise InputError(f"{path} is a folder or a link; the manifest of our runs is a file: remove or rename it")
    tmp = folder / f".{MANIFEST}.{os.getpid()}{int(time.time() * 1e6) % 10 ** 8:08d}.tmp"
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def scan(folder: Path) -> Tuple[List[str], List[str]]:
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


def matches(rel: str, patterns: Iterable[str]) -> bool:
    """`dir/` is everything under dir; other patterns match names at the top (`*.png`) or paths."""
    return any(rel.startswith(pat) if pat.endswith("/")
               else ("/" not in rel or "/" in pat) and fnmatch.fnmatchcase(rel, pat) for pat in patterns)


def ownership_of(folder: Path, rel: str, manifest: Optional[dict]) -> str:
    """"ours" (proven by its hash, or our bookkeeping), "unhashed" (listed without a hash by an earlier
    version), "unfinished" (left by a run killed outright: no hash, known by its patterns) or "foreign"."""
    if os.path.islink(folder / rel):
        return "foreign"
    if rel == MANIFEST:
        return "ours"
    if manifest is None:
        return "foreign"
    running = manifest.get("status") == "running"  # a run killed outright (a live one is refused first)
    # a file we listed with no hash: a killed run's, an earlier version's (format 1), else none of ours
    without_hash = "unfinished" if running else "unhashed" if manifest["legacy"] else "foreign"
    # what a killed run's writer left: no hash to tell it from a user's file
    if TEMPORARY.match(rel.rsplit("/", 1)[-1]):
        return without_hash if manifest["claimed"] else "foreign"
    killed = running and manifest["claimed"] and matches(rel, manifest["patterns"])
    if rel in manifest["files"]:
        record = manifest["files"][rel]
        if record is None:  # no hash: format 1, or kept by a resumed run that was killed
            return without_hash
        if unchanged(folder / rel, record):
            return "ours"
    # changed since we listed it (by a person, or by the run that was killed before it could say so), or
    # not listed: a run killed outright, what it was about to write is known by its patterns only
    return "unfinished" if killed else "foreign"


def written_by_us(folder: PathLike, rel: str) -> bool:
    """Whether `folder/rel` still holds what a run of ours wrote there (see the module docstring)."""
    return ownership_of(Path(os.path.expanduser(str(folder))), rel, read_manifest(folder)) == "ours"


def record_in_folder(folder: Path, records: Mapping[str, Record], tool: str) -> None:
    """Add files we wrote into `folder` (not claimed as a whole) to its manifest."""
    data = read_manifest(folder) or {"format": FORMAT, "claimed": False, "tool": tool, "files": {}, "dirs": [],
                                     "patterns": []}
    data["format"] = FORMAT
    data["files"] = {**data["files"], **records}
    data.pop("external", None)
    write_manifest(folder, data)


def process_alive(manifest: dict) -> bool:
    """Whether the process that wrote a "running" manifest still runs (on this machine; elsewhere: unknown, no)."""
    pid = manifest.get("pid")
    if manifest.get("host") != socket.gethostname() or not is_integer(pid) or pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


__all__ = ["MANIFEST", "FORMAT", "LEGACY_FORMATS", "TEMPORARY", "PathLike", "Record", "file_record", "unchanged",
           "read_manifest", "write_manifest", "scan", "matches", "ownership_of", "written_by_us", "record_in_folder",
           "process_alive"]
