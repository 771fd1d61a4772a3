"""The download engine's DNS: lookups in the calling thread's network namespace, never waited for at exit."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult


class NetnsResolver(AbstractResolver):
    """getaddrinfo on threads started from the event loop's thread, never waited for at exit.

    Network namespaces are per thread, and a thread starts in the namespace of the thread that
    started it.  aiohttp's default resolver uses the loop's shared executor, whose threads may
    predate the loop thread entering a lab namespace: a lookup there would reach the host's DNS.
    Each lookup here runs on a daemon thread started from the loop thread, in its namespace.  No
    executor: Python joins an executor's threads at exit, so a lookup that never answers held the
    process for as long as the resolver tried (seconds after --connect-timeout had given up).
    """

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[Any]] = loop.create_future()

        def lookup() -> None:
            try:
                infos: list[Any] | BaseException = socket.getaddrinfo(
                    host, port, family, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                infos = exc
            with contextlib.suppress(RuntimeError):     # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(_settle, answer, infos)

        threading.Thread(target=lookup, name="mptop-dns", daemon=True).start()
        infos = await answer
        numeric = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
        results = []
        for fam, _, proto, _, addr in infos:
            if fam not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip, port_ = str(addr[0]), int(addr[1])
            scope = addr[3] if fam == socket.AF_INET6 and len(addr) == 4 else 0   # (ip, port, flowinfo, scope_id)
            results.append(ResolveResult(hostname=host, host=f"{ip}%{scope}" if scope else ip, port=port_,
                                         family=fam, proto=proto, flags=numeric))
        return results

    async def close(self) -> None:
        pass        # shared by the run's sessions; its threads are daemons


def _settle(answer: asyncio.Future[list[Any]], infos: list[Any] | BaseException) -> None:
    if answer.done():          # the lookup's waiter was cancelled (connect timeout)
        return
    if isinstance(infos, BaseException):
        answer.set_exception(infos)
    else:
        answer.set_result(infos)
