"""Every exception class of the project, each mapped once to how a command-line tool ends (torch-free).

| class | raised for | a CLI ends (`seggpt.cli.run_cli`) |
|---|---|---|
| `InputError` (a `ValueError`) | what the user gave cannot be used: an option, an argument of a library call, an input file (a NaN mask, a channels-first tensor, a FIFO given as a video); the message names it | one line, exit 2 |
| `ConfigError` | a setting, config file or override (its message names the source) | as InputError |
| `WeightsError` | a checkpoint that cannot be found, read or matched to the model | as InputError |
| `VideoError` | a frame source that cannot be opened or read (names the file and the frame) | as InputError |
| `EngineError` | bad use of the engine: an unknown object, a frame out of range, a change during a propagation | as InputError |
| `OutputError` (an `OSError`) | a destination that cannot be written (a full disk, a missing folder) | one line, exit 1: the work failed, the input may be fine |
| `Terminated` (a `KeyboardInterrupt`) | SIGTERM, raised in the main thread so the work unwinds as on Ctrl-C | exit 143 (Ctrl-C: 130) |
| `Cancelled` | the user stopped an adaptation or an export (the app's Cancel); nothing of it is kept | never reaches a CLI: its caller reports it |

ConfigError, WeightsError, VideoError and EngineError derive from InputError, so ``except InputError``
catches every bad input of a library call (and ``except ValueError`` does, for code that knows nothing of
this module); they are classes of their own only where a caller tells them apart (the settings loader
names the source of a ConfigError, a propagation ends at a VideoError after the frames before it, ...).
A destination that cannot be written before any work starts is the user's to fix: the CLIs check their
folders first and say it as an InputError (exit 2); mid-run it is failed work (exit 1). The names the
modules used before (`seggpt.masks.MaskError`, `vos.io.prompts.PromptError`, `seggpt.outputs.OutputRefused`,
...) are aliases of InputError kept where they were, so a caller that imports them still works.

`is_integer` is the one test for an integer argument or setting, here at the bottom so every layer
uses it.
"""
from __future__ import annotations

import numbers
import os
import stat
from pathlib import Path
from typing import Union


class InputError(ValueError):
    """What the user gave cannot be used (an option, an argument, an input file); the message names it."""


#: the name the command-line tools used for InputError: an alias, not another class
UserError = InputError


class ConfigError(InputError):
    """A setting, config file or override that cannot be used (one-line message naming its source)."""


class WeightsError(InputError):
    """A weights file that cannot be found, read or matched to the model; the message names the file."""


class VideoError(InputError):
    """A frame source cannot be opened or read; the message names the file (or input) and the frame."""


class EngineError(InputError):
    """Bad use of the engine (one-line message): unknown object, frame out of range, bad mask."""


class OutputError(OSError):
    """A destination cannot be written; the message names the path."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the work unwinds as it does on Ctrl-C."""


class Cancelled(Exception):
    """The user stopped the work (an adaptation, an export); what it made is dropped, the message says how far it got."""


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


def is_integer(value: object) -> bool:
    """An integer (numpy's too) and not a bool: True would otherwise pass as 1 (an id, an index, a count).
    numpy's bool is no `numbers.Integral`; Python's is, hence the second test."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


__all__ = ["InputError", "UserError", "ConfigError", "WeightsError", "VideoError", "EngineError", "OutputError", "Terminated", "Cancelled",
           "check_input_file", "is_integer"]
