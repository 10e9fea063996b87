"""What every command-line tool of the project shares: exit codes, the one-line error, interruption.

Exit codes (the README's table): 0 done; 1 work that failed or is partial (a benchmark sequence);
2 bad input (one line on stderr naming the file or option, never a traceback); 130 interrupted
(Ctrl-C); 143 terminated (SIGTERM, handled like Ctrl-C: `finally` blocks run, so temporary files are
removed and every file already written is whole). An OSError nobody turned into a user error (the disk
filling up, a folder where a file goes) is one line and exit code 1: the work failed, no traceback.

Exit hooks (`on_exit`): what must be recorded however a run ends (the output folders' manifests,
`seggpt.outputs`) registers a callable while the run is in progress; `run_cli` calls it with the exit
code (None for an unexpected exception) after the work, whichever way the work ended.

Torch-free: `--help` and input errors stay fast.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Callable, List, NoReturn, Optional, Tuple, Type

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's one-line errors: ``error: <prog>: <message> (see --help)``, exit code 2.

    argparse's own error prints the whole usage block first (6-15 lines); every CLI of the project
    builds its parser from this class instead, so a mistyped option reads like every other bad input.
    """

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


from seggpt.errors import InputError, Terminated  # noqa: E402 - the one home of the exceptions


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


#: one list of exit hooks per run_cli in progress (innermost last)
_EXIT_HOOKS: List[List[Callable[[Optional[int]], None]]] = []


def on_exit(hook: Callable[[Optional[int]], None]) -> bool:
    """Call `hook(exit code)` when the innermost `run_cli` in progress ends; False when none is (library use)."""
    if not _EXIT_HOOKS:
        return False
    _EXIT_HOOKS[-1].append(hook)
    return True


def _stop_while_starting(signum: int, frame: object) -> None:
    os.write(2, b"interrupted while starting: nothing was written\n")
    os._exit(EXIT_INTERRUPTED)


def quiet_start() -> None:
    """Ctrl-C while a CLI is still importing (torch takes seconds) ends with one line and exit 130, not a
    traceback through the import machinery. Called first by each CLI module run as ``__main__``;
    `run_cli` gives Ctrl-C back to Python (KeyboardInterrupt) when the work starts."""
    signal.signal(signal.SIGINT, _stop_while_starting)


def _ctrl_c_to_python() -> None:
    """End the quiet start: Ctrl-C raises KeyboardInterrupt again, for the work to unwind and report."""
    if signal.getsignal(signal.SIGINT) is _stop_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_module(name: str) -> int:
    """A console script's body (setup.cfg's entry points, e.g. ``vos-run``): the CLI module `name` run as
    ``python -m name`` runs it.

    A console script imports its module normally, so the module's own ``if __name__ == "__main__":
    quiet_start()`` never runs: here `quiet_start` comes first, then the import (torch: seconds), then
    ``main()`` with Ctrl-C given back to Python (as `run_cli` does for the work; a CLI whose main does not
    go through `run_cli`, such as the app, gets Python's own Ctrl-C as under ``python -m``). Nothing else:
    the weights load where ``main()`` loads them, through the same checked loader.
    """
    import importlib

    quiet_start()
    module = importlib.import_module(name)
    _ctrl_c_to_python()
    return module.main()


def run_cli(work: Callable[[], int], user_errors: Tuple[Type[BaseException], ...] = (),
            interrupted: str = "only complete files were written") -> int:
    """Run a CLI's work and turn the ways it can end into exit codes (see the module docstring): the one
    place where an exception becomes an exit code (`seggpt.errors` lists the classes)."""
    _ctrl_c_to_python()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    hooks: List[Callable[[Optional[int]], None]] = []
    _EXIT_HOOKS.append(hooks)
    code: Optional[int] = None
    try:
        code = work()
    except (InputError, *user_errors) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        code = EXIT_USAGE
    except Terminated:
        print(f"terminated: {interrupted}", file=sys.stderr)
        code = EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except OSError as e:  # the disk, the file system: the work failed, the input may be fine
        print(f"error: {_one_line(e)}", file=sys.stderr)
        code = EXIT_FAILED
    finally:
        _EXIT_HOOKS.remove(hooks)
        for hook in reversed(hooks):
            try:
                hook(code)
            except Exception as e:  # a hook must not hide how the work ended
                print(f"warning: {str(e).strip() or type(e).__name__}", file=sys.stderr)
        signal.signal(signal.SIGTERM, previous)
    return code


def _one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type where it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


__all__ = ["ArgumentParser", "quiet_start", "run_module", "run_cli", "on_exit", "InputError", "Terminated", "EXIT_OK",
           "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "EXIT_TERMINATED"]
