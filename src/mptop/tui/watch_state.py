"""What the watch view keeps besides :class:`ViewState` (pure Python: no Textual).

* each connection's rate over the last :data:`SPARK_S` seconds (the cards' sparklines);
* closed connections for :data:`FADE_S` seconds after they left the dump, so their card fades out
  where it was instead of the list jumping;
* which connection an event-log entry is about: the core's event details name a subflow or a
  connection by its ``local → remote`` addresses, which are unique while the connection lives.

:meth:`WatchState.rows` is the list the top panel shows: filtered, sorted, the closing ones included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from mptop.core.history import History
from mptop.core.model import ConnectionSample, Record, Sample
from mptop.tui.state import WINDOW_S, ViewState
from mptop.tui.story import LogEntry
from mptop.tui.watch_query import WatchQuery

SortKey = Literal["rate", "down", "up", "bytes", "age"]
SORT_CYCLE: tuple[SortKey, ...] = ("rate", "down", "up", "bytes", "age")     # the `s` key steps through these
SPARK_S = 30.0          # seconds the cards' sparklines span (their rate history)
FADE_S = 3.0            # a closed connection's card stays this long (run time), fading
SMOOTH_S = 3.0          # sorting by rate uses the mean over this long, so cards do not swap every poll
PAIRS_MAX = 20_000      # addresses remembered for the event log (oldest connections forgotten first)

_ADDR = r"(?:\[[0-9A-Fa-f:.]+\]|[0-9.]+):\d+"
_PAIR = re.compile(rf"({_ADDR}) → ({_ADDR})")


@dataclass(slots=True)
class Row:
    """One card of the list: a live connection, or a closed one fading out (``closed_for`` seconds)."""

    conn: ConnectionSample
    closed_for: float | None = None

    @property
    def key(self) -> str:
        return f"c{self.conn.token}"


@dataclass(slots=True)
class Trend:
    """A connection's rate over the last :data:`SPARK_S` seconds, worked out once per sample (not
    per frame: `mptop watch` may list thousands of connections)."""

    points: tuple[tuple[float, float], ...] = ()      # (t, bit/s)
    smoothed: float = 0.0                             # mean over the last SMOOTH_S seconds
    peak: float = 0.0

    @classmethod
    def of(cls, history: History) -> Trend:
        points = tuple(history.points)
        last = points[-1][0] if points else 0.0
        recent = [v for t, v in points if t >= last - SMOOTH_S]
        return cls(points, sum(recent) / len(recent) if recent else 0.0, max((v for _, v in points), default=0.0))


@dataclass(slots=True)
class Listing:
    rows: list[Row]
    shown: int           # live connections that match the filter
    total: int           # live connections


class WatchState(ViewState):
    def __init__(self, window_s: float = WINDOW_S) -> None:
        super().__init__(window_s)
        self.rates: dict[int, History] = {}             # token -> (t, bit/s)
        self.trends: dict[int, Trend] = {}
        self.closed: dict[int, tuple[float, ConnectionSample]] = {}   # token -> (closed at, last sample)
        self.pairs: dict[str, int] = {}                 # "local → remote" -> token
        self._paired: dict[int, tuple[int, int]] = {}   # token -> (subflows, newest id) when last paired
        self._owners: dict[int, tuple[str, int | None]] = {}   # log entry key -> (its text, token)

    def ingest(self, record: Record) -> None:
        before = self.connections
        super().ingest(record)
        if isinstance(record, Sample):
            self._track(record, before)

    def _track(self, sample: Sample, before: list[ConnectionSample]) -> None:
        live = {c.token: c for c in sample.connections or [] if not c.closed}
        for conn in before:
            if conn.token not in live:
                self.closed[conn.token] = (sample.t, conn)
        for conn in sample.connections or []:
            if conn.closed:              # its last listing: the final bytes (fading from when it left)
                self.closed[conn.token] = (self.closed.get(conn.token, (sample.t, conn))[0], conn)
        for token in [k for k, (t, _) in self.closed.items() if sample.t - t > FADE_S or k in live]:
            del self.closed[token]
        for token, conn in live.items():
            history = self.rates.setdefault(token, History(SPARK_S))
            history.add(sample.t, conn.rate_bps)
            self.trends[token] = Trend.of(history)
            self._pair(conn)
        for token in [k for k in self.rates if k not in live and k not in self.closed]:
            del self.rates[token], self.trends[token], self._paired[token]
        while len(self.pairs) > PAIRS_MAX:
            del self.pairs[next(iter(self.pairs))]

    def _pair(self, conn: ConnectionSample) -> None:
        """Remember the connection's address pairs (again only when it has a new subflow: subflow
        ids only grow, so the count and the newest id tell)."""
        signature = (len(conn.subflows), max((s.id for s in conn.subflows), default=0))
        if self._paired.get(conn.token) != signature:
            self._paired[conn.token] = signature
            for local, remote in [(conn.local, conn.remote)] + [(s.local, s.remote) for s in conn.subflows]:
                self.pairs[f"{local} → {remote}"] = conn.token

    # -- queries -------------------------------------------------------------------------------
    def find(self, token: int) -> ConnectionSample | None:
        """A live connection, or a closed one still fading out."""
        return self.connection(token) or (self.closed[token][1] if token in self.closed else None)

    def trend(self, token: int) -> Trend:
        return self.trends.get(token) or Trend()

    def rows(self, query: WatchQuery, sort: SortKey) -> Listing:
        live = self.connections
        rows = [Row(c) for c in live if query.matches(c)]
        shown = len(rows)
        rows += [Row(c, self.now - t) for t, c in self.closed.values() if query.matches(c)]
        value = {
            "rate": lambda r: self.trend(r.conn.token).smoothed,
            "down": lambda r: r.conn.rx_bps,      # received now (↓), sent and acknowledged now (↑)
            "up": lambda r: r.conn.tx_bps,
            "bytes": lambda r: float(r.conn.bytes),
            "age": lambda r: r.conn.age_s,
        }[sort]
        rows.sort(key=lambda r: r.conn.token)            # ties keep a stable order
        rows.sort(key=value, reverse=True)
        return Listing(rows, shown, len(live))

    def owner(self, entry: LogEntry) -> int | None:
        """The connection a log entry is about (None: about the host, a path or an address)."""
        text = entry.text
        cached = self._owners.get(entry.key)
        if cached is not None and cached[0] == text:
            return cached[1]
        token = next((self.pairs[p] for p in (f"{a} → {b}" for a, b in _PAIR.findall(text)) if p in self.pairs),
                     None)
        if token is not None:             # unknown ones are asked again: their connection may show up later
            if len(self._owners) > 2 * len(self.story.entries):
                oldest = self.story.entries[0].key
                self._owners = {k: v for k, v in self._owners.items() if k >= oldest}
            self._owners[entry.key] = (text, token)
        return token
