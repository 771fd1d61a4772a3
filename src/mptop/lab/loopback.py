"""Many idle MPTCP connections on loopback, for series-count tests and the export bench.

::

    with lab.client.entered(), loopback_connections(1000) as pairs:
        ...                      # 1,000 established MPTCP connections (2,000 sockets) in this netns

Both ends live in the calling thread's netns: a listener on 127.0.0.1, then ``count`` connects,
each accepted before the next (so every connection is established at both ends when the block
starts).  The file-descriptor limit is raised for the block when it is too low, and restored.
"""

from __future__ import annotations

import contextlib
import resource
import socket
from collections.abc import Iterator

from mptop.kernel.sockets import create_mptcp_socket


@contextlib.contextmanager
def raised_fd_limit(need: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        yield
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def loopback_connections(count: int, port: int = 0) -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """``count`` established MPTCP connections to a listener on 127.0.0.1 (``port``: 0 = any);
    yields the (client, server) socket pairs; everything is closed on leaving."""
    pairs: list[tuple[socket.socket, socket.socket]] = []
    with raised_fd_limit(2 * count + 256), contextlib.ExitStack() as stack:
        listener = stack.enter_context(create_mptcp_socket())
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(min(count, 4096))
        address = listener.getsockname()
        for _ in range(count):
            client = stack.enter_context(create_mptcp_socket())
            client.connect(address)
            server, _ = listener.accept()
            stack.enter_context(server)
            pairs.append((client, server))
        yield pairs
