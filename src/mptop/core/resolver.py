"""The download engine's DNS: lookups in the calling thread's network namespace, never waited for at exit."""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult

from mptop.core.threads import on_daemon_thread


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
        infos = await on_daemon_thread(
            lambda: socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG),
            name="mptop-dns")
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

