"""Every MPTCP connection of a network namespace, from sock_diag: ``ss -M`` plus ``ss -ti`` in one poll.

One NETLINK_SOCK_DIAG socket; ``inet_diag_req_v2`` dumps for AF_INET (and AF_INET6 when the netns
has IPv6 TCP sockets):

* IPPROTO_TCP with INET_DIAG_INFO = ``struct tcp_info``: subflows are the TCP sockets whose
  INET_DIAG_ULP_INFO names the ``mptcp`` ULP; its INET_ULP_INFO_MPTCP nest carries the tokens,
  endpoint ids and flags;
* IPPROTO_MPTCP with INET_DIAG_INFO = ``struct mptcp_info``: the connections (msk).  262 does not
  fit ``sdiag_protocol`` (a u8), so the request carries it in INET_DIAG_REQ_PROTOCOL.

A subflow joins its connection by token (TOKEN_LOC == mptcpi_token).  Decoding lives in
:mod:`mptop.kernel.diag_decode`; the owning processes come from :mod:`mptop.kernel.procs`.

Why our own codec, not pyroute2 (0.9.7, docs/measured.md "pyroute2 gaps"): it packs sdiag_protocol as a u8 (262 is a
struct.error), sends no INET_DIAG_REQ_PROTOCOL, decodes every INET_DIAG_INFO as tcp_info, hands the
ULP info back as hex, and its TCP dump alone takes ~140 ms for 2,000 subflows.

Unprivileged use works: sock_diag dumps every socket of the netns, ULP info included, to any user.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
from collections.abc import Callable

from mptop.kernel.diag_decode import DiagDecoder
from mptop.kernel.diag_shapes import INET_DIAG_INFO, SOCK_DIAG_BY_FAMILY
from mptop.kernel.procs import SocketOwners
from mptop.kernel.structs import NLM_F_DUMP, NLM_F_REQUEST
from mptop.kernel.types import DiagConnection, KernelParseError, MptcpUnavailable

__all__ = ["DiagDecoder", "DiagReader", "MptcpDiagUnavailable", "dump_connections"]

NETLINK_SOCK_DIAG = 4
INET_DIAG_REQ_PROTOCOL = 3
TCP_LISTEN = 10
# Kernel-side state filter for the TCP dump: subflows never LISTEN, and TIME_WAIT / SYN_RECV /
# NEW_SYN_RECV entries are minisocks without a ULP, so the kernel may skip them unformatted.
TCP_DUMP_STATES = 0xFFFFFFFF & ~((1 << 3) | (1 << 6) | (1 << TCP_LISTEN) | (1 << 12))
_REQ = struct.Struct("=IHHIIBBBxI48x")        # nlmsghdr + inet_diag_req_v2 with a zero sockid
_REQ_PROTO = struct.Struct("=HHI")            # the INET_DIAG_REQ_PROTOCOL attribute
_COOKIE_AT = 16 + 8 + 40       # idiag_cookie[0] in the request: nlmsghdr, family..states, sockid up to it
_INODE_AT = 16 + 4 + 48 + 16   # idiag_inode in a reply: nlmsghdr, family..retrans, sockid, expires..uid
_BUFSIZE = 1 << 20
_BATCH_ROOM = 256 << 10     # room a receive needs: more than any dump datagram (the kernel's are <= 32 KiB)


class MptcpDiagUnavailable(MptcpUnavailable):
    """This kernel cannot list MPTCP connections through sock_diag; ``reason`` says why."""


class _Ipv6Presence:
    """Whether the reader's netns has any IPv6 TCP/MPTCP socket, from its ``/proc/net/protocols``
    (the per-netns "sockets" column): with none, the two AF_INET6 dumps, each a walk over every TCP
    socket of the host (~0.5 ms at 7,000 sockets), are skipped.  Opened by the creating thread, so
    it is that thread's netns; unreadable: always dump."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open("/proc/thread-self/net/protocols", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._fd = None

    def any(self) -> bool:
        if self._fd is None:
            return True
        try:
            text = os.pread(self._fd, 1 << 16, 0)
        except OSError:
            return True
        counts = [line.split()[2] for line in text.splitlines() if line.startswith((b"TCPv6 ", b"MPTCPv6 "))]
        return len(counts) < 2 or any(c != b"0" for c in counts)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


Job = tuple[bytes, int, int]          # (request, seq, protocol) of one dump


