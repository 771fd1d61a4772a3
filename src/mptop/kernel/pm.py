"""The in-kernel MPTCP path manager (generic netlink family ``mptcp_pm``): endpoints and limits.

Every call acts on the network namespace of the *calling thread* (it opens its netlink socket
there), and resolves interface indexes to names in that same namespace.  Reading endpoints and
limits needs no privilege; writes raise :class:`~mptop.kernel.types.NeedsNetAdmin` without
CAP_NET_ADMIN.  Path-manager events live in :mod:`mptop.kernel.pm_events`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import struct
from collections.abc import Iterator

from mptop.kernel.genl import (
    NLA_F_NESTED,
    Attrs,
    GenlChannel,
    GenlFamily,
    GenlFamilyMissing,
    NetlinkError,
    iter_attrs,
    number,
    open_socket,
    pack_attr,
)
from mptop.kernel.types import Endpoint, EndpointFlag, Limits, NeedsNetAdmin

PM_FAMILY = "mptcp_pm"
EVENTS_GROUP = "mptcp_pm_events"
PM_VERSION = 1

CMD_ADD_ADDR = 1
CMD_DEL_ADDR = 2
CMD_GET_ADDR = 3
CMD_FLUSH_ADDRS = 4
CMD_SET_LIMITS = 5
CMD_GET_LIMITS = 6
CMD_SET_FLAGS = 7

# include/uapi/linux/mptcp_pm.h: the command attributes, and those of the nested address.
ATTR_ADDR = 1                 # nested ADDR_ATTR_*
ATTR_RCV_ADD_ADDRS = 2        # u32
ATTR_SUBFLOWS = 3             # u32
ADDR_ATTR_FAMILY = 1          # u16
ADDR_ATTR_ID = 2              # u8
ADDR_ATTR_ADDR4 = 3           # 4 bytes, network order
ADDR_ATTR_ADDR6 = 4           # 16 bytes, network order
ADDR_ATTR_PORT = 5            # u16, host order
ADDR_ATTR_FLAGS = 6           # u32
ADDR_ATTR_IF_IDX = 7          # s32


class PathManagerUnavailable(OSError):
    """This kernel has no MPTCP path manager (no ``mptcp_pm`` generic netlink family)."""

    def __init__(self) -> None:
        super().__init__(errno.ENOENT, "this kernel has no MPTCP path manager (generic netlink family "
                                       "'mptcp_pm' missing: Linux < 5.6 or CONFIG_MPTCP off)")


class PathManagerError(OSError):
    """The kernel refused a path-manager request; the message carries its explanation."""


_family: GenlFamily | None = None   # generic netlink family ids are global: resolve once


@contextlib.contextmanager
def pm_errors(what: str) -> Iterator[None]:
    """Turn netlink failures into mptop's typed errors, naming ``what`` was attempted."""
    try:
        yield
    except GenlFamilyMissing:
        raise PathManagerUnavailable() from None
    except NetlinkError as e:
        if e.code == errno.EPERM:
            raise NeedsNetAdmin(what) from None
        raise PathManagerError(e.code, f"{what}: {e.strerror}") from None


def open_pm(rcvbuf: int | None = None) -> tuple[GenlChannel, GenlFamily]:
    """A channel to ``mptcp_pm`` in the calling thread's netns (the caller closes ``.sock``)."""
    global _family
    channel = GenlChannel(open_socket(rcvbuf))
    try:
        with pm_errors("looking up the MPTCP path manager"):
            if _family is None:
                _family = channel.resolve(PM_FAMILY)
    except BaseException:
        channel.sock.close()
        raise
    return channel, _family


def _request(what: str, cmd: int, attrs: bytes = b"", *, dump: bool = False, ack: bool = False) -> list[Attrs]:
    channel, family = open_pm()
    try:
        with pm_errors(what):
            return channel.request(family.id, cmd, attrs, version=PM_VERSION, dump=dump, ack=ack)
    finally:
        channel.sock.close()


def _u32(kind: int, value: int) -> bytes:
    return pack_attr(kind, struct.pack("=I", value))


def _addr_nest(*fields: bytes) -> bytes:
    """The nested MPTCP_PM_ATTR_ADDR of these packed ADDR_ATTR_* attributes."""
    return pack_attr(ATTR_ADDR | NLA_F_NESTED, b"".join(fields))


def _id_attr(id: int) -> bytes:
    return pack_attr(ADDR_ATTR_ID, struct.pack("=B", id))


def _ifname(ifindex: int) -> str | None:
    # if_indextoname asks the calling thread's netns: the same one the netlink socket lives in.
    if ifindex <= 0:
        return None
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return None   # the device went away (or lives in another netns)


