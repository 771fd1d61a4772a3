"""Blocking work on a daemon thread, its result awaited on the event loop.

No executor: Python joins an executor's threads at exit, so a call that never returns (a DNS lookup
the resolver keeps retrying, a read from a silent pipe) would hold the process after the loop is done.
"""

from __future__ import annotations

import asyncio
import contextlib
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
