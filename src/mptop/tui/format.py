"""Numbers and words as the TUI prints them (plain strings; no Textual).

Rates, sizes and durations come from :mod:`mptop.core.units`, so every view words them alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mptop.core.badge import badge as badge  # re-exported: the TUI's cards and titles
from mptop.core.safe_text import escape_controls
from mptop.core.units import format_bytes, format_duration, format_rate

if TYPE_CHECKING:
    from mptop.core.model import SubflowSample

Units = Literal["bits", "bytes"]



def rate(bps: float, units: Units = "bits") -> str:
    """``48.2 Mbit/s`` or, in bytes, ``6.0 MB/s`` (the wording every mptop view shares)."""
    return format_rate(max(0.0, bps), units)


def size(count: int | float) -> str:
    return format_bytes(count)


def duration(seconds: float | None) -> str:
    return format_duration(seconds)


def stamp(t: float) -> str:
    """A run-relative time stamp for the event log: ``00:12.3`` (or ``1:02:03`` past an hour)."""
    tenths = int(max(0.0, t) * 10 + 0.5)
    seconds, tenth = divmod(tenths, 10)
    minutes, secs = divmod(seconds, 60)
    if minutes >= 60:
        return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}.{tenth}"


def rtt(ms: float | None) -> str:
    """A round-trip time; "—" when unknown (no estimate yet, or the subflow has ended)."""
    if ms is None or ms <= 0:
        return "—"
    return f"{ms:.2f} ms" if ms < 1 else f"{ms:.1f} ms"


def percent(fraction: float) -> str:
    return f"{round(max(0.0, min(1.0, fraction)) * 100):d} %"


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis when cut."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…" if width > 0 else ""


def short_url(url: str, width: int) -> str:
    """The URL without its scheme, fitted to ``width``: the host stays whole when it can, and the
    tail of the path starts at a segment (``192.0.2.1/…/file.iso``)."""
    text = escape_controls(url.split("://", 1)[-1])
    if len(text) <= width or width < 5:
        return text[: max(width, 0)]
    host, slash, path = text.partition("/")
    room = width - len(host) - 2                       # what "host/…" leaves for the tail
    if slash and room >= 6:
        tail = path[-room:]
        cut = tail.find("/")
        if 0 <= cut <= len(tail) - 5:                  # start at a segment if one begins early enough
            tail = tail[cut:]
        return f"{host}/…{tail}"
    head = max(1, (width - 1) * 2 // 5)
    tail_len = width - 1 - head
    return f"{text[:head]}…{text[-tail_len:]}"


def subflow_flags(subflow: SubflowSample) -> str:
    """``initial``/``join`` and ``backup``; a closed subflow just says ``closed`` (its row is dimmed).

    At most 11 characters ("init backup"), the width of the subflows table's flags column.
    """
    role = "closed" if subflow.closed else "join" if subflow.join else "initial"
    if subflow.backup:
        return f"{role[:4] if role == 'initial' else role} backup"
    return role
