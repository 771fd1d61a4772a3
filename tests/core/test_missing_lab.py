"""The missing-subflow warning in the lab: a subflow reset on a live, up path with an endpoint is flagged
within 2 s — in `mptop get --json` and `mptop watch --json` — and clears once the endpoint is re-added."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.lab

Record = dict[str, Any]


def read_until(proc: subprocess.Popen[bytes], records: list[Record], done: Callable[[Record], bool],
               timeout: float = 30.0) -> Record:
    """Read NDJSON records until one ``done`` accepts (within ``timeout``); all are kept in ``records``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, f"the command ended first: {proc.stderr.read() if proc.stderr else ''}"
        records.append(json.loads(line))
        if done(records[-1]):
            return records[-1]
    raise AssertionError("no such record in time")


def on_wwan(record: Record) -> bool:
    subflows = [s for t in record.get("transfers") or [] for s in t["subflows"]]
    subflows += [s for c in record.get("connections") or [] for s in c["subflows"]]
    return record["type"] == "sample" and any(s["iface"] == "wwan0" and not s["closed"] for s in subflows)


def missing_event(record: Record) -> bool:
    return record["type"] == "event" and record["kind"] == "subflow_missing"


def check_warning(lab, proc: subprocess.Popen[bytes]) -> None:
    """Reset wwan0's subflows while the download runs; the warning comes within 2 s of the close (the
    kernel's SUB_CLOSED time) and stays on the path; re-adding the endpoint brings a subflow back
    and clears it."""
    records: list[Record] = []
    read_until(proc, records, on_wwan)
    assert lab.reset_subflows("wwan0") >= 1
    event = read_until(proc, records, missing_event)
    closed = [r["t"] for r in records if r["type"] == "event" and r["kind"] == "subflow_down"
              and r["iface"] == "wwan0"]
    assert closed, records[-20:]
    assert event["iface"] == "wwan0" and 0 <= event["t"] - max(closed) <= 2.0, (event, closed)
    assert event["detail"].startswith("Cellular: no subflow since ") and "re-add endpoint? (" in event["detail"]
    # The command the warning names is the one that brings a subflow back.
    command = event["detail"].split("re-add endpoint? (", 1)[1].removesuffix(")")
    assert command == "ip mptcp endpoint delete id 2 && ip mptcp endpoint add 198.51.100.2 dev wwan0 id 2 subflow"
    flagged = read_until(proc, records, lambda r: r["type"] == "sample")
    assert flagged["paths"]["wwan0"]["no_subflow_s"] >= 0.75 and flagged["paths"]["wwan0"]["link_up"]
    assert flagged["paths"]["wlan0"]["no_subflow_s"] is None
    with lab.client.entered():
        subprocess.run(["sh", "-c", command], check=True, timeout=20)
    cleared = read_until(proc, records, lambda r: on_wwan(r) and r["paths"]["wwan0"]["no_subflow_s"] is None)
    assert cleared["paths"]["wwan0"]["link_up"]
    assert sum(1 for r in records if missing_event(r)) == 1


def test_get_flags_a_reset_subflow_within_2_s(make_lab) -> None:
    lab = make_lab(rate_mbit={"wlan0": 20, "wwan0": 10}, client_endpoints="subflow")
    proc = lab.popen(lab.client, [sys.executable, "-m", "mptop", "get", "--json", "--interval", "0.25", "-o",
                                  "/dev/null", lab.url(100_000_000)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     bufsize=0)
    try:
        check_warning(lab, proc)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_watch_flags_a_reset_subflow_of_another_process(make_lab) -> None:
    lab = make_lab(rate_mbit={"wlan0": 20, "wwan0": 10}, client_endpoints="subflow")
    watch = lab.popen(lab.client, [sys.executable, "-m", "mptop", "watch", "--json", "--interval", "0.25"],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    curl = lab.popen(lab.client, ["mptcpize", "run", "curl", "-s", "-o", "/dev/null", lab.url(100_000_000)])
    try:
        check_warning(lab, watch)
    finally:
        for proc in (curl, watch):
            proc.kill()
            proc.wait(timeout=10)
