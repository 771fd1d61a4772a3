"""One time series for charts and sparklines: ``(t, value)`` points of the last ``window_s`` seconds.

The views keep their rate histories in it: the TUI's path and total charts
(:class:`mptop.tui.state.ViewState`) and each connection's sparkline
(:class:`mptop.tui.watch_state.WatchState`).  A point leaves once it is older than the window plus
:data:`MARGIN_S` (so a chart's left edge still has a point to draw from), so memory stays flat
however long mptop runs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MARGIN_S = 1.0

Point = tuple[float, float]     # (seconds since the run started, value)


@dataclass(slots=True)
class History:
    """The points of one series, oldest first, trimmed to ``window_s`` (+ :data:`MARGIN_S`) as they come."""

    window_s: float
    points: deque[Point] = field(default_factory=deque)

    def add(self, t: float, value: float) -> None:
        self.points.append((t, value))
        while self.points[0][0] < t - self.window_s - MARGIN_S:
            self.points.popleft()
