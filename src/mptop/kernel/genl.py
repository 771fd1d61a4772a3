"""Generic netlink plumbing for the path manager: a blocking request channel and a strict framing codec.

A generic netlink request is answered by the kernel before ``send()`` returns, so a plain blocking
``AF_NETLINK`` socket is all that is needed, and the few messages mptop sends and reads (the family
lookup, the PM commands and events) are encoded and decoded here: no netlink library.  Why not
pyroute2: its synchronous API cannot run inside a running event loop
(docs/measured.md "pyroute2 gaps"), and ``import pyroute2`` loads its whole package (~145 ms on
an idle machine, more than the rest of ``mptop get`` together, docs/measured.md "Import costs").

Every socket is created in the calling *thread's* network namespace.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from typing import NamedTuple

from mptop.kernel.structs import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_HEADER
from mptop.kernel.types import KernelParseError

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_EXT_ACK = 11

NLM_F_CAPPED = 0x100        # on an error: only the request's header is echoed
NLM_F_ACK_TLVS = 0x200      # on an error: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1       # the kernel's explanation, a NUL-terminated string

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
CTRL_ATTR_MCAST_GROUPS = 7
CTRL_ATTR_MCAST_GRP_NAME = 1
CTRL_ATTR_MCAST_GRP_ID = 2

GENL_HEADER = struct.Struct("=BBH")       # cmd, version, reserved
NLA_HEADER = struct.Struct("=HH")         # len, type
NLA_TYPE_MASK = 0x3FFF                    # strips NLA_F_NESTED / NLA_F_NET_BYTEORDER
NLA_F_NESTED = 0x8000
_RECV_SIZE = 65536
_ERRNO = struct.Struct("=i")

Attrs = dict[int, bytes]                  # a message's attributes by type (payloads undecoded)


class GenlFamilyMissing(OSError):
    """The kernel has no generic netlink family of that name (module not built or not loaded)."""


class NetlinkError(OSError):
    """The kernel refused a request: ``code`` is the errno, ``kernel_message`` its extended-ack
    explanation when it gave one (e.g. "duplicate endpoint")."""

    def __init__(self, code: int, kernel_message: str | None = None) -> None:
        super().__init__(code, kernel_message or os.strerror(code))
        self.code = code
        self.kernel_message = kernel_message


class GenlFamily(NamedTuple):
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
    """Blocking request/response over one netlink socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._seq = 0

    def request(self, family: int, cmd: int, attrs: bytes = b"", *, version: int = 1,
                dump: bool = False, ack: bool = False) -> list[Attrs]:
        """Send ``cmd`` with the packed ``attrs`` (:func:`pack_attr`); the attributes of each reply.
        A kernel error raises :class:`NetlinkError`."""
        self._seq += 1
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0) | (NLM_F_ACK if ack else 0)
        body = GENL_HEADER.pack(cmd, version, 0) + attrs
        self.sock.send(NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), family, flags, self._seq, 0) + body)
        replies: list[Attrs] = []
        while True:
            for msg in iter_messages(self.sock.recv(_RECV_SIZE)):
                if msg.seq != self._seq:
                    continue   # a late answer to an earlier, abandoned request
                if msg.type == NLMSG_ERROR:
                    _raise_error(msg)
                    return replies                # the ack (error 0)
                if msg.type == NLMSG_DONE:        # end of dump
                    return replies
                replies.append(dict(iter_attrs(split_genl(msg.payload)[2])))
                if not dump and not ack:
                    return replies

    def resolve(self, name: str) -> GenlFamily:
        """Look up a generic netlink family by name (ids are global, not per netns)."""
        try:
            (reply,) = self.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY,
                                    pack_attr(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"))
        except NetlinkError as e:
            if e.code == errno.ENOENT:
                raise GenlFamilyMissing(errno.ENOENT, f"generic netlink family {name!r} not found") from None
            raise
        groups = {}
        for _index, nest in iter_attrs(reply.get(CTRL_ATTR_MCAST_GROUPS, b"")):
            group = dict(iter_attrs(nest))
            groups[text(group, CTRL_ATTR_MCAST_GRP_NAME)] = number(group, CTRL_ATTR_MCAST_GRP_ID, "=I")
        return GenlFamily(name, number(reply, CTRL_ATTR_FAMILY_ID, "=H"), groups)


def _raise_error(msg: NetlinkMessage) -> None:
    """Raise the NetlinkError an NLMSG_ERROR carries (with the kernel's extended-ack text); nothing for an ack."""
    if len(msg.payload) < _ERRNO.size + NLMSG_HEADER.size:
        raise KernelParseError(f"netlink error message truncated: {len(msg.payload)} bytes")
    (error,) = _ERRNO.unpack_from(msg.payload)
    if error == 0:
        return
    explanation = None
    if msg.flags & NLM_F_ACK_TLVS:
        echoed = NLMSG_HEADER.size if msg.flags & NLM_F_CAPPED else NLMSG_HEADER.unpack_from(msg.payload, 4)[0]
        try:
            tlvs = dict(iter_attrs(msg.payload[_ERRNO.size + echoed:]))
        except KernelParseError:
            tlvs = {}
        explanation = text(tlvs, NLMSGERR_ATTR_MSG) or None
    raise NetlinkError(-error, explanation)


def number(attrs: Attrs, kind: int, fmt: str, default: int = 0) -> int:
    """The integer attribute ``kind`` (struct format ``fmt``), ``default`` when absent."""
    value = attrs.get(kind)
    if value is None:
        return default
    try:
        return int(struct.unpack_from(fmt, value)[0])
    except struct.error:
        raise KernelParseError(f"netlink attribute {kind}: {len(value)} bytes, too short for {fmt}") from None


def text(attrs: Attrs, kind: int) -> str:
    """The string attribute ``kind`` (NUL-terminated), "" when absent."""
    return attrs.get(kind, b"").split(b"\0", 1)[0].decode(errors="replace")


class NetlinkMessage(NamedTuple):
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
