"""What every live poller shares: a poll that re-arms itself, and path-manager events on the side.

:func:`rearming` calls ``poll()`` every ``interval`` seconds, measured from the start of each fetch;
the next poll is armed only after the consumer took the result, so polls never overlap and a
slow poll (or a slow consumer) delays the next one instead of queueing a backlog.

:class:`PmFeed` subscribes once to the ``mptcp_pm_events`` group (CAP_NET_ADMIN; without it the
caller infers events from its polls, and :attr:`PmFeed.mode` says so) and, while
:meth:`PmFeed.consuming` is entered, hands every event to a callback from an asyncio task.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Literal, TypeVar

from mptop.kernel.pm_events import PmEvents
from mptop.kernel.types import PmEvent

T = TypeVar("T")


async def rearming(poll: Callable[[], T], interval: float, clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> AsyncGenerator[T, None]:
    while True:
        started = clock()
        yield poll()
        await sleep(max(0.0, started + interval - clock()))


async def sleep_unless(woken: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``woken`` is set meanwhile (then cleared for the next sleep):
    a ``sleep`` for :func:`rearming` that can be cut short."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(woken.wait(), seconds)
    woken.clear()


class PmFeed:
    """Path-manager events for a poller: one subscription attempt, consumed by a task."""

    def __init__(self, on_event: Callable[[PmEvent], None], enabled: bool = True) -> None:
        self._on_event = on_event
        self._untried = enabled
        self._events: PmEvents | None = None
        self.mode: Literal["netlink", "inferred"] = "inferred"

    def start(self) -> bool:
        """Subscribe in the calling thread's netns (once); False when not permitted or absent."""
        if self._untried:
            self._untried = False
            try:
                self._events = PmEvents()
                self.mode = "netlink"
            except OSError:                # NeedsNetAdmin, or no mptcp_pm family at all
                self.mode = "inferred"
        return self._events is not None

    @contextlib.asynccontextmanager
    async def consuming(self) -> AsyncIterator[None]:
        """Deliver events while the block runs; the subscription is closed on leaving."""
        task = asyncio.create_task(self._consume(), name="mptop-pm-events") if self._events else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.close()

    async def _consume(self) -> None:
        assert self._events is not None
        async for event in self._events:
            self._on_event(event)

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None
