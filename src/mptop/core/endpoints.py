"""The in-kernel path manager's endpoints and limits, as the Endpoints screen shows and changes them.

Every change is first *planned* (:class:`Change`: a sentence, the equivalent ``ip mptcp …``
command, the kernel calls), so a view can show the exact command and ask before applying it.

Everything acts on the network namespace of the *calling thread* (the kernel layer opens its
netlink socket there): call these from the thread that should be affected, e.g. the TUI's
event-loop thread, which is inside the lab's client netns in the demo.  Kernel calls take ~0.2 ms.

Write access: :meth:`EndpointManager.write_access` sends SET_LIMITS with *no* attribute.  The
kernel checks CAP_NET_ADMIN (GENL_UNS_ADMIN_PERM: in the user namespace owning this netns) before
running any handler, and with no attribute the handler rewrites both limits with their own values
under its lock: an atomic no-op.  This asks the authority itself; CapEff from /proc/self/status
would only tell the capabilities in the process's own user namespace (wrong for a netns owned by
another one) and would miss LSM denials.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mptop.kernel import host, pm
from mptop.kernel.pm import PathManagerError, PathManagerUnavailable
from mptop.kernel.types import Endpoint, EndpointFlag, NeedsNetAdmin
from mptop.kernel.types import Limits as Limits  # views name limits through core

FLAG_WORDS: tuple[tuple[str, EndpointFlag], ...] = (
    ("signal", EndpointFlag.SIGNAL), ("subflow", EndpointFlag.SUBFLOW), ("backup", EndpointFlag.BACKUP),
    ("fullmesh", EndpointFlag.FULLMESH), ("implicit", EndpointFlag.IMPLICIT), ("laminar", EndpointFlag.LAMINAR),
)
SETTABLE_FLAGS = ("subflow", "signal", "backup", "fullmesh")   # what `ip mptcp endpoint add` takes here
LIMIT_MAX = 8   # the kernel refuses larger limits (MPTCP_PM_ADDR_MAX)


class EndpointError(Exception):
    """A change that cannot be made, in one plain line."""


@dataclass(frozen=True, slots=True)
class EndpointRow:
    id: int
    address: str
    interface: str | None
    flags: tuple[str, ...]        # words from FLAG_WORDS, in that order
    port: int = 0

    @property
    def backup(self) -> bool:
        return "backup" in self.flags

    @property
    def fullmesh(self) -> bool:
        return "fullmesh" in self.flags


@dataclass(frozen=True, slots=True)
class LocalAddress:
    """An address of this netns an endpoint can use (for the add form)."""

    interface: str
    address: str


@dataclass(frozen=True, slots=True)
class PathManagerView:
    endpoints: tuple[EndpointRow, ...]
    limits: Limits | None
    path_manager: str | None      # "kernel" or "userspace" (net.mptcp.path_manager / pm_type)
    scheduler: str | None         # net.mptcp.scheduler
    writable: bool
    why_read_only: str | None
    addresses: tuple[LocalAddress, ...] = ()
    warnings: tuple[str, ...] = ()   # e.g. MPTCP disabled, userspace PM: endpoints unused

    def endpoint(self, id: int) -> EndpointRow | None:
        return next((e for e in self.endpoints if e.id == id), None)


@dataclass(frozen=True)
class Change:
    """One planned change: what it does, the equivalent iproute2 command, how to do it."""

    summary: str                  # "add endpoint 198.51.100.2 on wwan0 (subflow)"
    command: str                  # "ip mptcp endpoint add 198.51.100.2 dev wwan0 subflow"
    done: str                     # what to tell once applied
    steps: tuple[Callable[[], None], ...] = field(repr=False, default=())

    def apply(self) -> str:
        """Run the kernel calls in order; EndpointError (one line) if one fails."""
        for index, step in enumerate(self.steps):
            try:
                step()
            except (NeedsNetAdmin, PathManagerError, PathManagerUnavailable) as e:
                after = f" (after step {index} of {len(self.steps)} was applied)" if index else ""
                raise EndpointError(f"{one_line(e)}{after}") from None
        return self.done


def one_line(error: OSError) -> str:
    """The kernel layer's wording without Python's "[Errno N]" prefix."""
    return error.strerror or str(error)


def flag_words(flags: EndpointFlag | int) -> tuple[str, ...]:
    return tuple(word for word, bit in FLAG_WORDS if int(flags) & bit)


def _flags_from_words(words: Iterable[str]) -> EndpointFlag:
    known = dict(FLAG_WORDS)
    flags = EndpointFlag(0)
    for word in words:
        if word not in known:
            raise EndpointError(f"unknown endpoint flag {word!r} (known: {', '.join(known)})")
        flags |= known[word]
    return flags


def _row(endpoint: Endpoint) -> EndpointRow:
    return EndpointRow(endpoint.id, endpoint.address, endpoint.ifname, flag_words(endpoint.flags), endpoint.port)


def _add_command(address: str, ifname: str | None, words: Iterable[str], id: int | None = None,
                 port: int = 0) -> str:
    parts = ["ip mptcp endpoint add", address]
    parts += [f"id {id}"] if id is not None else []
    parts += [f"port {port}"] if port else []
    parts += [f"dev {ifname}"] if ifname else []
    return " ".join(parts + list(words))


def local_addresses() -> tuple[LocalAddress, ...]:
    """Addresses an endpoint can use: every interface's but loopback and IPv6 link-local."""
    found = []
    for iface in host.interfaces():
        for address in iface.addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if not (ip.is_loopback or ip.is_link_local):
                found.append(LocalAddress(iface.name, str(ip)))
    return tuple(found)


