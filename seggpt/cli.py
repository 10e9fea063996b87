"""What every command-line tool of the project shares: exit codes, the one-line error, interruption.

Exit codes (the README's table): 0 done; 1 work that failed or is partial (a benchmark sequence);
2 bad input (one line on stderr naming the file or option, never a traceback); 130 interrupted
(Ctrl-C); 143 terminated (SIGTERM, handled like Ctrl-C: `finally` blocks run, so temporary files are
removed and every file already written is whole).

Torch-free: `--help` and input errors stay fast.
"""
from __future__ import annotations

import signal
import sys
from typing import Callable, Tuple, Type

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class UserError(Exception):
    """A problem with the user's input: reported as one line, exit code 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the work unwinds as it does on Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def run_cli(work: Callable[[], int], user_errors: Tuple[Type[BaseException], ...] = (),
            interrupted: str = "only complete files were written") -> int:
    """Run a CLI's work and turn the ways it can end into exit codes (see the module docstring)."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return work()
    except (UserError, *user_errors) as e:
        print(f"error: {str(e).strip() or type(e).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print(f"terminated: {interrupted}", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["run_cli", "UserError", "Terminated", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED",
           "EXIT_TERMINATED"]
