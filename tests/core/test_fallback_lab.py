"""Fallback verdicts against real middleboxes: iptables' TCPOPTSTRIP removes the MPTCP option (kind 30)
in the server's namespace, on its ingress, its egress, or on every segment after the SYNs.

From the client, a stripped SYN or SYN-ACK cannot be told from a plain-TCP server (both grow
MPCapableFallbackSYNACK): the verdict names both.  Options stripped after the handshake grow
MPCapableSYNACKRX then MPCapableDataFallback: a fallback after a completed MPTCP handshake.

Stripped in one direction only (the server's data), the server never learns of the client's fallback
on this kernel (docs/measured.md, "A fallback only the client knows"): the download crawls at about
1 kB/s after its first 64 KB, whatever mptop does — its own test below says what mptop shows then.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mptop.core.events import describe_fallback
from mptop.core.model import Sample
from mptop.kernel import host
from mptop.lab import Lab
from tests.core.sampling import SYNACK, TCP_HEADERS, sample_download

pytestmark = pytest.mark.lab

DATA = "after the MPTCP handshake, data came without MPTCP options (a middlebox removes them)"
STRIP = ["-j", "TCPOPTSTRIP", "--strip-options", "30"]
TO_SERVER = ["PREROUTING", "-p", "tcp", "--dport", "80"]
TO_CLIENT = ["POSTROUTING", "-p", "tcp", "--sport", "80"]
NOT_SYN = ["!", "--tcp-flags", "SYN", "SYN"]
# Where the option is stripped, the client's verdict, and the server's own fallback counter: after
# the handshake means every non-SYN segment, both ways (one box on the path of both directions), so
# the server falls back too, at the client's third ACK — stripped one way only, see the crawl below.
MIDDLEBOXES = {
    "server_ingress": ([TO_SERVER], SYNACK, None),          # the server never saw MP_CAPABLE
    "server_egress": ([TO_CLIENT], SYNACK, "MPCapableFallbackACK"),
    "after_handshake": ([TO_SERVER + NOT_SYN, TO_CLIENT + NOT_SYN], DATA, "MPCapableFallbackACK"),
}
SERVER_FALLBACKS = {"MPCapableFallbackACK", "DssFallback"}


def strip_mptcp(lab: Lab, rules: list[list[str]]) -> None:
    for rule in rules:
        lab.run(lab.server, ["iptables", "-t", "mangle", "-A", *rule, *STRIP])


def server_counters(lab: Lab) -> dict[str, int]:
    with lab.server.entered():
        return host.mptcp_counters()


def grown_since(lab: Lab, before: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in server_counters(lab).items() if n > before.get(k, 0)}


@pytest.mark.parametrize("where", list(MIDDLEBOXES))
async def test_a_middlebox_stripping_mptcp_gets_the_verdict_its_evidence_allows(
        make_lab: Callable[..., Lab], where: str) -> None:
    lab = make_lab(rate_mbit={"wlan0": 40})
    rules, reason, server_fallback = MIDDLEBOXES[where]
    strip_mptcp(lab, rules)
    size = 3_000_000
    before = server_counters(lab)
    with lab.client.entered():
        run = await sample_download(lab, lab.url(size))
    assert SERVER_FALLBACKS & set(grown_since(lab, before)) == ({server_fallback} if server_fallback else set())
    assert run.transfer.state == "done" and run.transfer.sha256 == lab.content_sha256(size)
    final = run.samples[-1].transfers[0]
    assert (final.status, final.reason) == ("fallback", reason)
    assert [e.detail for e in run.events if e.kind == "fallback"] == [describe_fallback("fallback", reason)]
    assert (run.summary.transfers[0].status, run.summary.transfers[0].reason) == ("fallback", reason)


CRAWL_S = 2.5           # how long the test watches the crawl once the verdict is shown


async def test_options_stripped_only_towards_the_client_fall_back_and_crawl(make_lab: Callable[..., Lab]) -> None:
    # One path (no ADD_ADDR: a stripped ADD_ADDR that reaches the client before its request makes the
    # client fall back before it sends data, and the server learns of it from that data — a race).
    # The request goes out with MP_CAPABLE, the answer comes without DSS: the client falls back, its
    # plain ACKs carry no DATA_ACK, and the server waits for one, re-sending its first write (MPTCP
    # level) every RTO.  mptop can only show the truth: the fallback's cause and a crawl.
    lab = make_lab(rate_mbit={"wlan0": 40}, server_signal=False)
    strip_mptcp(lab, [TO_CLIENT + NOT_SYN])
    size = 3_000_000                     # 0.6 s at 40 Mbit/s, over an hour at the crawl
    seen: list[Sample] = []

    def watch(sample: Sample) -> str | None:
        seen.append(sample)
        fell_back = [s.t for s in seen if s.transfers[0].status == "fallback"]
        return "stopped by the test" if fell_back and sample.t - fell_back[0] >= CRAWL_S else None

    before = server_counters(lab)
    with lab.client.entered():
        run = await sample_download(lab, lab.url(size), watch, deadline_s=CRAWL_S + 20)
    grown = grown_since(lab, before)
    # The kernel's side of it: the server re-sent at MPTCP level and never fell back.
    assert grown.get("MPTCPRetrans", 0) > 0 and not SERVER_FALLBACKS & set(grown)
    final = run.samples[-1].transfers[0]
    assert (run.transfer.state, run.transfer.error) == ("failed", "stopped by the test")
    assert (final.status, final.reason) == ("fallback", DATA)
    assert [e.detail for e in run.events if e.kind == "fallback"] == [describe_fallback("fallback", DATA)]
    # The crawl, as the interface saw it and as mptop shows it: one receive window (64 KB), then a
    # few hundred bytes per RTO, where the link would have carried the whole 3 MB in 0.6 s.
    assert final.bytes < 200_000 and run.payload("wlan0", TCP_HEADERS) < 200_000
    crawl = sorted(x.transfers[0].rate_bps for x in run.samples if x.t >= run.samples[-1].t - CRAWL_S + 0.5)
    assert crawl and crawl[len(crawl) // 2] < 100_000        # bit/s: the median rate shown while it crawls


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
