"""Whether mptop runs in a terminal: the TUI needs one (it reads keys on stdin and draws on stderr;
stdout may carry a download).  Without one — cron, a script, ``</dev/null >out 2>err`` — a TUI would
write escape codes into files and wait for keys that never come."""

from __future__ import annotations

import os
import sys


def served() -> bool:
    """`mptop serve` started this process for a browser tab: Textual draws through textual-serve's web
    driver (named in TEXTUAL_DRIVER) on stdin/stdout, which are pipes to the server, not a terminal."""
    return os.environ.get("TEXTUAL_DRIVER") == "textual.drivers.web_driver:WebDriver"


def interactive() -> bool:
    """stdin, stdout and stderr are all terminals, or a browser tab is (:func:`served`)."""
    if served():
        return True
    try:
        return all(os.isatty(fd) for fd in (0, 1, 2))
    except OSError:
        return False


def no_terminal(command: str, instead: str) -> int:
    """One line saying what to run without a terminal; exit status 2."""
    print(f"mptop {command}: not a terminal (stdin, stdout and stderr must be one for the TUI); {instead}",
          file=sys.stderr)
    return 2
