"""One download (or upload) run: transfers and their sampler side by side, every record handed to the views.

``get``, ``mptop URL…`` (the TUI) and ``demo`` all run this; they differ only in the sinks they pass
(NDJSON on stdout, a recording file, the console, the Textual app).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mptop.core.compare import Comparison
from mptop.core.model import Event, Sink, Summary
from mptop.core.sampler import Sampler
from mptop.core.transfer import Transfer, TransferManager, TransferOptions

if TYPE_CHECKING:
    from mptop.core.upload import Method


@dataclass
class Session:
    """Build with the URLs and options, then ``await session.run(sink)``; ``stop()`` ends it early."""

    urls: Sequence[str]
    options: TransferOptions
    interval: float = 0.25
    labels: Mapping[str, str] = field(default_factory=dict)
    pm_events: bool = True
    sampler: Sampler | None = None
    upload: str | None = None          # a file (or "-") to send to every URL instead of downloading
    method: Method = "PUT"
    comparison: Comparison | None = None     # --compare-tcp: MPTCP against plain TCP, once running
    _stop: asyncio.Event | None = None

    def __post_init__(self) -> None:
        # Made here, not in run(): a bad -o (or an unreadable upload) raises TransferError before any
        # event loop starts.
        if self.upload is None:
            self.manager = TransferManager(self.urls, self.options)
        else:
            from mptop.core.upload import UploadManager  # `put` alone: not on every `get`

            self.manager = UploadManager(self.urls, self.options, self.upload, self.method)

    @property
    def transfers(self) -> list[Transfer]:
        return self.manager.transfers

    async def run(self, sink: Sink) -> Summary:
        """Run every transfer to its end (or until :meth:`stop`), feeding ``sink`` each record:
        HostInfo first, then events and samples as they come, the Summary last."""
        self._stop = asyncio.Event()
        if self.options.compare_tcp:     # the comparison told in words, in the stream itself
            self.comparison = Comparison()
            sink = self.comparison.narrating(sink)
        async with self.manager as manager:
            self.sampler = Sampler(manager.transfers, self.interval, self.labels, pm_events=self.pm_events,
                                   require_mptcp=self.options.require_mptcp)
            downloads = asyncio.create_task(manager.run(), name="mptop-transfers")
            # The final read right after the last transfer ends: a small `get` does not wait out the interval.
            downloads.add_done_callback(lambda _: self._wake_sampler())
            stopper = asyncio.create_task(self._stop.wait(), name="mptop-stop")
            try:
                await self._feed(sink, stopper)
            finally:
                for t in manager.transfers:
                    if not t.finished:
                        t.fail("stopped")
                stopper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await downloads
        summary = self.sampler.summary()
        sink(summary)
        return summary

    async def _feed(self, sink: Sink, stopper: asyncio.Task[bool]) -> None:
        assert self.sampler is not None
        sink(self.sampler.host_info())
        async with contextlib.aclosing(self.sampler.run(until_done=True)) as polls:
            async for sample, events in polls:
                for event in events:
                    sink(event)
                sink(sample)
                if stopper.done():
                    return

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._wake_sampler()

    def _wake_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.wake()

    def note(self, sink: Sink, kind: str, detail: str) -> None:
        """An event from outside the kernel (e.g. the demo's scenario steps), on the run's clock."""
        t = self.sampler.now() if self.sampler else 0.0
        sink(Event(t=round(t, 3), kind=kind, detail=detail))
