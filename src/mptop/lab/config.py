"""Lab configuration and the two paths (the lab's errors are in :mod:`mptop.lab.errors`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ClientEndpoints = Literal["none", "subflow", "fullmesh"]


@dataclass(frozen=True, slots=True)
class LabPath:
    """One path of the lab: a veth pair between the client and the server namespace."""

    iface: str            # client-side interface name
    label: str            # what it stands for ("Wi-Fi", "Cellular")
    client_addr: str
    server_addr: str
    prefix: int = 24

    @property
    def server_iface(self) -> str:
        return f"srv-{self.iface}"


PATHS: tuple[LabPath, ...] = (
    LabPath("wlan0", "Wi-Fi", "192.0.2.2", "192.0.2.1"),
    LabPath("wwan0", "Cellular", "198.51.100.2", "198.51.100.1"),
)


@dataclass(frozen=True)
class LabConfig:
    """What to build.  Rates are Mbit/s per client interface name; None/absent = unshaped.

    ``rate_mbit`` shapes the server's egress (the download direction), ``upload_rate_mbit``
    the client's egress.  ``delay_ms`` adds one-way delay on the server's egress and needs
    netem (see ``Lab.supports_delay``).  ``client_endpoints``: "none" gives 2 subflows (initial
    on wlan0 + a join on wwan0 after the server's ADD_ADDR), "subflow" 3, "fullmesh" 4.
    """

    rate_mbit: dict[str, float | None] = field(default_factory=dict)
    upload_rate_mbit: dict[str, float | None] = field(default_factory=dict)
    delay_ms: dict[str, float] = field(default_factory=dict)
    client_endpoints: ClientEndpoints = "none"
    server_signal: bool = True       # the server announces its second address (ADD_ADDR)
    subflow_limit: int = 8           # `ip mptcp limits` on both sides
    add_addr_accepted_limit: int = 8
    mptcp_port: int = 80
    tcp_port: int = 8080
    start_server: bool = True
    start_timeout: float = 15.0

    def __post_init__(self) -> None:
        names = {p.iface for p in PATHS}
        for what in (self.rate_mbit, self.upload_rate_mbit, self.delay_ms):
            unknown = set(what) - names
            if unknown:
                raise ValueError(f"unknown lab interface {sorted(unknown)[0]!r} (have: wlan0, wwan0)")
        if self.client_endpoints not in ("none", "subflow", "fullmesh"):
            raise ValueError(f"client_endpoints must be none, subflow or fullmesh, not {self.client_endpoints!r}")
