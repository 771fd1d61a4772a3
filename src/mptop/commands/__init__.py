"""One module per subcommand: ``add_arguments(parser)`` and ``run(args) -> exit code``."""

from __future__ import annotations

import gc
import sys


def fail(command: str, message: str, code: int = 1) -> int:
    """``mptop COMMAND: message`` on stderr, one line; the exit code to return."""
    print(f"mptop {command}: {message}", file=sys.stderr)
    return code


class ImportsWithoutCollections:
    """``with ImportsWithoutCollections(): import …``: a command's heavy imports (aiohttp, Textual) with
    the cyclic garbage collector paused, and what they made frozen after (never scanned again).

    Modules make objects that live as long as the process; the collector's passes over them while
    they load free nothing and cost about 10 ms of ``get``'s start-up (bench/startup.py).  Collection
    resumes as the block ends, before the command does its work.
    """

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        gc.freeze()
        if self._was_enabled:
            gc.enable()