class _Framing(DiagDecoder):
    """Only the netlink framing (where a dump ends, its errors): records are not decoded."""

    def _tcp_datagram(self, buf: object, n: int, seq: int | None, fast: bool) -> None:
        off = 0
        while off < n:
            length, _ = self._message(buf, off, n, seq)
            if not length:
                return
            off += (length + 3) & ~3

    _msk_datagram = _tcp_datagram


class DiagReader:
    """A sock_diag reader for the network namespace of the thread that creates it.

    ``connections()`` runs one poll (one at a time per reader).  The netlink socket, its receive
    buffer (``buffer_size``: 1 MiB), the compiled record shapes, the previous poll's objects and
    the owner cache live as long as the reader: close it, or use it as a context manager.
    """

    def __init__(self, *, include_listeners: bool = False, processes: bool = True, timeout: float = 5.0,
                 buffer_size: int = _BUFSIZE) -> None:
        if buffer_size <= _BATCH_ROOM:
            raise ValueError(f"buffer_size must exceed {_BATCH_ROOM} bytes")
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
            self._sock.bind((0, 0))
        except OSError as e:
            raise MptcpDiagUnavailable(e.errno or 0, f"no sock_diag netlink socket: {e.strerror}") from None
        self._sock.setblocking(False)
        self._timeout = timeout
        self._ipv6 = _Ipv6Presence()
        self._buf = bytearray(buffer_size)
        self._view = memoryview(self._buf)
        self._seq = 0
        self._dirty = False
        self._msk_states = 0xFFFFFFFF if include_listeners else 0xFFFFFFFF & ~(1 << TCP_LISTEN)
        self._decoder = DiagDecoder()
        self.owners = SocketOwners() if processes else None

    def __enter__(self) -> DiagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._view.release()
        self._sock.close()
        self._ipv6.close()

    def connections(self) -> list[DiagConnection]:
        """Every MPTCP connection of the namespace with its subflows (in dump order) and owner."""
        decoder = self._decoder
        decoder.begin(self.owners.named if self.owners is not None else None)
        self._run(self._jobs(), decoder.feed)
        unnamed = decoder.unnamed
        conns = decoder.finish()
        if unnamed and self.owners is not None:     # new sockets: maybe a (rate-limited) /proc scan
            found = self.owners.lookup([conns[i].inode for i in unnamed])
            for i in unnamed:
                owner = found.get(conns[i].inode)
                if owner is not None:
                    conns[i] = conns[i]._replace(pid=owner[0], process=owner[1])
        return conns

    def inode_of(self, token: int) -> int | None:
        """The inode of the connection with this token, asked for alone (mptcp_diag looks a
        connection up by the token in ``idiag_cookie[0]``); None if it is gone or closed."""
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
        attr = _REQ_PROTO.pack(_REQ_PROTO.size, INET_DIAG_REQ_PROTOCOL, socket.IPPROTO_MPTCP)
        request = bytearray(_REQ.pack(_REQ.size + len(attr), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, 0,
                                      socket.AF_INET, 0, 0, 0xFFFFFFFF) + attr)
        struct.pack_into("=I", request, _COOKIE_AT, token)
        try:
            self._start(bytes(request))
            while True:
                n = self._recv(self._view)
                if n < 0:
                    self._wait()
                    continue
                length, kind, _, rseq = struct.unpack_from("=IHHI", self._buf, 0)
                if rseq != seq:
                    continue
                self._dirty = False
                if kind != SOCK_DIAG_BY_FAMILY or length < _INODE_AT + 4:
                    return None
                inode: int = struct.unpack_from("=I", self._buf, _INODE_AT)[0]
                return inode or None
        except OSError:
            return None

    def capture(self) -> list[tuple[int, bytes]]:
        """The raw datagrams of one poll as ``(protocol, bytes)``: for tests and bug reports
        (``DiagDecoder().decode(...)`` turns them into connections)."""
        out: list[tuple[int, bytes]] = []
        framing = _Framing()

        def keep(buf: memoryview, n: int, seq: int, protocol: int) -> bool:
            out.append((protocol, bytes(buf[:n])))
            return framing.feed(buf, n, seq, protocol)

        self._run(self._jobs(), keep)
        return out

    def _jobs(self) -> list[Job]:
        """This poll's dumps: subflows first, so each connection is complete when its record arrives."""
        families = (socket.AF_INET, socket.AF_INET6) if self._ipv6.any() else (socket.AF_INET,)
        jobs = [self._job(family, socket.IPPROTO_TCP, TCP_DUMP_STATES) for family in families]
        return jobs + [self._job(family, socket.IPPROTO_MPTCP, self._msk_states) for family in families]

    def _job(self, family: int, protocol: int, states: int) -> Job:
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
        attr = _REQ_PROTO.pack(_REQ_PROTO.size, INET_DIAG_REQ_PROTOCOL, protocol) if protocol > 0xFF else b""
        # With the protocol in the attribute, the u8 is 0: a kernel that ignores the attribute then
        # fails (no handler for protocol 0) instead of dumping TCP sockets as if they were MPTCP.
        request = _REQ.pack(_REQ.size + len(attr), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0,
                            family, protocol if protocol <= 0xFF else 0, 1 << (INET_DIAG_INFO - 1), states) + attr
        return request, seq, protocol

    def _run(self, jobs: list[Job], feed: Callable[[memoryview, int, int, int], bool]) -> None:
        """The dumps, each datagram handed to ``feed`` until it reports the dump done.

        Datagrams are received back to back into the buffer and decoded in batches: each
        receive makes the kernel format the next datagram right away, so a batch ends when nothing
        more is queued (the dump is over) or the buffer is nearly full.  Decoding each datagram
        between two receives ran ~40 % slower: the kernel's dump work evicted the decoder's caches.
        """
        view, size = self._view, len(self._buf)
        for request, seq, protocol in jobs:
            try:
                self._start(request)
                batch: list[tuple[int, int]] = []
                pos, done = 0, False
                while not done:
                    n = self._recv(view[pos:]) if size - pos >= _BATCH_ROOM else None
                    if n is not None and n > size - pos:
                        raise KernelParseError(f"sock_diag datagram of {n} bytes, buffer {size - pos}")
                    if n is not None and n >= 0:
                        batch.append((pos, n))
                        pos += n
                        continue
                    if not batch:     # nothing queued yet (seldom: the kernel formats a datagram per read)
                        self._wait()
                        continue
                    done = any(feed(view[at:at + length], length, seq, protocol) for at, length in batch)
                    batch.clear()
                    pos = 0
                self._dirty = False
            except OSError as e:
                raise _mapped(e, protocol) from None

    def _start(self, request: bytes) -> None:
        if self._dirty:
            self._drain()
        self._sock.send(request)
        self._dirty = True

    def _recv(self, buf: memoryview) -> int:
        """One datagram, -1 if none is queued; MSG_TRUNC makes the length the datagram's own, so
        truncation shows.  The socket is non-blocking: no poll() before each read either."""
        try:
            return self._sock.recv_into(buf, 0, socket.MSG_TRUNC)
        except BlockingIOError:
            return -1

    def _wait(self) -> None:
        """Until a datagram is queued (the kernel formats them as they are read: rarely needed)."""
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        if not poller.poll(self._timeout * 1000):
            raise TimeoutError(errno.ETIMEDOUT, f"sock_diag dump: no answer within {self._timeout:g} s")

    def _drain(self) -> None:
        """Read what an interrupted dump left (each read lets the kernel produce the next part)."""
        while self._recv(self._view) >= 0:
            pass
        self._dirty = False


def _mapped(e: OSError, protocol: int) -> OSError:
    """A dump's errors in plain words (old kernel, diag module missing); others unchanged."""
    if protocol == socket.IPPROTO_MPTCP:
        reasons = {
            errno.EINVAL: "kernel too old to dump MPTCP sockets (no INET_DIAG_REQ_PROTOCOL)",
            errno.ENOENT: "kernel built without MPTCP socket diagnostics (CONFIG_INET_MPTCP_DIAG)",
            errno.EOPNOTSUPP: "kernel cannot dump MPTCP sockets",
        }
    else:
        reasons = {errno.ENOENT: "kernel built without TCP socket diagnostics (CONFIG_INET_TCP_DIAG)"}
    reason = reasons.get(e.errno or 0)
    return MptcpDiagUnavailable(e.errno or 0, reason) if reason else e


def dump_connections(*, include_listeners: bool = False, processes: bool = True) -> list[DiagConnection]:
    """One poll with a throwaway :class:`DiagReader` (prefer a long-lived reader for repeated polls)."""
    with DiagReader(include_listeners=include_listeners, processes=processes) as reader:
        return reader.connections()
