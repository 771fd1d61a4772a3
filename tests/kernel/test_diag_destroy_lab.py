"""The kernel's destroy broadcasts: each subflow's final counters as it is freed (any user), and a
connection read alone by its token, on real MPTCP sockets in the lab."""

from __future__ import annotations

import select
import time

import pytest

from mptop.kernel.diag import DiagReader
from mptop.kernel.diag_destroy import SubflowEnd, SubflowEnds
from mptop.lab import Lab
from tests.capture import capture, flow
from tests.kernel.test_diag_lab import held_download, mine, wait_for

pytestmark = pytest.mark.lab


def collect(ends: SubflowEnds, want: set[int], timeout: float = 15.0) -> dict[int, SubflowEnd]:
    """The destroy messages of the subflows with these local ports (waits for all of them)."""
    got: dict[int, SubflowEnd] = {}
    deadline = time.monotonic() + timeout
    while not want <= set(got) and time.monotonic() < deadline:
        select.select([ends._sock], [], [], 0.2)
        got.update({e.local[1]: e for e in ends.read_pending() if e.local[1] in want})
    return got


def test_every_subflow_of_a_download_reports_its_final_counters(lab: Lab) -> None:
    with lab.client.entered():
        reader, ends = DiagReader(), SubflowEnds()
    with reader, ends, capture(lab) as cap:
        with held_download(lab, 3_000_000) as sock:
            conn = wait_for(reader, sock, 2)
            seen = {sf.local[1]: sf for sf in mine(reader, sock).subflows}
            assert len(seen) == 2 and conn.token is not None
            assert reader.inode_of(conn.token) == conn.inode        # read alone, by token
        got = collect(ends, set(seen))
        assert set(got) == set(seen)
        for port, end in got.items():
            assert (end.local, end.remote) == (seen[port].local, seen[port].remote)
            last = seen[port].tcp
            assert last is not None and last.bytes_received is not None
            assert end.tcp.bytes_received is not None and end.tcp.bytes_received >= last.bytes_received
        assert reader.inode_of(conn.token) is None                    # gone
    # The body, its headers, the FINs — and what MPTCP sent again on the other subflow, which both
    # subflows count (25 kB more at load 9 in CI): each subflow's bytes as its acknowledgements in a
    # capture count them (within its FIN).
    assert sum(e.tcp.bytes_received or 0 for e in got.values()) > 3_000_000
    for port, e in got.items():
        carried = sum(flows.get(flow(e.remote, e.local), 0) for flows in cap.flows.values())
        assert abs(carried - (e.tcp.bytes_received or 0)) <= 1, (port, e.tcp, carried)
