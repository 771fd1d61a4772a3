"""`mptop watch --json` as a subprocess in the lab's client netns, beside other processes' downloads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from mptop.lab import Lab

pytestmark = pytest.mark.lab


# -- the real command in the lab -------------------------------------------------------------------
def start_watch(lab: Lab, *args: str) -> subprocess.Popen[bytes]:
    """`mptop watch --json ARGS` in the client netns, once it has written its host record.

    Unbuffered on purpose: a buffered readline() may swallow the records after the host's,
    which communicate() (reading the pipe itself) would then never see."""
    proc = lab.popen(lab.client, [sys.executable, "-m", "mptop", "watch", "--json", "--interval", "0.5", *args],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    assert proc.stdout is not None
    host = json.loads(proc.stdout.readline())      # a raw pipe's readline reads up to the newline only
    assert host["type"] == "host" and host["labels"]["wlan0"] == "Wi-Fi" and host["labels"]["wwan0"] == "Cellular"
    return proc


def finish(proc: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, err) == (0, b"")
    return [json.loads(line) for line in out.splitlines()]


def read_until(proc: subprocess.Popen[bytes], last: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Records up to the first one ``last`` accepts (or to the end); then the pipe is closed,
    which a --json watch takes as its reader going away: it stops quietly with status 0."""
    assert proc.stdout is not None
    records = []
    for line in proc.stdout:
        records.append(json.loads(line))
        if last(records[-1]):
            break
    proc.stdout.close()
    assert proc.stderr is not None
    assert (proc.wait(timeout=10), proc.stderr.read()) == (0, b"")
    return records


def curl(lab: Lab, url: str) -> subprocess.Popen[bytes]:
    return lab.popen(lab.client, ["mptcpize", "run", "curl", "-s", "-o", "/dev/null", url])


def remote_port(conn: dict[str, Any]) -> int:
    return int(conn["remote"].rsplit(":", 1)[1])


@pytest.mark.lab
def test_watch_json_shows_another_process_download_on_both_paths_and_a_fallback(make_lab: Any) -> None:
    lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 10})
    everything = start_watch(lab, "--count", "10")
    only_fallback = start_watch(lab, "--count", "10", "--process", "curl", "--port", str(lab.config.tcp_port))
    download = curl(lab, lab.url(60_000_000))                 # ≥ 10 s at 50 Mbit: outlives the watch
    fallback = curl(lab, lab.url(30_000_000, tcp=True))
    records = finish(everything)
    samples = [r for r in records if r["type"] == "sample"]
    assert len(samples) == 10 and all(r["type"] in ("sample", "event") for r in records)

    seen = [(s["t"], c) for s in samples for c in s["connections"] if c["process"] == "curl"]
    mptcp = [(t, c) for t, c in seen if c["pid"] == download.pid]
    assert mptcp and all(c["status"] == "mptcp" and remote_port(c) == lab.config.mptcp_port for _, c in mptcp)
    two = [(t, c) for t, c in mptcp if sorted(s["iface"] for s in c["subflows"]) == ["wlan0", "wwan0"]]
    assert len(two) >= 3
    for iface in ("wlan0", "wwan0"):
        subs = [next(s for s in c["subflows"] if s["iface"] == iface) for _, c in two]
        assert subs[-1]["bytes_received"] > subs[0]["bytes_received"]
        assert any(s["rate_bps"] > 0 for s in subs)
        assert {s["path"] for s in subs} == {"Wi-Fi" if iface == "wlan0" else "Cellular"}
    assert sorted(s["join"] for s in two[-1][1]["subflows"]) == [False, True]
    assert any(c["rate_bps"] > 0 for _, c in two)
    assert [c["status"] for _, c in seen if c["pid"] == fallback.pid][-1:] == ["fallback"]

    # Path totals against the kernel's interface counters (frames include headers: always more).
    last = samples[-1]["paths"]
    assert 0 < last["wlan0"]["bytes"] <= lab.rx_bytes("wlan0") + lab.tx_bytes("wlan0")
    assert 0 < last["wwan0"]["bytes"] <= lab.rx_bytes("wwan0") + lab.tx_bytes("wwan0")
    assert last["wlan0"]["bytes"] > last["wwan0"]["bytes"]    # 40 vs 10 Mbit

    # --process curl --port 8080: only the fallback connection, so only its path.
    filtered = [r for r in finish(only_fallback) if r["type"] == "sample"]
    conns = [c for s in filtered for c in s["connections"]]
    assert conns and {(c["pid"], remote_port(c)) for c in conns} == {(fallback.pid, lab.config.tcp_port)}
    # Watch polls at once on a new connection's events, so it may first see it mid-handshake.
    statuses = [c["status"] for c in conns]
    first_fallback = statuses.index("fallback")
    assert set(statuses[:first_fallback]) <= {"connecting"} and set(statuses[first_fallback:]) == {"fallback"}
    assert set(filtered[-1]["paths"]) == {"wlan0"}


@pytest.mark.lab
def test_watch_json_infers_a_stall_when_wifi_goes_down_mid_download(make_lab: Any) -> None:
    lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 10})
    proc = start_watch(lab, "--count", "40")                  # at most 20 s
    download = curl(lab, lab.url(120_000_000))                # ≥ 19 s at 50 Mbit: outlives the outage
    time.sleep(2.0)
    lab.link_down("wlan0")
    time.sleep(2.5)
    lab.link_up("wlan0")
    # Wi-Fi's subflow resumes at its next backed-off retransmission, up to a few seconds after
    # the link is back: read until the recovery shows, then close the pipe (watch exits 0).
    wifi_recovered = ("event", "path_recovered", "wlan0")
    records = read_until(proc, lambda r: (r["type"], r.get("kind"), r.get("iface")) == wifi_recovered)
    assert download.poll() is None                            # still downloading: the stall was mid-transfer
    events = [(r["kind"], r["iface"]) for r in records if r["type"] == "event" and r["iface"] == "wlan0"
              and r["kind"] in ("link_down", "link_up", "path_stalled", "path_recovered")]
    assert events == [("link_down", "wlan0"), ("path_stalled", "wlan0"), ("link_up", "wlan0"),
                      ("path_recovered", "wlan0")], [r for r in records if r["type"] == "event"]
    assert not [r for r in records if r["type"] == "event" and r["kind"] == "path_stalled" and r["iface"] != "wlan0"]
    stalled = [s for s in records if s["type"] == "sample" and s["paths"].get("wlan0", {}).get("stalled")]
    assert len(stalled) >= 2 and stalled[-1]["paths"]["wwan0"]["bytes"] > stalled[0]["paths"]["wwan0"]["bytes"]
