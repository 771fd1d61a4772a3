"""Our transfers' subflows counted to their last byte (the kernel's destroy broadcasts), checked against a
capture of the client's interfaces: what each flow's receiver acknowledged."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mptop.lab import Lab
from mptop.lab import content as lab_content
from mptop.lab.server import listener
from tests.capture import capture, from_port
from tests.core.sampling import sample_download
from tests.core.tls import https_lab_routes
from tests.support import kill_subflow

pytestmark = pytest.mark.lab


def destroy_subscriptions(lab: Lab) -> int:
    """Sockets of the client's netns subscribed to the TCP destroy broadcasts, by the kernel's own list
    (sock_diag, protocol 4, groups 1 and 3)."""
    with open(f"/proc/{lab.client.pid}/net/netlink") as f:
        rows = [line.split() for line in f][1:]
    return sum(1 for row in rows if row[1] == "4" and int(row[3], 16) & 0b101)


def summary_of(stdout: str) -> dict[str, Any]:
    [summary] = [r for r in map(json.loads, stdout.splitlines()) if r["type"] == "summary"]
    return summary


def test_a_cellular_subflow_reset_between_polls_keeps_every_byte_it_received(make_lab: Callable[..., Lab]) -> None:
    """`mptop get` polling every 2 s; the cellular subflow (a join) is destroyed (``ss -K``, as a
    middlebox's reset would) once it has 1 MB, before any poll read it: its bytes come with its end
    (matched by the path-manager event that named it), so cellular's total is what the capture saw the
    client acknowledge there.  (The initial subflow cannot be checked so: reset, it stays attached to
    its connection with its counters zeroed, and its end comes without its address — docs/measured.md.)"""
    lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 20})
    size = 8_000_000
    with capture(lab) as cap:
        with lab.client.entered():
            proc = subprocess.Popen([sys.executable, "-m", "mptop", "get", "--json", "--interval", "2",
                                     "-o", "/dev/null", lab.url(size)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            kill_subflow(lab, proc, "198.51.100.1", 1_000_000)
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    [transfer] = summary_of(out)["transfers"]
    assert transfer["ok"] and transfer["sha256"] == lab.content_sha256(size), transfer
    for iface in ("wlan0", "wwan0"):
        flows = from_port(cap.flows[iface])
        assert abs(sum(flows) - transfer["path_bytes"][iface]) <= len(flows), \
            (iface, transfer["path_bytes"], sorted(cap.flows[iface].items()))
    assert transfer["path_bytes"]["wwan0"] >= 1_000_000 and transfer["path_bytes"]["wlan0"] > 1_000_000, transfer


def test_an_ordinary_download_matches_the_capture_to_the_byte(make_lab: Callable[..., Lab]) -> None:
    """Unshaped, so the transfer ends with data in flight: the paths' totals are the capture's."""
    lab = make_lab()
    size = 20_000_000
    with capture(lab) as cap:
        with lab.client.entered():
            result = subprocess.run([sys.executable, "-m", "mptop", "get", "--json", "-o", "/dev/null",
                                     lab.url(size)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [transfer] = summary_of(result.stdout)["transfers"]
    last = [r for r in map(json.loads, result.stdout.splitlines()) if r["type"] == "sample"][-1]
    assert {i: p["bytes"] for i, p in last["paths"].items()} == transfer["path_bytes"]   # the stream ends so too
    for iface in ("wlan0", "wwan0"):
        flows = from_port(cap.flows[iface])
        assert abs(sum(flows) - transfer["path_bytes"][iface]) <= len(flows), (iface, transfer, cap.flows[iface])


async def test_an_https_download_does_not_wait_for_an_end_that_has_come(lab: Lab, tmp_path: Path) -> None:
    """Over HTTPS the client closes first (its ``close_notify``), and MPTCP disconnects the initial
    subflow before freeing it: its end comes as ``0.0.0.0:<port>`` → ``<server>:0``, counters zeroed.
    Matched by its port, it settles the transfer: with a grace of 30 s the stream still ends at once
    (it waited the whole grace before, measured 1.0 s with the default one on every HTTPS download
    large enough to have its join).  The paths keep their bytes (the last poll's, and the join's end),
    and the stream's end closes the subscription (it stayed open as long as the sampler lived)."""
    size, grace = 12_000_000, 30.0
    with lab.server.entered():
        sock = listener(0, mptcp=True)
    async with https_lab_routes(sock, tmp_path) as port:
        url = f"https://{lab.paths[0].server_addr}:{port}/bytes/{size}"
        with lab.client.entered():
            run = await sample_download(lab, url, end_grace_s=grace, deadline_s=2 * grace, insecure=True)
    assert run.transfer.state == "done" and run.transfer.sha256 == lab_content.sha256(size), run.transfer.error
    assert run.transfer.ended_at is not None
    waited = time.monotonic() - run.transfer.ended_at      # the stream ended just now
    assert waited < grace / 2, f"the stream ended {waited:.1f} s after the transfer"
    [last] = run.summary.transfers
    assert last.path_bytes.get("wwan0", 0) > 0 and sum(last.path_bytes.values()) >= size, last.path_bytes
    assert destroy_subscriptions(lab) == 0, "the stream ended, its destroy subscription did not"
