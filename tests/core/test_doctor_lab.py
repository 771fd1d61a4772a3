"""`mptop doctor` in the lab's client namespace: the verdicts and the fixes it names."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab


def doctor(lab, *args: str) -> tuple[int, dict]:
    with lab.client.entered():
        result = subprocess.run([sys.executable, "-m", "mptop", "doctor", "--json", *args], capture_output=True,
                                text=True, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def add_endpoint(lab, iface: str) -> None:
    path = lab.path(iface)
    lab.run(lab.client, ["ip", "mptcp", "endpoint", "add", path.client_addr, "dev", iface, "subflow"])


def test_healthy_host_exits_0(make_lab):
    lab = make_lab(client_endpoints="subflow")
    add_endpoint(lab, "wlan0")
    code, report = doctor(lab)
    failures = [c for c in report["checks"] if c["verdict"] == "fail"]
    assert code == 0 and report["ok"] and not failures
    checks = by_name(report)
    assert checks["enabled"]["verdict"] == "ok" and checks["socket"]["verdict"] == "ok"
    assert checks["endpoint wwan0"]["verdict"] == "ok" and "198.51.100.2" in checks["endpoint wwan0"]["detail"]
    assert checks["events"]["verdict"] == "ok" and checks["sock_diag"]["verdict"] == "ok"


def test_mptcp_disabled_names_the_sysctl_fix(lab):
    lab.sysctl(lab.client, "net.mptcp.enabled", "0")
    code, report = doctor(lab)
    assert code == 1 and not report["ok"]
    enabled = by_name(report)["enabled"]
    assert enabled["verdict"] == "fail" and "net.mptcp.enabled=1" in enabled["fix"]
    assert by_name(report)["socket"]["verdict"] == "fail"


def test_missing_endpoint_on_the_second_interface_names_the_ip_fix(lab):
    add_endpoint(lab, "wlan0")
    code, report = doctor(lab)
    assert code == 1
    wwan = by_name(report)["endpoint wwan0"]
    assert wwan["verdict"] == "fail"
    assert wwan["fix"] == "ip mptcp endpoint add 198.51.100.2 dev wwan0 subflow"
    assert by_name(report)["endpoint wlan0"]["verdict"] == "ok"


def test_client_that_ignores_announcements_is_told_to_raise_add_addr_accepted(lab):
    add_endpoint(lab, "wlan0")
    add_endpoint(lab, "wwan0")
    lab.run(lab.client, ["ip", "mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "0"])
    code, report = doctor(lab)
    limits = by_name(report)["limits"]
    assert code == 1 and limits["verdict"] == "fail" and "add_addr_accepted" in limits["fix"]


def test_url_reports_mptcp_and_subflows_or_fallback(lab):
    code, report = doctor(lab, "--url", lab.url(2_000_000))
    url = by_name(report)["url"]
    assert url["verdict"] == "ok" and "speaks MPTCP, 2 subflows" in url["detail"]
    code, report = doctor(lab, "--url", lab.url(2_000_000, tcp=True))
    url = by_name(report)["url"]
    assert code == 1 and url["verdict"] == "fail" and "fell back" in url["detail"]


def test_human_output_marks_each_line(lab):
    with lab.client.entered():
        result = subprocess.run([sys.executable, "-m", "mptop", "doctor"], capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert any(line.startswith("✗ endpoint wwan0") for line in lines)
    assert any(line.strip().startswith("fix: ip mptcp endpoint add") for line in lines)
    assert result.returncode == 1
