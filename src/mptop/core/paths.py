"""Paths: the local interface a subflow leaves from.

A path is keyed by the **local** interface (found from the subflow's local address), never by the
remote address: with a server that announces a second address, two subflows may share a remote
address while leaving through different links, or the other way round (docs/measured.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from mptop.core.model import PathSample
from mptop.kernel.linktype import LinkKind, LinkType, by_name


def default_label(iface: str) -> str:
    """Wi-Fi / Cellular / … from the interface name's usual prefix alone, else the name itself."""
    return label_for(iface, None, by_name(iface))


def label_for(iface: str, overrides: Mapping[str, str] | None = None, kind: LinkKind | None = None) -> str:
    """The label a path is shown with: ``--label IFACE=NAME`` wins, then the link type read from the
    kernel (``kind``; the name's prefix without one), then the interface name."""
    if overrides and iface in overrides:
        return overrides[iface]
    return (kind or by_name(iface)).label or iface


def parse_label(option: str) -> tuple[str, str]:
    """One ``--label IFACE=NAME`` value; usable as an argparse ``type`` (ValueError → one line)."""
    iface, sep, name = option.partition("=")
    iface, name = iface.strip(), name.strip()
    if not sep or not iface or not name:
        raise ValueError(f"--label wants IFACE=NAME (e.g. wlan0=Home Wi-Fi), got {option!r}")
    return iface, name


def parse_labels(options: Iterable[str]) -> dict[str, str]:
    """All ``--label`` values as ``{iface: name}``; a later value for the same interface wins."""
    return dict(parse_label(o) for o in options)


class InterfaceLike(Protocol):
    """What :class:`mptop.kernel.host.Interface` tells (only these attributes are used)."""

    @property
    def name(self) -> str: ...
    @property
    def ifindex(self) -> int: ...
    @property
    def addresses(self) -> Iterable[str]: ...
    @property
    def up(self) -> bool: ...        # administratively up
    @property
    def running(self) -> bool: ...   # carrier: a link can be up and still have no carrier


def _normal(ip: str) -> str:
    """One spelling per address (IPv4-mapped IPv6 as IPv4, no zone, canonical IPv6)."""
    ip = ip.split("%", 1)[0].split("/", 1)[0]
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


@dataclass(slots=True)
class InterfaceMap:
    """Local address → interface name, interface → link up (admin up *and* carrier), and interface →
    link type (from :func:`mptop.kernel.linktype.link_kind`; the name's prefix for one not in ``kinds``)."""

    by_address: dict[str, str] = field(default_factory=dict)
    link_up: dict[str, bool] = field(default_factory=dict)
    kinds: dict[str, LinkKind] = field(default_factory=dict)

    @classmethod
    def from_interfaces(cls, interfaces: Iterable[InterfaceLike],
                        classify: Callable[[str, int], LinkKind] | None = None) -> InterfaceMap:
        """``classify(name, ifindex)``: the link type reader (none: types from names only)."""
        out = cls()
        for itf in interfaces:
            out.link_up[itf.name] = bool(itf.up and itf.running)
            if classify is not None:
                out.kinds[itf.name] = classify(itf.name, itf.ifindex)
            for address in itf.addresses:
                out.by_address[_normal(address)] = itf.name
        return out

    def iface_for(self, local_ip: str) -> str:
        """The interface owning ``local_ip``; the address itself when no interface has it."""
        ip = _normal(local_ip)
        return self.by_address.get(ip, ip)


@dataclass(slots=True)
class PathState:
    """Running totals of one path.  Bytes of subflows that closed stay in :attr:`bytes` (the direction
    the run carries) and in :attr:`rx_bytes` / :attr:`tx_bytes` (received / acknowledged)."""

    iface: str
    label: str
    link_type: LinkType = "other"
    bytes: int = 0
    rate_bps: float = 0.0
    subflows: int = 0
    link_up: bool | None = None
    stalled: bool = False
    waiting_on: str | None = None     # quiet, link up, while the transfer moves on these paths
    rx_bytes: int = 0                 # received (tcpi_bytes_received)
    tx_bytes: int = 0                 # sent and acknowledged (tcpi_bytes_acked)
    rx_bps: float = 0.0
    tx_bps: float = 0.0


class PathBook:
    """Per-path totals across all transfers, fed subflow by subflow each poll."""

    def __init__(self, labels: Mapping[str, str] | None = None) -> None:
        self.labels = dict(labels or {})
        self.paths: dict[str, PathState] = {}
        self._link_up: Mapping[str, bool] = {}
        self._kinds: Mapping[str, LinkKind] = {}

    def kind(self, iface: str) -> LinkKind:
        """The link type of ``iface`` as last read (from its name while none was)."""
        return self._kinds.get(iface) or by_name(iface)

    def label(self, iface: str) -> str:
        """What ``iface`` is called in samples and events (``--label``, else its link type)."""
        return label_for(iface, self.labels, self.kind(iface))

    def path(self, iface: str) -> PathState:
        state = self.paths.get(iface)
        if state is None:
            state = PathState(iface, self.label(iface), self.kind(iface).type, link_up=self._link_up.get(iface))
            self.paths[iface] = state
        return state

    def begin_poll(self, link_up: Mapping[str, bool], kinds: Mapping[str, LinkKind] | None = None) -> None:
        """Start a poll: rates and live-subflow counts are summed afresh, link state and types refreshed."""
        self._link_up = link_up
        if kinds:
            self._kinds = kinds
        for state in self.paths.values():
            state.rate_bps = state.rx_bps = state.tx_bps = 0.0
            state.subflows = 0
            state.link_up = link_up.get(state.iface)
            if state.iface in self._kinds:
                state.link_type, state.label = self.kind(state.iface).type, self.label(state.iface)

    def add_bytes(self, iface: str, delta: int) -> None:
        """Bytes a subflow gained since the last poll (also for a subflow that has just closed)."""
        self.path(iface).bytes += delta

    def add_directions(self, iface: str, rx_delta: int, tx_delta: int) -> None:
        """Bytes a subflow received and had acknowledged since the last poll, by direction."""
        state = self.path(iface)
        state.rx_bytes += rx_delta
        state.tx_bytes += tx_delta

    def add_live_subflow(self, iface: str, rate_bps: float, rx_bps: float = 0.0, tx_bps: float = 0.0) -> None:
        state = self.path(iface)
        state.subflows += 1
        state.rate_bps += rate_bps
        state.rx_bps += rx_bps
        state.tx_bps += tx_bps

    def samples(self) -> dict[str, PathSample]:
        """The per-path records of this poll, with each path's share of the current total rate."""
        total = sum(s.rate_bps for s in self.paths.values())
        return {
            iface: PathSample(
                label=s.label,
                link_type=s.link_type,
                rate_bps=s.rate_bps,
                bytes=s.bytes,
                share=s.rate_bps / total if total > 0 else 0.0,
                link_up=s.link_up,
                subflows=s.subflows,
                stalled=s.stalled,
                waiting_on=s.waiting_on,
                rx_bps=s.rx_bps,
                tx_bps=s.tx_bps,
                bytes_received=s.rx_bytes,
                bytes_acked=s.tx_bytes,
            )
            for iface, s in self.paths.items()
        }
