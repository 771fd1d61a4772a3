"""Create MPTCP sockets that asyncio can use (reading them is :mod:`mptop.kernel.sockopt`'s job).

``create_mptcp_socket`` is what the transfer engine's socket factory calls for every connection;
when MPTCP cannot be used it raises :class:`MptcpUnavailable` with the reason in plain words, and
the caller decides whether to open plain TCP instead.
"""

from __future__ import annotations

import errno
import os
import socket

from mptop.kernel.types import MptcpUnavailable

# What socket(..., IPPROTO_MPTCP) failing with each errno means (mptcp.dev implementation notes).
_UNAVAILABLE_REASONS: dict[int, str] = {
    errno.ENOPROTOOPT: "MPTCP disabled on this host (net.mptcp.enabled=0)",
    errno.EPROTONOSUPPORT: "kernel built without MPTCP",
    errno.EINVAL: "kernel too old for MPTCP (< 5.6)",
}


def create_mptcp_socket(
    family: int = socket.AF_INET, type_: int = socket.SOCK_STREAM
) -> socket.socket:
    """A new blocking MPTCP stream socket of ``family``, usable by asyncio.

    Raises :class:`MptcpUnavailable` (an ``OSError``) when this host cannot make one.
    """
    try:
        mptcp = socket.socket(family, type_, socket.IPPROTO_MPTCP)
    except OSError as exc:
        reason = _UNAVAILABLE_REASONS.get(exc.errno or 0)
        if reason is None:
            raise
        raise MptcpUnavailable(exc.errno or 0, reason) from None
    # asyncio cannot connect a socket whose Python-level ``.proto`` is 262: loop.sock_connect()
    # calls getaddrinfo(proto=262), which glibc rejects with "ai_socktype not supported"
    # (CPython gh-123174, unfixed).  Re-wrapping the same file descriptor with proto 0 only
    # changes Python's bookkeeping: the kernel socket stays MPTCP (SO_PROTOCOL still says 262).
    return socket.socket(family, type_, 0, fileno=mptcp.detach())


def dup_handle(sock: socket.socket) -> socket.socket:
    """A second handle on the same kernel socket, for reading its state after the owner closed it.

    ``socket.dup()`` would copy the owner's timeout onto the shared file description (clearing
    O_NONBLOCK under asyncio's feet); wrapping an ``os.dup`` of the fd leaves the flags alone.
    While the handle is open the kernel socket stays open too: close it when done reading.
    """
    return socket.socket(sock.family, sock.type, 0, fileno=os.dup(sock.fileno()))


def limit_unsent(sock: socket.socket, nbytes: int) -> bool:
    """``TCP_NOTSENT_LOWAT``: the socket takes more data (and polls writable) only while fewer than
    ``nbytes`` of what it holds are not yet sent.  False when the kernel refuses it (MPTCP sockets
    accept it on this kernel, see docs/measured.md; the option is a hint, never a failure)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, nbytes)
    except OSError:
        return False
    return True
