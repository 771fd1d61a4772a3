"""Generic netlink plumbing for the path manager: a blocking request channel and a strict framing codec.

Why not pyroute2's sockets: pyroute2 0.9's synchronous API drives a private asyncio loop and raises
``RuntimeError: Cannot run the event loop while another loop is running`` when called from inside
a running loop (mptop always runs inside one), and its async API cannot serve synchronous callers.
A generic netlink request is answered by the kernel before ``send()`` returns, so a plain blocking
``AF_NETLINK`` socket is all that is needed.  pyroute2 still does the message marshalling
(family lookup, PM commands); the event path decodes with :func:`iter_messages`/:func:`iter_attrs`
below because pyroute2 has no message class for MPTCP events.

Every socket is created in the calling *thread's* network namespace.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink import (
    CTRL_CMD_GETFAMILY,
    GENL_ID_CTRL,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    ctrlmsg,
    nlmsg_base,
)
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.marshal import Marshal

from mptop.kernel.structs import NLMSG_HEADER
from mptop.kernel.types import KernelParseError

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_EXT_ACK = 11

GENL_HEADER = struct.Struct("=BBH")       # cmd, version, reserved
NLA_HEADER = struct.Struct("=HH")         # len, type
NLA_TYPE_MASK = 0x3FFF                    # strips NLA_F_NESTED / NLA_F_NET_BYTEORDER
NLA_F_NESTED = 0x8000
_RECV_SIZE = 65536


class GenlFamilyMissing(OSError):
    """The kernel has no generic netlink family of that name (module not built or not loaded)."""


@dataclass(frozen=True, slots=True)
class GenlFamily:
    name: str
    id: int
    groups: dict[str, int]   # multicast group name -> id


def open_socket(rcvbuf: int | None = None) -> socket.socket:
    """A generic netlink socket in the calling thread's netns, with extended acks on."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_GENERIC)
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


class GenlChannel:
    """Blocking request/response over one netlink socket; replies decoded by pyroute2 classes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.marshal = Marshal()
        self.marshal.msg_map[GENL_ID_CTRL] = ctrlmsg
        self._seq = 0

    def request(self, msg: nlmsg_base, msg_type: int, *, dump: bool = False,
                ack: bool = False) -> list[Any]:
        """Send ``msg``; return the reply messages.  A kernel error raises NetlinkError."""
        self._seq += 1
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0) | (NLM_F_ACK if ack else 0)
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = self._seq
        msg.encode()
        self.sock.send(msg.data)
        replies: list[Any] = []
        while True:
            data = self.sock.recv(_RECV_SIZE)
            for reply in self.marshal.parse(data):
                if reply["header"]["sequence_number"] != self._seq:
                    continue   # a late answer to an earlier, abandoned request
                error = reply["header"].get("error")
                if error is not None:
                    raise error
                kind = reply["header"]["type"]
                if kind in (NLMSG_DONE, NLMSG_ERROR):   # end of dump, or the ack (error 0)
                    return replies
                replies.append(reply)
                if not dump and not ack:
                    return replies

    def resolve(self, name: str) -> GenlFamily:
        """Look up a generic netlink family by name (ids are global, not per netns)."""
        msg = ctrlmsg()
        msg["cmd"] = CTRL_CMD_GETFAMILY
        msg["version"] = 1
        msg["attrs"] = [("CTRL_ATTR_FAMILY_NAME", name)]
        try:
            (reply,) = self.request(msg, GENL_ID_CTRL)
        except NetlinkError as e:
            if e.code == errno.ENOENT:
                raise GenlFamilyMissing(errno.ENOENT, f"generic netlink family {name!r} not found") from None
            raise
        groups = {g.get_attr("CTRL_ATTR_MCAST_GRP_NAME"): g.get_attr("CTRL_ATTR_MCAST_GRP_ID")
                  for g in reply.get_attr("CTRL_ATTR_MCAST_GROUPS", [])}
        return GenlFamily(name, reply.get_attr("CTRL_ATTR_FAMILY_ID"), groups)


@dataclass(frozen=True, slots=True)
class NetlinkMessage:
    type: int
    flags: int
    seq: int
    pid: int
    payload: bytes


def iter_messages(buf: bytes) -> Iterator[NetlinkMessage]:
    """Split one datagram into netlink messages.  Malformed framing raises KernelParseError."""
    offset, end = 0, len(buf)
    while offset < end:
        if end - offset < NLMSG_HEADER.size:
            raise KernelParseError(f"netlink header truncated: {end - offset} bytes left")
        length, kind, flags, seq, pid = NLMSG_HEADER.unpack_from(buf, offset)
        if length < NLMSG_HEADER.size or length > end - offset:
            raise KernelParseError(f"netlink message length {length} out of range ({end - offset} bytes left)")
        yield NetlinkMessage(kind, flags, seq, pid, bytes(buf[offset + NLMSG_HEADER.size:offset + length]))
        offset += (length + 3) & ~3


def split_genl(payload: bytes) -> tuple[int, int, bytes]:
    """(cmd, version, attribute bytes) of a generic netlink payload."""
    if len(payload) < GENL_HEADER.size:
        raise KernelParseError(f"generic netlink header truncated: {len(payload)} bytes")
    cmd, version, _ = GENL_HEADER.unpack_from(payload)
    return cmd, version, payload[GENL_HEADER.size:]


def iter_attrs(buf: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each netlink attribute; flag bits stripped.  Raises KernelParseError."""
    offset, end = 0, len(buf)
    while offset < end:
        if end - offset < NLA_HEADER.size:
            raise KernelParseError(f"netlink attribute header truncated: {end - offset} bytes left")
        length, kind = NLA_HEADER.unpack_from(buf, offset)
        if length < NLA_HEADER.size or length > end - offset:
            raise KernelParseError(f"netlink attribute {kind & NLA_TYPE_MASK} length {length} out of range")
        yield kind & NLA_TYPE_MASK, bytes(buf[offset + NLA_HEADER.size:offset + length])
        offset += (length + 3) & ~3


def pack_attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes (the inverse of :func:`iter_attrs`)."""
    header = NLA_HEADER.pack(NLA_HEADER.size + len(payload), kind)
    return header + payload + b"\0" * (-len(payload) % 4)
