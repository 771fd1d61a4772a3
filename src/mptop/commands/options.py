"""Option value types shared by the commands (argparse `type=` callables with one-line errors), and the
one-line error a command ends with."""

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


def theme_name(text: str) -> str:
    from textual.theme import BUILTIN_THEMES

    if text not in BUILTIN_THEMES:
        raise argparse.ArgumentTypeError(f"no theme {text!r}; choose one of: {', '.join(sorted(BUILTIN_THEMES))}")
    return text


def add_display_arguments(parser: argparse.ArgumentParser, interval: float | None = None) -> None:
    """--theme, --units (--bytes) and, with a default ``interval``, --interval.  Left out, each comes
    from the config file (:mod:`mptop.config`), else the default; given, it is kept there for next time."""
    parser.add_argument("--theme", type=theme_name, metavar="NAME",
                        help="the TUI's colour theme, e.g. nord, ansi-dark (kept for next time)")
    parser.add_argument("--units", dest="unit", choices=("bits", "bytes"),
                        help="rates in bit/s (default) or B/s (kept for next time)")
    parser.add_argument("--bytes", dest="unit", action="store_const", const="bytes", help="same as --units bytes")
    if interval is not None:
        parser.add_argument("--interval", type=positive_float, metavar="S",
                            help=f"sampling interval in seconds (default {interval:g}; kept for next time)")
        parser.set_defaults(_interval_default=interval)
