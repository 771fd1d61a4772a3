"""Read MPTCP state from sockets this process owns (getsockopt: no privileges needed).

:func:`read_socket` returns a :class:`~mptop.kernel.types.SocketReading`: the status
(MPTCP, FALLBACK or plain TCP), the connection's ``mptcp_info`` and every subflow with its
kernel subflow id, addresses and ``tcp_info``.  On kernels with ``MPTCP_FULL_INFO`` (6.5+)
that is one system call; older kernels (5.16-6.4) take three (``MPTCP_INFO``,
``MPTCP_TCPINFO``, ``MPTCP_SUBFLOW_ADDRS``).  Which options the kernel has is learnt once
per process from the errno of the first attempt, never from the version string.

The subflow options need an input header the kernel reads, which Python's
``socket.getsockopt`` cannot pass, so they go through libc's getsockopt via ctypes, into
per-thread buffers that are reused across calls.

Errors: a closed fd, something that is not a socket, or a socket that is not TCP/MPTCP
raises :class:`UnreadableSocket` (an ``OSError``) with a one-line message.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import struct
import threading
from socket import IPPROTO_MPTCP, IPPROTO_TCP, SOL_TCP, TCP_INFO

from mptop.kernel.structs import (
    MPTCP_INFO_SIZE,
    SOCKADDR_SIZE,
    TCP_INFO_SIZE,
    parse_mptcp_info_from,
    parse_sockaddr_from,
    parse_tcp_info_from,
)
from mptop.kernel.types import SocketReading, SocketStatus, SubflowReading

__all__ = ["UnreadableSocket", "read_socket", "socket_status", "capabilities"]

SOL_MPTCP = 284
TCP_IS_MPTCP = 43
MPTCP_INFO = 1
MPTCP_TCPINFO = 2
MPTCP_SUBFLOW_ADDRS = 3
MPTCP_FULL_INFO = 4

# errnos meaning "this option does not exist here": an old kernel, or a socket that fell
# back to TCP (then every SOL_MPTCP option fails: EOPNOTSUPP over v4, ENOPROTOOPT over v6).
_NOT_SUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOPROTOOPT})
_NOT_A_SOCKET = {errno.EBADF: "closed or not a file descriptor", errno.ENOTSOCK: "not a socket"}

_FULL_HEADER = struct.Struct("=6I2Q")      # struct mptcp_full_info up to mptcp_info (40 bytes)
_SUBFLOW_DATA = struct.Struct("=4I")       # struct mptcp_subflow_data (16 bytes)
_U32 = struct.Struct("=I")
_SFINFO_SIZE = 8 + 2 * SOCKADDR_SIZE       # struct mptcp_subflow_info: id, pad, addrs
_ADDRS_SIZE = 2 * SOCKADDR_SIZE            # struct mptcp_subflow_addrs
_INFO_ROOM = MPTCP_INFO_SIZE + 32          # room for mptcp_info fields newer than ours
_FIRST_CAPACITY = 8                        # subflows per buffer before we grow it

_libc = ctypes.CDLL(None, use_errno=True)
_getsockopt = _libc.getsockopt
_getsockopt.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_getsockopt.restype = ctypes.c_int


class UnreadableSocket(OSError):
    """The fd is closed, is not a socket, or is not a TCP/MPTCP stream socket."""

    def __init__(self, errno_: int, fd: int, reason: str) -> None:
        super().__init__(errno_, f"cannot read socket fd {fd}: {reason}")
        self.fd = fd


class _Capabilities:
    """What this kernel supports, learnt from the first socket that could tell (None = unknown)."""

    full_info: bool | None = None
    tcp_is_mptcp: bool | None = None


capabilities = _Capabilities()


class _Scratch:
    """One thread's reusable getsockopt buffers."""

    def __init__(self) -> None:
        self.optlen = ctypes.c_uint32()
        self.optlen_p = ctypes.addressof(self.optlen)
        self.value = ctypes.c_int()
        self.value_p = ctypes.addressof(self.value)
        self.info = ctypes.create_string_buffer(_FULL_HEADER.size + _INFO_ROOM)
        self.info_p = ctypes.addressof(self.info)
        self.tcp = ctypes.create_string_buffer(TCP_INFO_SIZE)
        self.tcp_p = ctypes.addressof(self.tcp)
        self.capacity = 0
        self.grow(_FIRST_CAPACITY)

    def grow(self, capacity: int) -> None:
        self.capacity = capacity
        # FULL_INFO arrays; the legacy options reuse them behind their 16-byte header
        self.sfinfo = ctypes.create_string_buffer(_SUBFLOW_DATA.size + _SFINFO_SIZE * capacity)
        self.tcpinfo = ctypes.create_string_buffer(_SUBFLOW_DATA.size + TCP_INFO_SIZE * capacity)
        self.sfinfo_p = ctypes.addressof(self.sfinfo)
        self.tcpinfo_p = ctypes.addressof(self.tcpinfo)


