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
import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any

from pyroute2.netlink import nla
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic.mptcp import mptcp_msg

from mptop.kernel.genl import NLA_F_NESTED, GenlChannel, GenlFamily, GenlFamilyMissing, open_socket
from mptop.kernel.types import Endpoint, EndpointFlag, Limits, NeedsNetAdmin

PM_FAMILY = "mptcp_pm"
EVENTS_GROUP = "mptcp_pm_events"

CMD_ADD_ADDR = 1
CMD_DEL_ADDR = 2
CMD_GET_ADDR = 3
CMD_FLUSH_ADDRS = 4
CMD_SET_LIMITS = 5
CMD_GET_LIMITS = 6
CMD_SET_FLAGS = 7


class PathManagerUnavailable(OSError):
    """This kernel has no MPTCP path manager (no ``mptcp_pm`` generic netlink family)."""

    def __init__(self) -> None:
        super().__init__(errno.ENOENT, "this kernel has no MPTCP path manager (generic netlink family "
                                       "'mptcp_pm' missing: Linux < 5.6 or CONFIG_MPTCP off)")


class PathManagerError(OSError):
    """The kernel refused a path-manager request; the message carries its explanation."""


class _PmMsg(mptcp_msg):
    """pyroute2's ``mptcp_msg`` with the attributes it lacks (TOKEN, LOC_ID, ADDR_REMOTE, for
    SET_FLAGS) and IF_IDX decoded as the s32 it is (pyroute2 0.9 declares it 'hex')."""

    nla_map = (
        ("MPTCP_PM_ATTR_UNSPEC", "none"),
        ("MPTCP_PM_ATTR_ADDR", "pm_addr"),
        ("MPTCP_PM_ATTR_RCV_ADD_ADDRS", "uint32"),
        ("MPTCP_PM_ATTR_SUBFLOWS", "uint32"),
        ("MPTCP_PM_ATTR_TOKEN", "uint32"),
        ("MPTCP_PM_ATTR_LOC_ID", "uint8"),
        ("MPTCP_PM_ATTR_ADDR_REMOTE", "pm_addr"),
    )

    class pm_addr(nla):
        prefix = "MPTCP_PM_ADDR_ATTR_"
        nla_map = (
            ("MPTCP_PM_ADDR_ATTR_UNSPEC", "none"),
            ("MPTCP_PM_ADDR_ATTR_FAMILY", "uint16"),
            ("MPTCP_PM_ADDR_ATTR_ID", "uint8"),
            ("MPTCP_PM_ADDR_ATTR_ADDR4", "ipaddr"),
            ("MPTCP_PM_ADDR_ATTR_ADDR6", "ipaddr"),
            ("MPTCP_PM_ADDR_ATTR_PORT", "uint16"),
            ("MPTCP_PM_ADDR_ATTR_FLAGS", "uint32"),
            ("MPTCP_PM_ADDR_ATTR_IF_IDX", "int32"),
        )


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
        detail = e.args[1] if len(e.args) > 1 and e.args[1] else os.strerror(e.code)
        raise PathManagerError(e.code, f"{what}: {detail}") from None


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
    channel.marshal.msg_map[_family.id] = _PmMsg
    return channel, _family


def _request(what: str, cmd: int, attrs: Sequence[tuple[Any, ...]] = (), *,
             dump: bool = False, ack: bool = False) -> list[Any]:
    channel, family = open_pm()
    try:
        msg = _PmMsg()
        msg["cmd"] = cmd
        msg["version"] = 1
        msg["attrs"] = list(attrs)
        with pm_errors(what):
            return channel.request(msg, family.id, dump=dump, ack=ack)
    finally:
        channel.sock.close()


def _addr_nest(*pairs: tuple[str, Any]) -> tuple[str, dict[str, Any], int]:
    return ("MPTCP_PM_ATTR_ADDR", {"attrs": [(f"MPTCP_PM_ADDR_ATTR_{k}", v) for k, v in pairs]},
            NLA_F_NESTED)