class EndpointManager:
    """Read and change this netns's endpoints and limits (calling thread's netns, see module doc)."""

    def __init__(self) -> None:
        self._access: tuple[bool, str | None] | None = None   # capabilities do not change: probe once

    # -- reading -------------------------------------------------------------------------------
    def write_access(self) -> tuple[bool, str | None]:
        """(writable, why not): asks the kernel with an atomic no-op SET_LIMITS (see module doc)."""
        if self._access is None:
            try:
                pm.set_limits()
                self._access = (True, None)
            except NeedsNetAdmin:
                self._access = (False, "changing endpoints and limits needs CAP_NET_ADMIN "
                                       "(run as root, or inside a user namespace you own)")
            except (PathManagerError, PathManagerUnavailable) as e:
                self._access = (False, one_line(e))
        return self._access

    def snapshot(self) -> PathManagerView:
        """Endpoints, limits, path manager and scheduler, write access, usable local addresses."""
        sysctls = host.mptcp_sysctls()
        path_manager = host.path_manager(sysctls)
        warnings = []
        if sysctls.get("enabled") == "0":
            warnings.append("MPTCP is disabled here (net.mptcp.enabled=0)")
        if path_manager == "userspace":
            warnings.append("the userspace path manager is active: it does not use these endpoints")
        try:
            endpoints, limits = tuple(_row(e) for e in pm.list_endpoints()), pm.get_limits()
        except (PathManagerError, PathManagerUnavailable) as e:
            return PathManagerView((), None, path_manager, sysctls.get("scheduler"), False, one_line(e),
                                   local_addresses(), tuple(warnings))
        writable, why = self.write_access()
        return PathManagerView(endpoints, limits, path_manager, sysctls.get("scheduler"), writable, why,
                               local_addresses(), tuple(warnings))

    def _find(self, key: int | str) -> EndpointRow:
        """An endpoint by id, or by address (a string that is not a number)."""
        try:
            endpoints = [_row(e) for e in pm.list_endpoints()]
        except (PathManagerError, PathManagerUnavailable) as e:
            raise EndpointError(one_line(e)) from None
        by_id = isinstance(key, int) or key.isdigit()
        found = [e for e in endpoints if (e.id == int(key) if by_id else e.address == key)]
        if not found:
            raise EndpointError(f"no MPTCP endpoint {'id ' if by_id else ''}{key} in this network namespace")
        return found[0]

    # -- planning ------------------------------------------------------------------------------
    def plan_add(self, address: str, ifname: str | None, flags: Iterable[str]) -> Change:
        address, ifname, words = address.strip(), (ifname or "").strip() or None, tuple(flags)
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError:
            raise EndpointError(f"{address!r} is not an IP address" if address else "no address given") from None
        bits = _flags_from_words(words)
        where = f" on {ifname}" if ifname else ""
        return Change(
            summary=f"add endpoint {address}{where} ({' '.join(words) or 'no flags'})",
            command=_add_command(address, ifname, words),
            done=f"endpoint {address}{where} added",
            steps=(lambda: pm.add_endpoint(address, flags=bits, ifname=ifname),),
        )

    def plan_delete(self, id: int) -> Change:
        row = self._find(id)
        return Change(
            summary=f"delete endpoint {id} ({row.address}); subflows using it are closed",
            command=f"ip mptcp endpoint delete id {id}",
            done=f"endpoint {id} ({row.address}) deleted",
            steps=(lambda: pm.delete_endpoint(id),),
        )

    def plan_flags(self, id: int, *, backup: bool | None = None, fullmesh: bool | None = None) -> Change:
        row = self._find(id)
        if "implicit" in row.flags:
            raise EndpointError(f"endpoint {id} is implicit (made by the kernel): its flags cannot change")
        words = [w for w, v in (("backup", backup), ("fullmesh", fullmesh)) if v is not None]
        if not words:
            raise EndpointError("nothing to change")
        said = [w if v else f"no{w}" for w, v in (("backup", backup), ("fullmesh", fullmesh)) if v is not None]
        return Change(
            summary=f"endpoint {id} ({row.address}): {', '.join(said)}",
            command=f"ip mptcp endpoint change id {id} {' '.join(said)}",
            done=f"endpoint {id} ({row.address}) is now {', '.join(said)}",
            steps=(lambda: pm.set_endpoint_flags(id, backup=backup, fullmesh=fullmesh),),
        )

    def plan_limits(self, *, subflows: int | None = None, add_addr_accepted: int | None = None) -> Change:
        given = {k: v for k, v in (("subflows", subflows), ("add_addr_accepted", add_addr_accepted)) if v is not None}
        if not given:
            raise EndpointError("no limit given")
        for name, value in given.items():
            if not 0 <= value <= LIMIT_MAX:
                raise EndpointError(f"{name} must be between 0 and {LIMIT_MAX}, not {value}")
        said = " ".join(f"{k} {v}" for k, v in given.items())
        return Change(
            summary=f"set the path manager's limits: {said}",
            command=f"ip mptcp limits set {said}",
            done=f"limits set: {said}",
            steps=(lambda: pm.set_limits(subflows=subflows, add_addr_accepted=add_addr_accepted),),
        )

    def plan_readd(self, key: int | str) -> Change:
        """Delete and re-add the same endpoint: the in-kernel PM, which never recreates a subflow
        it closed, opens a new one for existing connections (~15-50 ms later)."""
        row = self._find(key)
        if "implicit" in row.flags:
            raise EndpointError(f"endpoint {row.id} is implicit (made by the kernel): add a subflow endpoint "
                                f"for {row.address} instead")
        bits = _flags_from_words(row.flags)
        where = f" on {row.interface}" if row.interface else ""
        return Change(
            summary=f"re-add endpoint {row.id} ({row.address}{where}) for a new subflow; "
                    "subflows still using it are closed first",
            command=f"ip mptcp endpoint delete id {row.id} && "
                    + _add_command(row.address, row.interface, row.flags, row.id, row.port),
            done=f"endpoint {row.id} ({row.address}) re-added: the path manager opens new subflows from it",
            steps=(lambda: pm.delete_endpoint(row.id),
                   lambda: pm.add_endpoint(row.address, flags=bits, ifname=row.interface, id=row.id,
                                           port=row.port)),
        )

    # -- doing ---------------------------------------------------------------------------------
    def add(self, address: str, ifname: str | None, flags: Iterable[str]) -> str:
        return self.plan_add(address, ifname, flags).apply()

    def delete(self, id: int) -> str:
        return self.plan_delete(id).apply()

    def set_flags(self, id: int, *, backup: bool | None = None, fullmesh: bool | None = None) -> str:
        return self.plan_flags(id, backup=backup, fullmesh=fullmesh).apply()

    def set_limits(self, *, subflows: int | None = None, add_addr_accepted: int | None = None) -> str:
        return self.plan_limits(subflows=subflows, add_addr_accepted=add_addr_accepted).apply()

    def readd(self, key: int | str) -> str:
        return self.plan_readd(key).apply()