_local = threading.local()


def _scratch() -> _Scratch:
    try:
        return _local.scratch
    except AttributeError:
        _local.scratch = _Scratch()
        return _local.scratch


def _fd_of(sock: socket.socket | int) -> int:
    fd = sock if isinstance(sock, int) else sock.fileno()
    if fd < 0:
        raise UnreadableSocket(errno.EBADF, fd, "the socket is closed")
    return fd


def _call(s: _Scratch, fd: int, level: int, name: int, buf: int | None, size: int) -> int:
    """getsockopt into ``buf``; returns 0 or the errno of an unsupported option.

    Any errno saying the fd is unusable becomes :class:`UnreadableSocket`.
    """
    s.optlen.value = size
    if _getsockopt(fd, level, name, buf, s.optlen_p) == 0:
        return 0
    err = ctypes.get_errno()
    if err in _NOT_SUPPORTED:
        return err
    why = _NOT_A_SOCKET.get(err) or f"getsockopt({level}, {name}): {errno.errorcode.get(err, err)}"
    raise UnreadableSocket(err, fd, why)


def socket_status(sock: socket.socket | int) -> SocketStatus:
    """MPTCP, FALLBACK (an MPTCP socket now plain TCP) or TCP, asked from the kernel.

    The protocol comes from ``SO_PROTOCOL``, never from the Python object (sockets are
    often re-wrapped with proto 0).  Then ``TCP_IS_MPTCP`` (6.10+) or, on older kernels,
    the zero-length ``MPTCP_INFO`` probe that fails once the connection fell back.
    """
    fd = _fd_of(sock)
    s = _scratch()
    if _call(s, fd, socket.SOL_SOCKET, socket.SO_PROTOCOL, s.value_p, 4):
        raise UnreadableSocket(errno.ENOTSOCK, fd, "not a socket")
    proto = s.value.value
    if proto == IPPROTO_TCP:
        return SocketStatus.TCP
    if proto != IPPROTO_MPTCP:
        raise UnreadableSocket(errno.EPROTOTYPE, fd, f"not a TCP or MPTCP socket (protocol {proto})")
    if capabilities.tcp_is_mptcp is not False:
        if _call(s, fd, SOL_TCP, TCP_IS_MPTCP, s.value_p, 4) == 0:
            capabilities.tcp_is_mptcp = True
            return SocketStatus.MPTCP if s.value.value else SocketStatus.FALLBACK
        capabilities.tcp_is_mptcp = False   # a 6.10+ kernel answers it even after fallback
    return SocketStatus.FALLBACK if _call(s, fd, SOL_MPTCP, MPTCP_INFO, None, 0) else SocketStatus.MPTCP


def read_socket(sock: socket.socket | int, *, legacy: bool = False) -> SocketReading:
    """Everything the kernel tells about this socket's connection and its subflows.

    ``legacy=True`` forces the pre-6.5 three-call path even where ``MPTCP_FULL_INFO``
    exists.  On the legacy path the kernel gives no subflow id: ``SubflowReading.id`` is
    then the subflow's 1-based position in the kernel's list (the same as the kernel id
    until a subflow closes), so track subflows by their addresses there.
    After fallback and for plain TCP, ``tcp`` holds ``TCP_INFO`` and ``info`` is None.
    """
    fd = _fd_of(sock)
    s = _scratch()
    if not legacy and capabilities.full_info is not False:
        reading = _read_full_info(s, fd)
        if reading is not None:
            capabilities.full_info = True
            return reading
        status = socket_status(fd)
        if status is not SocketStatus.MPTCP:
            return _read_plain(s, fd, status)
        capabilities.full_info = False      # an MPTCP socket without FULL_INFO: kernel < 6.5
    reading = _read_legacy(s, fd)
    return reading if reading is not None else _read_plain(s, fd, socket_status(fd))


