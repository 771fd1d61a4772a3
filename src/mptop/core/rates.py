"""Counters into rates, on a monotonic clock.

Kernel byte counters (``tcpi_bytes_received``, ``mptcpi_bytes_received``) only grow, except when
the thing behind them is replaced: a new socket, or a new subflow that reuses an id.  A counter
that goes backwards is therefore a *reset* (the new counter started from zero), never a
negative rate.  A zero-length interval (two reads at the same clock value) cannot give a rate:
the last rate is kept and the bytes are counted on the next interval.

Smoothing is separate on purpose: :class:`CounterRate` gives the raw rate of the last interval,
:class:`Ewma` smooths any series (for an ETA or a calm number), and nothing mixes the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def counter_delta(previous: int, current: int) -> int:
    """What a counter gained from ``previous`` to ``current``; a counter that went backwards
    was reset (a new socket or subflow), so everything it now holds is new."""
    return current - previous if current >= previous else current


@dataclass(slots=True)
class CounterRate:
    """One counter's raw rate (units per second) and everything it has counted, resets included.

    The first reading has no interval: its value counts towards :attr:`total` (bytes received
    before we first looked are still bytes of this counter) but the rate stays 0.
    """

    rate: float = 0.0
    total: int = 0
    _value: int | None = None
    _t: float | None = None

    def update(self, t: float, value: int) -> int:
        """Feed the counter's value read at monotonic time ``t``; returns the increment counted."""
        if self._value is None or self._t is None:
            self._value, self._t = value, t
            self.total += value
            return value
        dt = t - self._t
        if dt <= 0:
            # No interval to divide by: keep the last rate and the old baseline, so these bytes
            # are counted (and rated) with the next real interval.
            return 0
        delta = counter_delta(self._value, value)
        self.rate = delta / dt
        self.total += delta
        self._value, self._t = value, t
        return delta

    def idle(self) -> None:
        """The counter is gone (closed subflow): its rate is 0 from now on, its total stays."""
        self.rate = 0.0


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
