"""The lab's actions on a running topology: links, rates, endpoints, backup, resets, counters."""

from __future__ import annotations

import json
from dataclasses import dataclass

from mptop.lab.errors import LabError
from mptop.lab.netns import Namespace
from mptop.lab.topology import LabBase, LabEndpoint, Side, endpoint_add_cmd

HEADER_BYTES = 94      # per packet on the lab veths: Ethernet + IPv4 + TCP with timestamps and DSS (docs/measured.md)


@dataclass(frozen=True, slots=True)
class DevCounters:
    rx_bytes: int
    rx_packets: int
    tx_bytes: int
    tx_packets: int

    @property
    def tx_payload(self) -> int:
        """TCP payload sent, about: tx_bytes − 94 × tx_packets (docs/measured.md)."""
        return self.tx_bytes - HEADER_BYTES * self.tx_packets


class Lab(LabBase):
    """A two-path MPTCP lab; see :mod:`mptop.lab` for the API."""

    def __enter__(self) -> Lab:
        return self.start()

    def start(self) -> Lab:
        super().start()
        return self

    # -- links and rates -----------------------------------------------------------------------
    def link_down(self, iface: str) -> None:
        """Take the client side of a path down (like losing Wi-Fi)."""
        self.run(self.client, ["ip", "link", "set", self.path(iface).iface, "down"])

    def link_up(self, iface: str) -> None:
        self.run(self.client, ["ip", "link", "set", self.path(iface).iface, "up"])

    def set_rate(self, iface: str, rate_mbit: float | None, upload: bool = False) -> None:
        """Shape a path's download (server egress) or, with ``upload``, its upload; None = unshaped."""
        p = self.path(iface)
        if upload:
            self.shape(self.client, p.iface, rate_mbit)
        else:
            self.shape(self.server, p.server_iface, rate_mbit, self.config.delay_ms.get(iface))

    # -- counters ------------------------------------------------------------------------------
    def dev_counters(self, iface: str) -> DevCounters:
        """The client interface's counters, as /proc/net/dev has them."""
        name = self.path(iface).iface
        # /proc/PID/net shows the netns of PID: the holder's, i.e. the client namespace.
        with open(f"/proc/{self.client.pid}/net/dev") as f:
            for line in f:
                dev, sep, rest = line.partition(":")
                if sep and dev.strip() == name:
                    fields = rest.split()
                    return DevCounters(int(fields[0]), int(fields[1]), int(fields[8]), int(fields[9]))
        raise RuntimeError(f"{name} missing from the client namespace")

    def rx_bytes(self, iface: str) -> int:
        """Bytes received by the client interface (the download direction)."""
        return self.dev_counters(iface).rx_bytes

    def tx_bytes(self, iface: str) -> int:
        return self.dev_counters(iface).tx_bytes

    # -- subflows ------------------------------------------------------------------------------
    def subflows(self, iface: str) -> list[tuple[str, str]]:
        """(local "ip:port", remote "ip:port") of the client's MPTCP subflows on this path."""
        out = self.run(self.client, ["ss", "-tniH", "state", "established", "src",
                                     self.path(iface).client_addr]).stdout
        found: list[tuple[str, str]] = []
        header: list[str] = []
        for line in out.splitlines():
            if not line.startswith(("\t", " ")):
                header = line.split()
            elif "tcp-ulp-mptcp" in line and len(header) >= 4:
                local, remote = header[-2], header[-1]
                found.append((_strip_dev(local), remote))
        return found

    def reset_subflows(self, iface: str) -> int:
        """Really RST the client's MPTCP subflows on this path (``ss -K``: SOCK_DESTROY sends a
        reset to the server).  The in-kernel PM never recreates them.  Returns how many."""
        killed = self.subflows(iface)
        for local, remote in killed:
            self.run(self.client, ["ss", "-K", "-t", "src", local, "dst", remote])
        return len(killed)

    # -- endpoints -----------------------------------------------------------------------------
    def _endpoint(self, iface: str, side: Side | None, present: bool) -> tuple[Side, LabEndpoint]:
        self.path(iface)
        sides: list[Side] = [side] if side else ["client", "server"]
        for s in sides:
            ep = self.endpoints.get((s, iface))
            if ep is not None and ep.present == present:
                return s, ep
        state = "present" if present else "deleted"
        raise LabError(f"no {state} MPTCP endpoint on {iface} ({side or 'client or server'} side)")

    def delete_endpoint(self, iface: str, side: Side | None = None) -> None:
        """Delete the path's endpoint (client's if it has one, else the server's signal endpoint:
        the client then gets RM_ADDR and the subflow closes)."""
        s, ep = self._endpoint(iface, side, present=True)
        self.run(self._ns(s), ["ip", "mptcp", "endpoint", "delete", "id", str(ep.id)])
        ep.present = False

    def add_endpoint(self, iface: str, side: Side | None = None) -> None:
        """Re-add a deleted endpoint (a new subflow follows ~50 ms later); with none deleted,
        add a client ``subflow`` endpoint on that path."""
        try:
            s, ep = self._endpoint(iface, side, present=False)
        except LabError:
            if (side or "client") != "client" or ("client", iface) in self.endpoints:
                raise
            self._remember("client", self.path(iface), ("subflow",))
            s, ep = "client", self.endpoints[("client", iface)]
        self.ip_batch(self._ns(s), [endpoint_add_cmd(ep)])
        ep.present = True

    def set_backup(self, iface: str, backup: bool = True) -> None:
        """Mark the path backup (or not): the *server* stops sending on it within ~1 s.

        Measured: `ip mptcp endpoint change ID backup` on the server's endpoint for the path's
        server address (one is added, flag-less, when missing) sends MP_PRIO and the server's
        scheduler moves the download off the path; the client's own endpoint (if any) is changed
        too.  Reliable with client_endpoints="none"; with more subflows per address only the
        first matching subflow is marked (kernel behaviour), so traffic may stay on the path.
        """
        p = self.path(iface)
        if ("server", iface) not in self.endpoints:
            self._remember("server", p, ())
            self.ip_batch(self.server, [endpoint_add_cmd(self.endpoints[("server", iface)])])
        word = "backup" if backup else "nobackup"
        for s in ("server", "client"):
            ep = self.endpoints.get((s, iface))
            if ep is None or not ep.present:
                continue
            self.run(self._ns(s), ["ip", "mptcp", "endpoint", "change", "id", str(ep.id), word])
            ep.flags = tuple(f for f in ep.flags if f != "backup") + (("backup",) if backup else ())

    # -- a side's endpoints and limits as a whole (the demo's `r` puts back what `e` changed) -------
    def endpoint_config(self, side: Side = "client") -> EndpointConfig:
        """The side's MPTCP endpoints and limits as the kernel has them now."""
        ns = self._ns(side)
        shown = json.loads(self.run(ns, ["ip", "-j", "mptcp", "endpoint", "show"]).stdout or "[]")
        endpoints = frozenset((int(e["id"]), str(e["address"]), e.get("dev"),
                               tuple(word for word in IP_FLAG_WORDS if e.get(word))) for e in shown)
        words = self.run(ns, ["ip", "mptcp", "limits", "show"]).stdout.split()
        limits = dict(zip(words[::2], words[1::2], strict=False))
        return EndpointConfig(endpoints, f"subflows {limits.get('subflows', 0)} "
                                         f"add_addr_accepted {limits.get('add_addr_accepted', 0)}")

    def restore_endpoint_config(self, saved: EndpointConfig, side: Side = "client") -> int:
        """Put the side's endpoints and limits back as ``saved``: endpoints added or changed since are
        deleted, deleted ones added again (same id, address, device, flags).  Returns the changes made."""
        now = self.endpoint_config(side)
        commands = [f"mptcp endpoint delete id {id_}" for id_, *_ in now.endpoints - saved.endpoints]
        for id_, address, dev, flags in sorted(saved.endpoints - now.endpoints):
            commands.append(f"mptcp endpoint add {address}{f' dev {dev}' if dev else ''} id {id_} {' '.join(flags)}"
                            .rstrip())
        if now.limits != saved.limits:
            commands.append(f"mptcp limits set {saved.limits}")
        if commands:
            self.ip_batch(self._ns(side), commands)
        present = {id_ for id_, *_ in saved.endpoints}
        for (s, _), ep in self.endpoints.items():
            if s == side:
                ep.present = ep.id in present
        return len(commands)

    def _ns(self, side: Side) -> Namespace:
        return self.client if side == "client" else self.server


IP_FLAG_WORDS = ("signal", "subflow", "backup", "fullmesh")   # as `ip -j` shows them and `ip mptcp` takes them


@dataclass(frozen=True)
class EndpointConfig:
    """What `ip mptcp endpoint show` and `ip mptcp limits show` say: (id, address, device, flags) per
    endpoint, and the limits as ``ip mptcp limits set`` takes them."""

    endpoints: frozenset[tuple[int, str, str | None, tuple[str, ...]]]
    limits: str


def _strip_dev(addr: str) -> str:
    """ "198.51.100.2%wwan0:51409" -> "198.51.100.2:51409" (ss prints the bound device)."""
    host, _, port = addr.rpartition(":")
    return f"{host.split('%')[0]}:{port}"
