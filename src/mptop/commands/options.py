"""Option value types shared by the commands (argparse `type=` callables with one-line errors), and the
one-line error a command ends with."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def _bounded(kind: Callable[[str], N], what: str, zero: bool = False) -> Callable[[str], N]:
    """A number of ``kind`` above 0 (``zero``: 0 or above), finite."""
    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        above = value >= 0 if zero else value > 0
        if not (above and value < float("inf")):        # also refuses nan
            raise argparse.ArgumentTypeError(f"must be {'≥' if zero else '>'} 0: {text!r}")
        return value
    return parse


positive_float = _bounded(float, "a number")
positive_int = _bounded(int, "a whole number")
non_negative_float = _bounded(float, "a number", zero=True)     # e.g. the benches' --rest 0: no pause
count = _bounded(int, "a whole number", zero=True)              # e.g. --max-redirects 0: follow none


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