def _ifname(ifindex: int) -> str | None:
    # if_indextoname asks the calling thread's netns: the same one the netlink socket lives in.
    if ifindex <= 0:
        return None
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return None   # the device went away (or lives in another netns)


def _endpoint(reply: Any) -> Endpoint:
    addr = reply.get_attr("MPTCP_PM_ATTR_ADDR")
    ifindex = addr.get_attr("MPTCP_PM_ADDR_ATTR_IF_IDX") or 0
    return Endpoint(
        id=addr.get_attr("MPTCP_PM_ADDR_ATTR_ID") or 0,
        address=addr.get_attr("MPTCP_PM_ADDR_ATTR_ADDR4") or addr.get_attr("MPTCP_PM_ADDR_ATTR_ADDR6") or "",
        flags=EndpointFlag(addr.get_attr("MPTCP_PM_ADDR_ATTR_FLAGS") or 0),
        ifindex=ifindex,
        ifname=_ifname(ifindex),
        port=addr.get_attr("MPTCP_PM_ADDR_ATTR_PORT") or 0,
    )


def list_endpoints() -> list[Endpoint]:
    """The endpoints of this netns, in the kernel's order (``ip mptcp endpoint show``)."""
    return [_endpoint(r) for r in _request("listing MPTCP endpoints", CMD_GET_ADDR, dump=True)]


def get_endpoint(id: int) -> Endpoint:
    """One endpoint by id; PathManagerError if there is none."""
    (reply,) = _request(f"reading MPTCP endpoint {id}", CMD_GET_ADDR, [_addr_nest(("ID", id))])
    return _endpoint(reply)


def add_endpoint(address: str, *, flags: EndpointFlag | int, ifname: str | None = None,
                 id: int | None = None, port: int = 0) -> None:
    """``ip mptcp endpoint add ADDRESS [id ID] [port PORT] [dev IFNAME] FLAGS``."""
    what = f"adding MPTCP endpoint {address}"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise PathManagerError(errno.EINVAL, f"{what}: not an IP address") from None
    pairs: list[tuple[str, Any]] = [("FAMILY", socket.AF_INET if ip.version == 4 else socket.AF_INET6),
                                    ("ADDR4" if ip.version == 4 else "ADDR6", str(ip)),
                                    ("FLAGS", int(flags))]
    if id is not None:
        pairs.append(("ID", id))
    if port:
        pairs.append(("PORT", port))
    if ifname is not None:
        try:
            pairs.append(("IF_IDX", socket.if_nametoindex(ifname)))
        except OSError:
            raise PathManagerError(errno.ENODEV, f"{what}: no interface {ifname!r} in this network namespace") from None
    _request(what, CMD_ADD_ADDR, [_addr_nest(*pairs)], ack=True)


def delete_endpoint(id: int) -> None:
    """``ip mptcp endpoint delete id ID``."""
    _request(f"deleting MPTCP endpoint {id}", CMD_DEL_ADDR, [_addr_nest(("ID", id))], ack=True)


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
             [_addr_nest(("ID", id), ("FLAGS", int(flags)))], ack=True)


def get_limits() -> Limits:
    """``ip mptcp limits show``."""
    (reply,) = _request("reading MPTCP limits", CMD_GET_LIMITS)
    return Limits(subflows=reply.get_attr("MPTCP_PM_ATTR_SUBFLOWS") or 0,
                  add_addr_accepted=reply.get_attr("MPTCP_PM_ATTR_RCV_ADD_ADDRS") or 0)


def set_limits(*, subflows: int | None = None, add_addr_accepted: int | None = None) -> None:
    """``ip mptcp limits set``; a limit left ``None`` keeps its value (the kernel allows 0..8)."""
    attrs: list[tuple[str, int]] = []
    if subflows is not None:
        attrs.append(("MPTCP_PM_ATTR_SUBFLOWS", subflows))
    if add_addr_accepted is not None:
        attrs.append(("MPTCP_PM_ATTR_RCV_ADD_ADDRS", add_addr_accepted))
    _request("setting MPTCP limits", CMD_SET_LIMITS, attrs, ack=True)