def _read_plain(s: _Scratch, fd: int, status: SocketStatus) -> SocketReading:
    if _call(s, fd, SOL_TCP, TCP_INFO, s.tcp_p, TCP_INFO_SIZE):
        return SocketReading(status, None)
    return SocketReading(status, None, (), parse_tcp_info_from(s.tcp, 0, s.optlen.value))


def _read_full_info(s: _Scratch, fd: int) -> SocketReading | None:
    """One ``MPTCP_FULL_INFO`` call; None when the option is refused (fallback or old kernel)."""
    while True:
        _FULL_HEADER.pack_into(s.info, 0, 0, TCP_INFO_SIZE, 0, _SFINFO_SIZE, 0, s.capacity,
                               s.sfinfo_p, s.tcpinfo_p)
        if _call(s, fd, SOL_MPTCP, MPTCP_FULL_INFO, s.info_p, len(s.info)):
            return None
        _, tcp_size, _, sf_size, count, _, _, _ = _FULL_HEADER.unpack_from(s.info, 0)
        if count <= s.capacity:
            break
        s.grow(count + _FIRST_CAPACITY)     # subflows came up since; the call is repeated
    info = parse_mptcp_info_from(s.info, _FULL_HEADER.size, s.optlen.value - _FULL_HEADER.size)
    sf, tcp = s.sfinfo, s.tcpinfo
    subflows = tuple(
        SubflowReading(
            _U32.unpack_from(sf, i * sf_size)[0],
            parse_sockaddr_from(sf, i * sf_size + 8, SOCKADDR_SIZE),
            parse_sockaddr_from(sf, i * sf_size + 8 + SOCKADDR_SIZE, SOCKADDR_SIZE),
            parse_tcp_info_from(tcp, i * tcp_size, tcp_size) if tcp_size else None,
        )
        for i in range(count)
    )
    return SocketReading(SocketStatus.MPTCP, info, subflows)


def _subflow_array(s: _Scratch, fd: int, name: int, buf: ctypes.Array[ctypes.c_char], address: int,
                   size: int) -> tuple[int, int] | None:
    """``MPTCP_TCPINFO``/``MPTCP_SUBFLOW_ADDRS`` into ``buf``: (subflow count, entry size)."""
    _SUBFLOW_DATA.pack_into(buf, 0, _SUBFLOW_DATA.size, 0, 0, size)
    if _call(s, fd, SOL_MPTCP, name, address, _SUBFLOW_DATA.size + size * s.capacity):
        return None
    _, count, _, user_size = _SUBFLOW_DATA.unpack_from(buf, 0)
    return count, user_size


def _read_legacy(s: _Scratch, fd: int) -> SocketReading | None:
    """``MPTCP_INFO`` + ``MPTCP_TCPINFO`` + ``MPTCP_SUBFLOW_ADDRS`` (kernels 5.16+)."""
    if _call(s, fd, SOL_MPTCP, MPTCP_INFO, s.info_p, _INFO_ROOM):
        return None
    info = parse_mptcp_info_from(s.info, 0, s.optlen.value)
    attempt = 0
    while True:
        tcp = _subflow_array(s, fd, MPTCP_TCPINFO, s.tcpinfo, s.tcpinfo_p, TCP_INFO_SIZE)
        addrs = _subflow_array(s, fd, MPTCP_SUBFLOW_ADDRS, s.sfinfo, s.sfinfo_p, _ADDRS_SIZE)
        if tcp is None or addrs is None:
            return None                     # fell back between the calls
        if tcp[0] == addrs[0] <= s.capacity or attempt == 2:
            break                           # both calls saw the same subflows, all of them (or 3 tries)
        if max(tcp[0], addrs[0]) > s.capacity:
            s.grow(max(tcp[0], addrs[0]) + _FIRST_CAPACITY)   # new, empty buffers: only before a retry
        attempt += 1
    # after repeated changes, pair what both calls returned (the kernel lists in join order)
    count = min(tcp[0], addrs[0], s.capacity)
    tcp_size, addr_size, base = tcp[1], addrs[1], _SUBFLOW_DATA.size
    subflows = tuple(
        SubflowReading(
            i + 1,
            parse_sockaddr_from(s.sfinfo, base + i * addr_size, SOCKADDR_SIZE),
            parse_sockaddr_from(s.sfinfo, base + i * addr_size + SOCKADDR_SIZE, SOCKADDR_SIZE),
            parse_tcp_info_from(s.tcpinfo, base + i * tcp_size, tcp_size),
        )
        for i in range(count)
    )
    return SocketReading(SocketStatus.MPTCP, info, subflows)
