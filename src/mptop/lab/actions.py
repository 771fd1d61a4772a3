"""The lab's actions on a running topology: links, rates, endpoints, backup, resets, counters."""

from __future__ import annotations

from mptop.lab.topology import LabBase


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
    def _dev_counters(self, iface: str) -> tuple[int, int]:
        name = self.path(iface).iface
        # /proc/PID/net shows the netns of PID: the holder's, i.e. the client namespace.
        with open(f"/proc/{self.client.pid}/net/dev") as f:
            for line in f:
                dev, sep, rest = line.partition(":")
                if sep and dev.strip() == name:
                    fields = rest.split()
                    return int(fields[0]), int(fields[8])
        raise RuntimeError(f"{name} missing from the client namespace")

    def rx_bytes(self, iface: str) -> int:
        """Bytes received by the client interface (the download direction)."""
        return self._dev_counters(iface)[0]

    def tx_bytes(self, iface: str) -> int:
        return self._dev_counters(iface)[1]
