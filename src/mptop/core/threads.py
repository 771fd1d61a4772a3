"""Blocking work on a daemon thread, its result awaited on the event loop.

No executor: Python joins an executor's threads at exit, so a call that never returns (a DNS lookup
the resolver keeps retrying, a read from a silent pipe) would hold the process after the loop is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def on_daemon_thread(work: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Start ``work`` on a daemon thread now; the future settles with its result or exception."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result: T | BaseException = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            result = exc
        with contextlib.suppress(RuntimeError):      # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(_settle, done, result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return done


def _settle(done: asyncio.Future[T], result: T | BaseException) -> None:
    if done.done():          # the waiter was cancelled (a timeout)
        return
    if isinstance(result, BaseException):
        done.set_exception(result)
    else:
        done.set_result(result)


class ThreadStopped(Exception):
    """The event loop asked a worker thread to stop (cancellation)."""


async def on_stoppable_thread(work: Callable[[], T], name: str, stop: Callable[[], object],
                              cleanup: Callable[[], object]) -> T:
    """``work`` on a daemon thread, awaited; ``cleanup()`` runs on the loop once the thread has ended.
    Cancelled, ``stop()`` (which must wake the thread: it then raises :class:`ThreadStopped`) and the
    cancellation is raised only once the thread has let go of whatever it used."""
    done = on_daemon_thread(work, name)
    done.add_done_callback(lambda _: _ended(done, cleanup))
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        if not done.done():
            stop()
            await asyncio.wait([done])
        raise


def _ended(done: asyncio.Future[T], cleanup: Callable[[], object]) -> None:
    if not done.cancelled():
        done.exception()          # seen (after a cancellation: ThreadStopped, nobody's business)
    cleanup()


def wait_or_stop(poller: select.poll, timeout_ms: int | None, wake: int, idle: str) -> None:
    """On a worker thread: wait for one of ``poller``'s events.  ``TimeoutError(idle)`` when none came
    within ``timeout_ms``; :class:`ThreadStopped` when the eventfd ``wake`` (registered too) is signalled."""
    events = poller.poll(timeout_ms)
    if not events:
        raise TimeoutError(idle)
    if any(fd == wake for fd, _ in events):
        raise ThreadStopped
