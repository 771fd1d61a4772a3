"""`mptop demo --scenario compare --headless`: in under a minute, plain TCP stalls at the Wi-Fi drop and gives
up with its reason while MPTCP carries on over cellular, then uses Wi-Fi again when it is back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import unavailable as lab_unavailable

pytestmark = pytest.mark.lab


def test_the_compare_scenario_tells_tcps_failure_and_mptcps_rate_with_the_runs_numbers() -> None:
    if os.geteuid() != 0:
        pytest.skip("this test runs the demo as root")
    result = subprocess.run([sys.executable, "-m", "mptop", "demo", "--scenario", "compare", "--headless", "--json",
                             "--duration", "120"], capture_output=True, text=True, timeout=240)
    if result.returncode != 0 and "mptop demo:" in result.stderr and "lab" in result.stderr:
        lab_unavailable(result.stderr.strip())
    assert result.returncode == 0, result.stderr        # TCP's failure is the point, not an error
    records = [json.loads(line) for line in result.stdout.splitlines()]
    events = [r for r in records if r["type"] == "event"]
    samples = [r for r in records if r["type"] == "sample"]
    summary = records[-1]
    assert summary["type"] == "summary"
    sides = {t["compare"]: t for t in summary["transfers"]}
    assert sides["mptcp"]["ok"] and sides["mptcp"]["status"] == "mptcp"
    assert not sides["tcp"]["ok"]
    assert sides["tcp"]["error"].startswith("no data from the server for 20 s (idle timeout)"), sides["tcp"]

    down = next(e["t"] for e in events if e["kind"] == "scenario" and e["detail"] == "Wi-Fi: link down")
    up = next(e["t"] for e in events if e["kind"] == "scenario" and e["detail"] == "Wi-Fi: link up")
    told, final = (e for e in events if e["kind"] == "comparison")
    words = re.fullmatch(r"TCP stalled (\d+) s and failed; MPTCP kept ([\d.]+) Mbit/s over Cellular", told["detail"])
    assert words, told["detail"]
    assert 19 <= int(words[1]) <= 23 and 7.0 <= float(words[2]) <= 10.5, told["detail"]   # 20 s idle, 10 Mbit
    assert down < told["t"] < up, (down, told, up)       # TCP gave up while Wi-Fi was still down
    assert final["detail"].startswith("MPTCP took ") and "TCP stalled" in final["detail"], final
    assert final["t"] < 60, final                        # the whole story in under a minute

    def mptcp_wifi(sample: dict) -> int:
        mptcp = next(t for t in sample["transfers"] if t["compare"] == "mptcp")
        return sum(s["bytes_received"] for s in mptcp["subflows"] if s["iface"] == "wlan0")

    before_up = [s for s in samples if s["t"] <= up][-1]
    assert mptcp_wifi(samples[-1]) - mptcp_wifi(before_up) > 5_000_000     # MPTCP took Wi-Fi back when it returned
