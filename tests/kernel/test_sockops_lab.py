"""The cgroup's sock_ops program: every subflow's counters as it closed — the initial subflow's too,
whose destroy broadcast the kernel blanks — checked against a packet capture of the interfaces and
against what the program read."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mptop.kernel.cgroups import RunCgroup
from mptop.kernel.sockops import SubflowCloses
from mptop.lab import Lab
from tests.capture import capture, flow
from tests.cli.test_run_lab import OWN_SOCKET
from tests.core.sampling import SHAPED

pytestmark = pytest.mark.lab
SIZE = 4_000_000


def download(lab: Lab, group: RunCgroup) -> int:
    """OWN_SOCKET's download of SIZE in ``group``, in the client netns: the bytes it read."""
    with lab.client.entered():
        done = subprocess.run([sys.executable, "-c", OWN_SOCKET, "192.0.2.1", f"/bytes/{SIZE}", "0"],
                              capture_output=True, text=True, timeout=120, preexec_fn=group.join)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[1])


def test_each_subflow_is_recorded_as_it_closed_with_its_final_counts(make_lab) -> None:
    lab = make_lab(rate_mbit=SHAPED)
    group = RunCgroup.create()
    assert group is not None, "no writable cgroup v2 (root in CI)"
    try:
        closes = SubflowCloses(group.path)
        try:
            with capture(lab) as cap:
                got = download(lab, group)
            ends = closes.take()
            assert closes.take() == []                           # each one once
        finally:
            closes.close()
    finally:
        group.remove()
    by_addr = {p.client_addr: p for p in lab.paths}
    assert sorted(by_addr[e.local[0]].iface for e in ends) == ["wlan0", "wwan0"], ends
    for end in ends:
        path = by_addr[end.local[0]]
        assert end.remote == (path.server_addr, 80), end          # the real pair, not the blank one
        carried = cap.flows[path.iface][flow(end.remote, end.local)]   # its FIN too
        received = end.tcp.bytes_received or 0
        assert abs(received - carried) <= 1, (path.iface, received, carried)
    # Every byte read came on one of them (each also counts its FIN; a segment resent on the
    # other subflow counts on both), the request's on the initial one.
    assert sum(e.tcp.bytes_received or 0 for e in ends) >= got + len(ends)
    assert max(e.tcp.bytes_acked or 0 for e in ends) > 60        # the request, on the initial subflow
