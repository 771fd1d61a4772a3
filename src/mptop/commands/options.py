"""Option value types shared by the commands (argparse `type=` callables with one-line errors)."""

from __future__ import annotations

import argparse
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


def count(text: str) -> int:
    """A whole number ≥ 0 (e.g. --max-redirects 0: follow none)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0: {text!r}")
    return value


def port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}")
    return value
