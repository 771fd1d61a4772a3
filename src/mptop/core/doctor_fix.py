"""Who manages MPTCP endpoints on this host, and the command that adds a ``subflow`` endpoint their way.

A fix the doctor prints is a shell command that runs as printed (the lab test runs each one):

* NetworkManager ≥ 1.40 on an interface it manages: ``connection.mptcp-flags subflow`` on the
  interface's connection, then ``nmcli device reapply`` (NM then keeps the endpoint across address
  changes and reconnects; an endpoint added by hand would be dropped or go stale);
* mptcpd (its ``addr_adv`` plugin adds endpoints with the configured ``addr-flags``);
* otherwise ``ip mptcp endpoint add ADDRESS dev IFACE subflow`` (lost at reboot: persist it in the
  network configuration).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass

from mptop.kernel import host
from mptop.kernel.types import Endpoint, EndpointFlag

NM_MPTCP_SINCE = (1, 40)
MPTCPD_CONF = "/etc/mptcpd/mptcpd.conf"


def _nmcli(*args: str) -> str | None:
    if shutil.which("nmcli") is None:
        return None
    try:
        proc = subprocess.run(["nmcli", *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def nm_version() -> tuple[int, int] | None:
    """NetworkManager's version when it runs here (from ``nmcli --version``), else None."""
    if not host.process_running("NetworkManager"):
        return None
    out = _nmcli("--version") or ""
    match = re.search(r"(\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2])) if match else None


def nm_connection(iface: str) -> str | None:
    """The NetworkManager connection active on ``iface``; None when NM does not manage it."""
    out = _nmcli("-g", "GENERAL.STATE,GENERAL.CONNECTION", "device", "show", iface)
    if not out:
        return None
    lines = out.splitlines()
    state, connection = (lines + ["", ""])[:2]
    if "unmanaged" in state or not connection.strip():
        return None
    return connection.strip()


def readd_command(endpoint: Endpoint, iface: str) -> str:
    """Delete and re-add ``endpoint`` as a ``subflow`` endpoint bound to ``iface`` (its id, backup and
    fullmesh kept).  Re-adding also makes the in-kernel PM open a subflow from it on live connections;
    ``ip mptcp endpoint change`` cannot set ``subflow`` (backup and fullmesh only)."""
    keep = "".join(f" {f.name.lower()}" for f in (EndpointFlag.BACKUP, EndpointFlag.FULLMESH)
                   if f in endpoint.flags and f.name)
    return (f"ip mptcp endpoint delete id {endpoint.id} && ip mptcp endpoint add {endpoint.address} "
            f"dev {iface} id {endpoint.id} subflow{keep}")


@dataclass(frozen=True, slots=True)
class EndpointOwner:
    """What manages endpoints here: "NetworkManager", "mptcpd" or "ip" (by hand)."""

    name: str
    nm: tuple[int, int] | None = None

    @classmethod
    def detect(cls) -> EndpointOwner:
        nm = nm_version()
        if nm is not None and nm >= NM_MPTCP_SINCE:
            return cls("NetworkManager", nm)
        if host.process_running("mptcpd"):
            return cls("mptcpd", nm)
        return cls("ip", nm)

    def add_subflow_fix(self, iface: str, address: str) -> tuple[str, str]:
        """(how it is fixed in words, the command) for a ``subflow`` endpoint on ``iface``."""
        if self.name == "NetworkManager":
            connection = nm_connection(iface)
            if connection is not None:
                return ("NetworkManager manages it (≥ 1.40: connection.mptcp-flags)",
                        f"nmcli connection modify {shlex.quote(connection)} connection.mptcp-flags subflow "
                        f"&& nmcli device reapply {shlex.quote(iface)}")
        if self.name == "mptcpd":
            return ("mptcpd manages endpoints (addr-flags in its configuration)",
                    f"sed -i -e '/^#* *addr-flags *=/d' -e '/^\\[core\\]/a addr-flags=subflow' {MPTCPD_CONF} "
                    "&& systemctl restart mptcpd")
        return ("by hand, lost at reboot: persist it in the network configuration",
                f"ip mptcp endpoint add {address} dev {iface} subflow")
