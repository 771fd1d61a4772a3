"""`mptop run` in words: a line per event while CMD runs (``--headless``), and the summary at its end."""

from __future__ import annotations

import shlex
from typing import IO

from mptop.core.model import ConnectionSummary, Event, Record, Sample, Summary
from mptop.core.safe_text import escape_controls
from mptop.core.units import format_bytes, format_duration
from mptop.tui.format import clip

SHOWN_EVENTS = frozenset({"subflow_up", "subflow_down", "fallback", "path_stalled", "path_recovered",
                          "link_down", "link_up", "subflow_missing", "connection_closed"})


def _who(process: str | None, local: str, remote: str) -> str:
    return escape_controls(f"{process + ' ' if process else ''}{local} → {remote}")


class EventLines:
    """A sink: each new connection of CMD and each event about it, as one line on ``stream`` (stderr:
    CMD keeps stdout, and its own lines mix with these in order)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._seen: set[int] = set()

    def __call__(self, record: Record) -> None:
        if isinstance(record, Sample):
            for conn in record.connections or []:
                if conn.token not in self._seen:
                    self._seen.add(conn.token)
                    self._line(record.t, f"connection {_who(conn.process, conn.local, conn.remote)} ({conn.status})")
        elif isinstance(record, Event) and record.kind in SHOWN_EVENTS:
            self._line(record.t, escape_controls(record.detail))

    def _line(self, t: float, text: str) -> None:
        try:
            print(f"mptop: {t:6.1f} s  {text}", file=self.stream, flush=True)
        except (BrokenPipeError, ValueError):
            pass


def summary_lines(summary: Summary, labels: dict[str, str]) -> list[str]:
    """What ``mptop run`` prints when CMD has ended: the exit, each connection's bytes per path, its
    fallback, each outage."""
    name = escape_controls(shlex.join(summary.command or []))
    conns = summary.connections or []
    count = f"{len(conns)} MPTCP connection{'s' if len(conns) != 1 else ''}"
    lines = [f"mptop run: `{clip(name, 60)}` exited with code {summary.exit_code} after "
             f"{format_duration(summary.duration_s)} · {count}"]
    lines += [_connection_line(c, labels) for c in conns]
    fallbacks = [c for c in conns if c.status == "fallback" or c.fallback]
    lines.append("  fallbacks: " + ("none" if not fallbacks else
                                    "; ".join(f"{_who(c.process, c.local, c.remote)}: "
                                              f"{escape_controls(c.fallback or 'fell back to TCP')}"
                                              for c in fallbacks)))
    outages = summary.outages or []
    words = {"stalled": "stalled", "link_down": "link down"}
    lines.append("  outages: " + ("none" if not outages else "; ".join(
        f"{escape_controls(o.path)} {words[o.kind]} at {format_duration(o.start_s)} "
        f"{'for ' + format_duration(o.duration_s) if o.duration_s is not None else 'until the end'}"
        for o in outages)))
    return lines


def _connection_line(c: ConnectionSummary, labels: dict[str, str]) -> str:
    total = sum(c.path_bytes.values())
    paths = " · ".join(
        f"{escape_controls(labels.get(iface, iface))} ({escape_controls(iface)}) {format_bytes(n)}"
        + (f" {n / total:.0%}" if total else "")
        for iface, n in sorted(c.path_bytes.items(), key=lambda kv: -kv[1]))
    who = _who(c.process, c.local, c.remote)
    return f"  {who} · {c.status} · {format_bytes(c.bytes)}: {paths or 'no subflow seen'}"