def _endpoint(reply: Attrs) -> Endpoint:
    addr = dict(iter_attrs(reply.get(ATTR_ADDR, b"")))
    ifindex = number(addr, ADDR_ATTR_IF_IDX, "=i")
    if ADDR_ATTR_ADDR4 in addr:
        address = str(ipaddress.IPv4Address(addr[ADDR_ATTR_ADDR4][:4]))
    elif ADDR_ATTR_ADDR6 in addr:
        address = str(ipaddress.IPv6Address(addr[ADDR_ATTR_ADDR6][:16]))
    else:
        address = ""
    return Endpoint(
        id=number(addr, ADDR_ATTR_ID, "=B"),
        address=address,
        flags=EndpointFlag(number(addr, ADDR_ATTR_FLAGS, "=I")),
        ifindex=ifindex,
        ifname=_ifname(ifindex),
        port=number(addr, ADDR_ATTR_PORT, "=H"),
    )


def list_endpoints() -> list[Endpoint]:
    """The endpoints of this netns, in the kernel's order (``ip mptcp endpoint show``)."""
    return [_endpoint(r) for r in _request("listing MPTCP endpoints", CMD_GET_ADDR, dump=True)]


def get_endpoint(id: int) -> Endpoint:
    """One endpoint by id; PathManagerError if there is none."""
    (reply,) = _request(f"reading MPTCP endpoint {id}", CMD_GET_ADDR, _addr_nest(_id_attr(id)))
    return _endpoint(reply)


def add_endpoint(address: str, *, flags: EndpointFlag | int, ifname: str | None = None,
                 id: int | None = None, port: int = 0) -> None:
    """``ip mptcp endpoint add ADDRESS [id ID] [port PORT] [dev IFNAME] FLAGS``."""
    what = f"adding MPTCP endpoint {address}"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise PathManagerError(errno.EINVAL, f"{what}: not an IP address") from None
    fields = [pack_attr(ADDR_ATTR_FAMILY, struct.pack("=H", socket.AF_INET if ip.version == 4 else socket.AF_INET6)),
              pack_attr(ADDR_ATTR_ADDR4 if ip.version == 4 else ADDR_ATTR_ADDR6, ip.packed),
              _u32(ADDR_ATTR_FLAGS, int(flags))]
    if id is not None:
        fields.append(_id_attr(id))
    if port:
        fields.append(pack_attr(ADDR_ATTR_PORT, struct.pack("=H", port)))
    if ifname is not None:
        try:
            fields.append(pack_attr(ADDR_ATTR_IF_IDX, struct.pack("=i", socket.if_nametoindex(ifname))))
        except OSError:
            raise PathManagerError(errno.ENODEV, f"{what}: no interface {ifname!r} in this network namespace") from None
    _request(what, CMD_ADD_ADDR, _addr_nest(*fields), ack=True)


def delete_endpoint(id: int) -> None:
    """``ip mptcp endpoint delete id ID``."""
    _request(f"deleting MPTCP endpoint {id}", CMD_DEL_ADDR, _addr_nest(_id_attr(id)), ack=True)


def flush_endpoints() -> None:
    """``ip mptcp endpoint flush``: remove every endpoint of this netns."""
    _request("flushing MPTCP endpoints", CMD_FLUSH_ADDRS, ack=True)


def set_endpoint_flags(id: int, *, backup: bool | None = None, fullmesh: bool | None = None) -> None:
    """``ip mptcp endpoint change id ID [no]backup [no]fullmesh``; ``None`` keeps the current value.

    SET_FLAGS replaces *both* bits, so the current flags are read first (not atomic: a concurrent
    change between the read and the write is lost).
    """
    flags = get_endpoint(id).flags
    for bit, wanted in ((EndpointFlag.BACKUP, backup), (EndpointFlag.FULLMESH, fullmesh)):
        if wanted is not None:
            flags = flags | bit if wanted else flags & ~bit
    _request(f"changing MPTCP endpoint {id}", CMD_SET_FLAGS,
             _addr_nest(_id_attr(id), _u32(ADDR_ATTR_FLAGS, int(flags))), ack=True)


def get_limits() -> Limits:
    """``ip mptcp limits show``."""
    (reply,) = _request("reading MPTCP limits", CMD_GET_LIMITS)
    return Limits(subflows=number(reply, ATTR_SUBFLOWS, "=I"),
                  add_addr_accepted=number(reply, ATTR_RCV_ADD_ADDRS, "=I"))


def set_limits(*, subflows: int | None = None, add_addr_accepted: int | None = None) -> None:
    """``ip mptcp limits set``; a limit left ``None`` keeps its value (the kernel allows 0..8)."""
    attrs = b""
    if subflows is not None:
        attrs += _u32(ATTR_SUBFLOWS, subflows)
    if add_addr_accepted is not None:
        attrs += _u32(ATTR_RCV_ADD_ADDRS, add_addr_accepted)
    _request("setting MPTCP limits", CMD_SET_LIMITS, attrs, ack=True)
