"""Fallback verdicts against real middleboxes: iptables' TCPOPTSTRIP removes the MPTCP option (kind 30)
in the server's namespace, on its ingress, its egress, or only on data after the handshake.

From the client, a stripped SYN or SYN-ACK cannot be told from a plain-TCP server (both grow
MPCapableFallbackSYNACK): the verdict names both.  Options stripped after the handshake grow
MPCapableSYNACKRX then MPCapableDataFallback: a fallback after a completed MPTCP handshake.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mptop.core.events import describe_fallback
from mptop.lab import Lab
from tests.core.sampling import SYNACK, sample_download

pytestmark = pytest.mark.lab

DATA = "after the MPTCP handshake, data came without MPTCP options (a middlebox removes them)"
STRIP = ["-j", "TCPOPTSTRIP", "--strip-options", "30"]
MIDDLEBOXES = {
    "server_ingress": (["PREROUTING", "-p", "tcp", "--dport", "80"], SYNACK),
    "server_egress": (["POSTROUTING", "-p", "tcp", "--sport", "80"], SYNACK),
    "after_handshake": (["POSTROUTING", "-p", "tcp", "--sport", "80", "!", "--tcp-flags", "SYN", "SYN"], DATA),
}


@pytest.mark.parametrize("where", list(MIDDLEBOXES))
async def test_a_middlebox_stripping_mptcp_gets_the_verdict_its_evidence_allows(
        make_lab: Callable[..., Lab], where: str) -> None:
    lab = make_lab(rate_mbit={"wlan0": 40})
    rule, reason = MIDDLEBOXES[where]
    lab.run(lab.server, ["iptables", "-t", "mangle", "-A", *rule, *STRIP])
    size = 3_000_000
    with lab.client.entered():
        run = await sample_download(lab, lab.url(size))
    assert run.transfer.state == "done" and run.transfer.sha256 == lab.content_sha256(size)
    final = run.samples[-1].transfers[0]
    assert (final.status, final.reason) == ("fallback", reason)
    assert [e.detail for e in run.events if e.kind == "fallback"] == [describe_fallback("fallback", reason)]
    assert (run.summary.transfers[0].status, run.summary.transfers[0].reason) == ("fallback", reason)


async def test_a_backup_subflow_the_client_asked_for_is_flagged_backup(make_lab: Callable[..., Lab]) -> None:
    # The client's endpoint on Cellular is `subflow backup`: its MP_JOIN carries the backup bit, yet
    # SF_ESTABLISHED says backup=0 (docs/measured.md); the subflow's own flags (sock_diag) say backup.
    lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 10}, client_endpoints="subflow", server_signal=False)
    ep = lab.endpoints[("client", "wwan0")]
    lab.run(lab.client, ["ip", "mptcp", "endpoint", "change", "id", str(ep.id), "backup"])
    with lab.client.entered():
        run = await sample_download(lab, lab.url(6_000_000))
    assert run.transfer.state == "done" and run.host.events == "netlink"
    ups = {e.iface: e.detail for e in run.events if e.kind == "subflow_up"}
    assert set(ups) == {"wlan0", "wwan0"}
    assert ups["wwan0"].startswith("Cellular subflow (backup) up") and "(backup)" not in ups["wlan0"]
    flags = [{s.iface: s.backup for s in x.transfers[0].subflows} for x in run.samples
             if {s.iface for s in x.transfers[0].subflows} == {"wlan0", "wwan0"}]
    assert flags and all(f == {"wlan0": False, "wwan0": True} for f in flags)
    assert "path_stalled" not in [e.kind for e in run.events]
