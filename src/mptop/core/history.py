"""Bounded rate history for charts: the last ``window_s`` seconds, whatever the run time.

Every series is a ``deque(maxlen=…)`` of ``(t, bits_per_second)`` points, one per poll, so memory
stays flat however long mptop runs.  A finished transfer's series is dropped once its last point
has scrolled out of the window.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from mptop.core.model import Sample

Series = deque[tuple[float, float]]


@dataclass(slots=True)
class History:
    """``total`` (all paths), ``paths[iface]`` and ``transfers[id]`` rate series (bit/s)."""

    window_s: float = 60.0
    interval: float = 0.25
    total: Series = field(init=False)
    paths: dict[str, Series] = field(default_factory=dict, init=False)
    transfers: dict[int, Series] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.total = self._series()

    @property
    def maxlen(self) -> int:
        return math.ceil(self.window_s / self.interval) + 1

    def _series(self) -> Series:
        return deque(maxlen=self.maxlen)

    def add(self, sample: Sample) -> None:
        t = sample.t
        self.total.append((t, sum(p.rate_bps for p in sample.paths.values())))
        for iface, path in sample.paths.items():
            self.paths.setdefault(iface, self._series()).append((t, path.rate_bps))
        for transfer in sample.transfers:
            finished = transfer.state in ("done", "failed")
            series = self.transfers.get(transfer.id)
            if series is None:
                if finished:
                    continue      # finished before it was charted, or already scrolled out
                series = self.transfers[transfer.id] = self._series()
            elif finished and series[-1][1] == 0.0:
                continue          # finished and down to zero: let it scroll out
            series.append((t, transfer.rate_bps))
        for tid in [tid for tid, s in self.transfers.items() if s and s[-1][0] < t - self.window_s]:
            del self.transfers[tid]
