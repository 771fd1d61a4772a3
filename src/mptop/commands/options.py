"""Option value types shared by the commands (argparse `type=` callables with one-line errors), and the
one-line error a command ends with."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def _positive(kind: Callable[[str], N], what: str) -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not 0 < value < float("inf"):     # also refuses nan and inf
            raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
        return value
    return parse


positive_float = _positive(float, "a number")
positive_int = _positive(int, "a whole number")


def port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}")
    return value


def fail(command: str, message: str, code: int = 1) -> int:
    """``mptop COMMAND: message`` on stderr; returns the exit code (1: it failed, 2: a usage error)."""
    print(f"mptop {command}: {message}", file=sys.stderr)
    return code
