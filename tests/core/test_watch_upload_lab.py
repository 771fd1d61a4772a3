"""`watch` on an upload it did not start (`mptcpize run curl -T`): each direction apart, the sent one
equal to what the client interfaces transmitted.

Ground truth: the client veths' tx counters, payload ≈ tx_bytes − 94 × tx_packets (docs/measured.md),
read right after each poll (the tbf queue sits before the counter, so bytes counted there are on the
wire and acknowledged within a round trip)."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from mptop.core.watch import WatchSampler
from mptop.core.watch_filter import ConnectionFilter

pytestmark = pytest.mark.lab

PATHS = ("wlan0", "wwan0")
WINDOW_S = 10.0


def interface_payload(lab) -> dict[str, int]:
    """The tx payload of each client interface."""
    return {iface: lab.dev_counters(iface).tx_payload for iface in PATHS}


def test_watch_totals_per_direction_match_the_interface_tx_counters(make_lab, tmp_path):
    if shutil.which("mptcpize") is None or shutil.which("curl") is None:
        pytest.fail("mptcpize and curl are needed: apt-get install mptcpize curl (.ci/run installs them)",
                    pytrace=False)
    lab = make_lab(upload_rate_mbit={"wlan0": 40, "wwan0": 10})
    size = 100_000_000                    # 16 s at 50 Mbit/s: the 10 s window fits with room on a slow machine
    path = tmp_path / "upload.bin"
    path.write_bytes(os.urandom(size))
    curl = lab.popen(lab.client, ["mptcpize", "run", "curl", "-s", "-S", "-o", "/dev/null", "-T", str(path),
                                  lab.upload_url()])
    try:
        with lab.client.entered():
            sampler = WatchSampler(interval=0.25, only=ConnectionFilter(process="curl"), pm_events=False)
            try:
                first = None
                deadline = time.monotonic() + 60
                while True:
                    assert curl.poll() is None, "curl ended before the window"
                    assert time.monotonic() < deadline, "the upload never used both paths"
                    sample, _ = sampler.poll()
                    counters = interface_payload(lab)
                    moving = all(sample.paths.get(i) and sample.paths[i].tx_bps > 0 for i in PATHS)
                    if first is None and moving:
                        first = (sample, counters)
                    elif first is not None and sample.t - first[0].t >= WINDOW_S:
                        last = (sample, counters)
                        break
                    time.sleep(0.25)
            finally:
                sampler.close()
        assert curl.poll() is None, "curl ended inside the window: its last bytes may be missing"
    finally:
        curl.kill()
        curl.wait()
    (s0, c0), (s1, c1) = first, last
    total_tx = sum(c1[i] - c0[i] for i in PATHS)
    for iface in PATHS:
        acked = s1.paths[iface].bytes_acked - s0.paths[iface].bytes_acked
        wire = c1[iface] - c0[iface]
        assert wire > 0.1 * total_tx, (iface, wire, total_tx)
        assert acked == pytest.approx(wire, rel=0.01), (iface, acked, wire)
        received = s1.paths[iface].bytes_received - s0.paths[iface].bytes_received
        assert received < 0.001 * wire, (iface, received)       # an upload's bytes are not counted as received
    [conn] = s1.connections or []
    assert conn.tx_bps > 0 and conn.bytes_acked > conn.bytes_received
