"""One module per subcommand: ``add_arguments(parser)`` and ``run(args) -> exit code``."""

from __future__ import annotations

import sys


def fail(command: str, message: str, code: int = 1) -> int:
    """``mptop COMMAND: message`` on stderr, one line; the exit code to return."""
    print(f"mptop {command}: {message}", file=sys.stderr)
    return code
