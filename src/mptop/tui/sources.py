"""Where the app's records come from: any async iterable of records is a source.

A live source is the sampler (an async iterator of Sample/Event records, first a HostInfo);
:class:`ReplaySource` plays a recording at its own pace, with pause and speed.  The app only
iterates; a source that can pause is recognised by :class:`Pausable`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from mptop.core.model import Record


@runtime_checkable
class Pausable(Protocol):
    paused: bool

    def toggle_pause(self) -> bool: ...


def _time_of(record: Record) -> float | None:
    return getattr(record, "t", None)


class ReplaySource:
    """Yields a recording's records when their time comes, ``speed`` times faster than recorded.

    Records without a time (host info, summary) follow the record before them at once.  A sequence
    is timed up front; any other iterable (a recording read as it plays,
    :func:`mptop.core.recording.iter_recording`) is pulled one record at a time, its start taken
    from its first timed record and its duration known once it ends.
    """

    def __init__(
        self, records: Iterable[Record], speed: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.records = records
        self.speed = speed
        self.paused = False
        self.finished = False
        self._clock = clock
        self._timed = isinstance(records, Sequence)
        times = [t for t in map(_time_of, records) if t is not None] if isinstance(records, Sequence) else []
        self.start = times[0] if times else 0.0
        self.duration = (times[-1] - self.start) if times else (0.0 if self._timed else math.inf)
        self._anchor_wall = clock()
        self._anchor_t = self.start
        self._wake: asyncio.Event | None = None

    @property
    def position(self) -> float:
        """Recording time (seconds from the first timed record) reached so far."""
        if self.paused or self.finished:
            return self._anchor_t - self.start
        elapsed = (self._clock() - self._anchor_wall) * self.speed
        return min(self.duration, self._anchor_t - self.start + elapsed)

    def pause(self) -> None:
        if not self.paused and not self.finished:
            self._anchor_t = self.start + self.position
            self.paused = True
            self._poke()

    def resume(self) -> None:
        if self.paused:
            self._anchor_wall = self._clock()
            self.paused = False
            self._poke()

    def toggle_pause(self) -> bool:
        """Pause or resume; True when now paused."""
        self.resume() if self.paused else self.pause()
        return self.paused

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _wait_until(self, t: float) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            if self.paused:
                await self._wake.wait()
                continue
            delay = self._anchor_wall + (t - self._anchor_t) / self.speed - self._clock()
            if delay <= 0:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    async def __aiter__(self) -> AsyncIterator[Record]:
        self._wake = asyncio.Event()
        self._anchor_wall, self._anchor_t = self._clock(), self.start
        last: float | None = None
        for record in self.records:
            t = _time_of(record)
            if t is not None:
                if last is None and not self._timed:      # a stream: its first time is its start
                    self.start = self._anchor_t = t
                    self._anchor_wall = self._clock()
                await self._wait_until(t)
                last = t
            yield record
        if not self._timed:
            self.duration = (last - self.start) if last is not None else 0.0
        self._anchor_t = self.start + self.duration
        self.finished = True
