"""The two errors every layer may raise for what a user gave: torch-free, importable from anywhere.

* `UserError`: a problem with the user's input, reported by every command-line tool as one line and
  exit code 2 (`seggpt.cli.run_cli`).
* `InputError`: a bad argument to a library call or a bad input file (a NaN mask, a channels-first
  tensor, a FIFO given as a video); its message names the argument or the file. It is a `UserError`
  (the CLIs report it as one line) and a `ValueError` (what Python code expects of a bad value).
  The errors of the layers above (`vos.objects.EngineError`, `seggpt.masks.MaskError`, ...) derive
  from it, so ``except InputError`` catches every bad input of a library call.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Union


class UserError(Exception):
    """A problem with the user's input: reported as one line, exit code 2."""


class InputError(UserError, ValueError):
    """A bad argument or input file of a library call; the message names it."""


def check_input_file(path: Union[str, "os.PathLike[str]"], what: str = "file") -> Path:
    """`path` as a Path when it names a regular file (links followed); else InputError, one line.

    Never opens it: a FIFO, a device or a socket would block the reader (or stream forever), so
    they are refused before anything reads them. An empty path is an error, never the current folder.
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise InputError(f"{what}: an empty path; name a {what}")
    p = Path(text)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputError(f"{text}: no such file") from None
    except OSError as e:
        raise InputError(f"{text}: cannot be read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{text}: is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise InputError(f"{text}: is {kind}, not a regular file; give the {what} as a file (inputs are never "
                         f"read from pipes or devices)")
    return p


__all__ = ["UserError", "InputError", "check_input_file"]


class WeightsError(InputError):
    """A weights file that cannot be found, read or matched to the model; the message names the file."""
