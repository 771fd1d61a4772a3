"""Counters into rates, on a monotonic clock.

Kernel byte counters (``tcpi_bytes_received``, ``mptcpi_bytes_received``) only grow, except when
the thing behind them is replaced: a new socket, or a new subflow that reuses an id.  A counter
that goes backwards is therefore a *reset* (the new counter started from zero), never a
negative rate.  A zero-length interval (two reads at the same clock value) cannot give a rate:
the last rate is kept and the bytes are counted on the next interval.

One rate definition everywhere a rate is shown: :class:`CounterRate` gives the bytes counted over
the last :data:`RATE_WINDOW_S` (about 1 s: the poll nearest to a second back) divided by that
time — "1 s avg".  Over 0.25 s, in-order byte counters swing up to 2× the link rate right after a
loss is repaired (docs/measured.md); over a second they agree with the interface counters.  Sums of
such rates read at the same polls (paths, a transfer's subflows) are the same kind of rate.
:class:`Ewma` smooths any series (for an ETA), and nothing mixes the two.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

RATE_WINDOW_S = 1.0
RATE_LABEL = "1 s avg"        # how views name the definition


def counter_delta(previous: int, current: int) -> int:
    """What a counter gained from ``previous`` to ``current``; a counter that went backwards
    was reset (a new socket or subflow), so everything it now holds is new."""
    return current - previous if current >= previous else current


@dataclass(slots=True)
class CounterRate:
    """One counter's rate (units per second, over the last ``window_s``) and everything it has
    counted, resets included.

    The first reading has no interval: its value counts towards :attr:`total` (bytes received
    before we first looked are still bytes of this counter) but the rate stays 0.  While less than
    a window has passed, the rate covers the time since the first reading.  With polls slower than
    the window, it is the rate of the last interval.
    """

    window_s: float = RATE_WINDOW_S
    rate: float = 0.0
    total: int = 0
    _value: int | None = None
    _t: float | None = None
    _points: deque[tuple[float, int]] = field(default_factory=deque)    # (t, total) back to the window
    _final: bool = False

    def update(self, t: float, value: int) -> int:
        """Feed the counter's value read at monotonic time ``t``; returns the increment counted."""
        if self._final and self._value is not None and value < self._value:
            return 0             # below the socket's last word (final()): an older reading, not a reset
        if self._value is None or self._t is None:
            self._value, self._t = value, t
            self.total += value
            self._points.append((t, self.total))
            return value
        dt = t - self._t
        if dt <= 0:
            # No interval to divide by: keep the last rate and the old baseline, so these bytes
            # are counted (and rated) with the next real interval.
            return 0
        delta = counter_delta(self._value, value)
        self.total += delta
        self._value, self._t = value, t
        points = self._points
        points.append((t, self.total))
        edge = t - 0.9 * self.window_s       # polls jitter: the one nearest a window back starts it
        while len(points) > 2 and points[1][0] <= edge:
            points.popleft()
        t0, n0 = points[0]
        if t > t0:                           # else the first reading since idle(): the rate stays 0
            self.rate = (self.total - n0) / (t - t0)
        return delta

    def final(self, value: int) -> int:
        """The counter's last value, read after it went away (a destroyed subflow's): counted into
        :attr:`total`, no rate; returns the increment."""
        delta = value if self._value is None else counter_delta(self._value, value)
        self.total += delta
        self._value = value
        self._final = True
        self.idle()
        return delta

    def idle(self) -> None:
        """The counter is gone (closed subflow): its rate is 0 from now on, its total stays."""
        self.rate = 0.0
        self._points.clear()


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted moving average with a time constant, robust to uneven intervals.

    ``alpha = 1 - exp(-dt / tau)``: a sample after a long gap weighs more than one after a short
    gap, so the result does not depend on the poll interval.
    """

    tau_s: float = 2.0
    value: float | None = None
    _t: float | None = None

    def update(self, t: float, x: float) -> float:
        if self.value is None or self._t is None:
            self.value, self._t = x, t
            return x
        dt = t - self._t
        if dt <= 0:
            return self.value
        alpha = 1.0 - math.exp(-dt / self.tau_s)
        self.value += alpha * (x - self.value)
        self._t = t
        return self.value


def eta_seconds(done: int, total: int | None, rate_bytes_per_s: float) -> float | None:
    """Seconds left at the given rate; ``None`` when the size is unknown or nothing is moving."""
    if total is None or rate_bytes_per_s <= 0:
        return None
    return max(total - done, 0) / rate_bytes_per_s
