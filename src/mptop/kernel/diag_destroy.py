"""The last word of every TCP subflow: sock_diag destroy broadcasts, decoded.

When a TCP socket is freed and someone listens, the kernel multicasts one ``SOCK_DIAG_BY_FAMILY``
message to the netns's sock_diag group ``SKNLGRP_INET_TCP_DESTROY`` (1) or ``SKNLGRP_INET6_TCP_DESTROY``
(3): an ``inet_diag_msg`` (addresses, ports, cookie; uid and inode 0) with ``INET_DIAG_PROTOCOL``
and ``INET_DIAG_INFO`` = the socket's final ``struct tcp_info``.  MPTCP subflows are broadcast like any
TCP socket (their msk is not); no ULP info comes with them, so a subflow is known by its address pair
only (docs/kernel-interfaces.md §3, measured on 6.18).  A poller reads them to count a connection's
last interval: the bytes between its last poll and its end.

Joining the groups needs no privilege (sock_diag allows non-root receivers).  The subscription lives
in the netns of the thread that creates it.

Why our own codec, not pyroute2 (0.9.7): its ``DiagSocket`` is a sync wrapper that runs its own
asyncio loop for every receive (it cannot be drained from inside our loop without blocking), and
the message is a fixed ``inet_diag_msg`` plus a ``tcp_info`` that :mod:`mptop.kernel.structs`
already decodes.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from typing import NamedTuple

from mptop.kernel.diag import NETLINK_SOCK_DIAG
from mptop.kernel.diag_shapes import INET_DIAG_INFO, SOCK_DIAG_BY_FAMILY, _ip
from mptop.kernel.structs import parse_tcp_info_from
from mptop.kernel.types import Address, KernelParseError, TcpInfo

log = logging.getLogger(__name__)

SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET6_TCP_DESTROY = 1, 3
_GROUPS = (1 << (SKNLGRP_INET_TCP_DESTROY - 1)) | (1 << (SKNLGRP_INET6_TCP_DESTROY - 1))
_MSG = struct.Struct("=IHHII BBBB HH16s16s I Q")   # nlmsghdr + inet_diag_msg up to the cookie
_DIAG_MSG_LEN = 72                                 # sizeof(struct inet_diag_msg)
_NLA = struct.Struct("=HH")
_NLMSG_HDRLEN = 16


class SubflowEnd(NamedTuple):
    """A TCP socket as it was destroyed: its address pair and its final counters."""

    local: Address
    remote: Address
    cookie: int
    tcp: TcpInfo

    @property
    def disconnected(self) -> bool:
        """An MPTCP initial subflow ``tcp_disconnect()``ed before it was freed: its message has no local
        address (``0.0.0.0`` or ``::``, its port kept), its peer's port 0 and its counters zeroed
        (docs/kernel-interfaces.md §3).  Known by its local port and its peer's address only."""
        return self.local[0] in ("0.0.0.0", "::") and self.remote[1] == 0


def decode_destroyed(buf: bytes) -> list[SubflowEnd]:
    """Every destroyed TCP socket in one datagram (other message types are skipped).

    Raises KernelParseError on a malformed datagram."""
    out: list[SubflowEnd] = []
    off, n = 0, len(buf)
    while n - off >= _NLMSG_HDRLEN:
        length, kind = struct.unpack_from("=IH", buf, off)
        if length < _NLMSG_HDRLEN or length > n - off:
            raise KernelParseError(f"sock_diag destroy message: length {length} out of range")
        if kind == SOCK_DIAG_BY_FAMILY:
            end = _decode_one(buf, off, off + length)
            if end is not None:
                out.append(end)
        off += (length + 3) & ~3
    return out


def _decode_one(buf: bytes, start: int, stop: int) -> SubflowEnd | None:
    if stop - start < _NLMSG_HDRLEN + _DIAG_MSG_LEN:
        raise KernelParseError(f"sock_diag destroy message: {stop - start} bytes, too short")
    (_, _, _, _, _, family, _state, _timer, _retrans, sport, dport, src, dst, _ifindex,
     cookie) = _MSG.unpack_from(buf, start)
    info: TcpInfo | None = None
    off = start + _NLMSG_HDRLEN + _DIAG_MSG_LEN
    while stop - off >= _NLA.size:
        alen, akind = _NLA.unpack_from(buf, off)
        if alen < _NLA.size or alen > stop - off:
            raise KernelParseError(f"sock_diag destroy attribute {akind}: length {alen} out of range")
        if akind & 0x3FFF == INET_DIAG_INFO:
            info = parse_tcp_info_from(buf, off + _NLA.size, alen - _NLA.size)
        off += (alen + 3) & ~3
    if info is None or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    # Ports travel big-endian in inet_diag_sockid.
    return SubflowEnd((_ip(family, src), socket.ntohs(sport)), (_ip(family, dst), socket.ntohs(dport)), cookie, info)


class SubflowEnds:
    """A subscription to TCP destroy broadcasts in the calling thread's netns; :meth:`read_pending`
    drains what arrived (non-blocking).  ENOBUFS (we were too slow) counts in ``overruns``."""

    def __init__(self, rcvbuf: int = 1 << 20) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self._sock.bind((0, _GROUPS))
        except BaseException:
            self._sock.close()
            raise
        self._sock.setblocking(False)
        self.overruns = 0
        self.malformed = 0

    def read_pending(self) -> list[SubflowEnd]:
        ends: list[SubflowEnd] = []
        while self._sock.fileno() >= 0:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                self.overruns += 1
                log.warning("sock_diag destroy messages were lost (receive buffer overrun #%d)", self.overruns)
                continue
            try:
                ends.extend(decode_destroyed(data))
            except KernelParseError as e:
                self.malformed += 1
                log.warning("skipping a malformed sock_diag destroy message: %s", e)
        return ends

    def fileno(self) -> int:
        """The subscription's socket, to wait on (readable: :meth:`read_pending` has something)."""
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> SubflowEnds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
