"""`mptop get --compare-tcp` through a Wi-Fi drop on the real lab: the plain-TCP download stalls and fails with
its reason while the MPTCP one moves to cellular — checked against a capture of the client's interfaces (each
path's bytes) and their counters (what each carried during the outage)."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mptop.lab import Lab
from tests.capture import capture, from_port
from tests.cli.tmux import MPTOP
from tests.support import payload_bytes

pytestmark = pytest.mark.lab

SIZE = 60_000_000
IDLE_S = 6                  # --idle-timeout: the TCP download gives up this long into the outage
PATHS = ("wlan0", "wwan0")


def payload(lab: Lab) -> dict[str, int]:
    """The client interfaces' payload bytes so far (rx_bytes − 94 × rx_packets)."""
    return payload_bytes(f"/proc/{lab.client.pid}/net/dev", PATHS)


def side(sample: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in sample["transfers"] if t.get("compare") == name)


def path_bytes(transfer: dict[str, Any], iface: str) -> int:
    return sum(s["bytes_received"] for s in transfer["subflows"] if s["iface"] == iface)


def run_through_a_drop(lab: Lab, recording: Path, on_record: Callable[[dict[str, Any]], None]) -> tuple[int, str]:
    """`mptop get --compare-tcp --record FILE` in the lab's client netns (its console, with the exit
    summary, on stderr), each record handed to ``on_record`` as the recording grows; (exit status, stderr)."""
    with lab.client.entered():
        proc = subprocess.Popen([*MPTOP, "get", "--compare-tcp", "--record", str(recording), "-o", "/dev/null",
                                 "--idle-timeout", str(IDLE_S), lab.url(SIZE)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()) if proc.stderr else None, daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    try:
        while not recording.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no recording"
            time.sleep(0.05)
        with recording.open() as f:
            pending = ""
            while True:
                line = f.readline()
                if line:
                    pending += line
                    if pending.endswith("\n"):
                        on_record(json.loads(pending))
                        pending = ""
                    continue
                if proc.poll() is not None:
                    break
                assert time.monotonic() < deadline, "mptop get --compare-tcp did not end"
                time.sleep(0.05)
        reader.join(timeout=30)
        return proc.returncode, "".join(stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_through_a_wifi_drop_tcp_stalls_and_fails_with_its_reason_while_mptcp_moves_to_cellular(
        make_lab: Callable[..., Lab], tmp_path: Path) -> None:
    lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 10})
    records: list[dict[str, Any]] = []
    marks: dict[str, tuple[float, dict[str, int]]] = {}      # step -> (monotonic time, payload counters)

    def on_record(record: dict[str, Any]) -> None:
        records.append(record)
        if "down" not in marks and record["type"] == "sample" and len(record["transfers"]) == 2 \
                and side(record, "tcp")["bytes"] > 3_000_000 and side(record, "mptcp")["state"] == "running":
            marks["down"] = (time.monotonic(), payload(lab))
            lab.link_down("wlan0")
        elif "down" in marks and "up" not in marks and record["type"] == "event" and record["kind"] == "comparison":
            marks["up"] = (time.monotonic(), payload(lab))        # TCP has given up: Wi-Fi comes back
            lab.link_up("wlan0")
            for iface in PATHS:             # nothing after this is about rates: the rest unshaped, in a moment
                lab.set_rate(iface, None)

    with capture(lab) as cap:
        code, stderr = run_through_a_drop(lab, tmp_path / "compare.ndjson", on_record)
    assert code == 0, stderr
    assert "up" in marks, ("the comparison never told TCP's failure", stderr)

    summary = records[-1]
    assert summary["type"] == "summary"
    mptcp, tcp = (next(t for t in summary["transfers"] if t["compare"] == s) for s in ("mptcp", "tcp"))
    assert mptcp["ok"] and mptcp["sha256"] == lab.content_sha256(SIZE) and mptcp["status"] == "mptcp"
    reason = f"no data from the server for {IDLE_S} s (idle timeout)"
    assert not tcp["ok"] and tcp["status"] == "tcp" and tcp["error"].startswith(reason), tcp
    # The exit summary covers both: MPTCP's ✓ line, TCP's end with its reason in the comparison's words.
    assert re.search(r"^✓ MPTCP http://\S+ → /dev/null: ", stderr, re.MULTILINE), stderr
    assert re.search(rf"^MPTCP vs TCP: MPTCP took \S+ s; TCP stalled \S+ s and failed: {re.escape(reason)}",
                     stderr, re.MULTILINE), stderr

    # TCP's one path, Wi-Fi, is the only one it ever used; the capture says every byte is accounted: each
    # path's flows toward the client carried what the two downloads counted there (to each subflow's end:
    # after the outage Wi-Fi still receives what cellular already delivered), within a byte per flow (its
    # FIN).  Not the interface counters: they also count segments no socket took — a duplicate, one beyond
    # the shared window, one after the socket is gone — up to 794 kB per path here (docs/measured.md).
    samples = [r for r in records if r["type"] == "sample" and len(r["transfers"]) == 2]
    assert {s["iface"] for r in samples for s in side(r, "tcp")["subflows"]} == {"wlan0"}
    assert tcp["path_bytes"].keys() == {"wlan0"}
    carried = {"wlan0": mptcp["path_bytes"]["wlan0"] + tcp["path_bytes"]["wlan0"],
               "wwan0": mptcp["path_bytes"]["wwan0"]}
    for iface in PATHS:           # the flows toward the client: a download's path bytes are what it received
        flows = from_port(cap.flows[iface])
        assert abs(sum(flows) - carried[iface]) <= len(flows), (iface, carried, sorted(cap.flows[iface].items()))

    events = [r for r in records if r["type"] == "event"]
    down_t = next(e["t"] for e in events if e["kind"] == "link_down" and e["iface"] == "wlan0")
    assert any(e["kind"] == "transfer_stalled" and e["transfer"] == tcp["id"] and e["t"] >= down_t for e in events)
    told = next(e for e in events if e["kind"] == "comparison")
    assert told["transfer"] == tcp["id"]
    words = re.fullmatch(r"TCP stalled (\d+(?:\.\d)?) s and failed; MPTCP kept ([\d.]+) Mbit/s over Cellular",
                         told["detail"])
    assert words, told["detail"]
    assert IDLE_S - 0.5 <= float(words[1]) <= IDLE_S + 3, told["detail"]

    # During the outage Wi-Fi carried nothing and cellular carried MPTCP at its shaped rate, by the counters …
    (t_down, at_down), (t_up, at_up) = marks["down"], marks["up"]
    assert at_up["wlan0"] - at_down["wlan0"] < 100_000, (at_down, at_up)
    cellular_mbit = (at_up["wwan0"] - at_down["wwan0"]) * 8 / (t_up - t_down) / 1e6
    assert 6.0 < cellular_mbit < 10.5, cellular_mbit
    # … and mptop's words say the same rate, over the same path, as its own samples.
    assert abs(float(words[2]) - cellular_mbit) <= 0.2 * cellular_mbit, (words[2], cellular_mbit)
    at_stall = next(r for r in samples if r["t"] >= down_t)
    at_told = next(r for r in samples if r["t"] >= told["t"])
    moved = {i: path_bytes(side(at_told, "mptcp"), i) - path_bytes(side(at_stall, "mptcp"), i) for i in PATHS}
    assert moved["wwan0"] > 20 * max(moved["wlan0"], 1) and moved["wwan0"] > 3_000_000, moved
