"""`mptop doctor` in the lab's client namespace: the verdicts, and every fix it prints runs as printed."""

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


def not_clean(report: dict) -> list[dict]:
    return [c for c in report["checks"] if c["verdict"] in ("fail", "advice")]


def sh(lab, command: str) -> None:
    """Run a command as a user pastes it, in the client namespace."""
    with lab.client.entered():
        result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"{command!r}: {result.stderr}"


def test_server_driven_client_with_an_implicit_endpoint_exits_0(lab):
    """The issue's laptop: no endpoints of its own, the server's ADD_ADDR brings the second path, the
    kernel adds an implicit endpoint (flags 0x10) — a working setup: a note, no ✗, exit 0."""
    with lab.client.entered():
        got = subprocess.run([sys.executable, "-m", "mptop", "get", "-o", "/dev/null", lab.url(2_000_000)],
                             capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert "rawflags 10" in lab.run(lab.client, ["ip", "mptcp", "endpoint", "show"]).stdout   # implicit
    code, report = doctor(lab)
    assert (code, report["ok"], not_clean(report)) == (0, True, [])
    checks = by_name(report)
    assert "implicit" in checks["endpoint wwan0"]["detail"] and checks["endpoint wwan0"]["verdict"] == "ok"
    note = checks["server-driven"]
    assert note["verdict"] == "info" and "only towards addresses the server announces" in note["detail"]
    code, report = doctor(lab, "--url", lab.url(2_000_000))
    assert code == 0 and "2 subflows came up" in by_name(report)["url"]["detail"]


def test_healthy_host_with_subflow_endpoints_exits_0(make_lab):
    lab = make_lab(client_endpoints="subflow")
    sh(lab, "ip mptcp endpoint add 192.0.2.2 dev wlan0 subflow")
    code, report = doctor(lab)
    assert (code, report["ok"], not_clean(report)) == (0, True, [])
    checks = by_name(report)
    assert checks["endpoint wwan0"]["verdict"] == "ok" and "198.51.100.2" in checks["endpoint wwan0"]["detail"]
    assert checks["events"]["verdict"] == "ok" and checks["sock_diag"]["verdict"] == "ok"
    assert "server-driven" not in checks


# (what breaks it, the check that must say so, its verdict)
BREAKAGES = [
    ("sysctl -w net.mptcp.enabled=0", "enabled", "fail"),
    ("ip mptcp limits set subflows 0 add_addr_accepted 8", "limits", "fail"),
    ("sysctl -w net.ipv4.conf.wwan0.rp_filter=1", "rp_filter", "fail"),
    ("sysctl -w net.ipv4.conf.all.rp_filter=1", "rp_filter", "fail"),
    ("sysctl -w net.mptcp.path_manager=userspace", "path manager", "fail"),
    ("ip mptcp endpoint flush", "endpoint wwan0", "advice"),
    ("ip mptcp endpoint flush && ip mptcp limits set subflows 2 add_addr_accepted 0", "limits", "advice"),
    ("ip mptcp endpoint flush && ip mptcp limits set subflows 0 add_addr_accepted 0", "limits", "advice"),
    ("ip mptcp endpoint flush && ip mptcp endpoint add 198.51.100.2 id 2 subflow", "endpoint wwan0", "advice"),
    ("ip mptcp endpoint flush && ip mptcp endpoint add 198.51.100.2 dev wwan0 id 2 backup", "endpoint wwan0",
     "advice"),
]


def test_each_broken_thing_is_named_and_its_printed_fix_runs(make_lab):
    """A laptop with two default routes (Wi-Fi preferred) and a `subflow` endpoint on the second: clean.
    Break one thing at a time; the doctor names it (✗ exits 1, advice exits 0), and running every
    printed fix verbatim gives a clean doctor again."""
    lab = make_lab(client_endpoints="subflow")
    sh(lab, "ip route add default via 192.0.2.1 dev wlan0 metric 100 && "
            "ip route add default via 198.51.100.1 dev wwan0 metric 200")
    code, report = doctor(lab)
    assert (code, not_clean(report)) == (0, []), report
    assert "preferred default route" in by_name(report)["endpoint wlan0"]["detail"]
    for breakage, name, verdict in BREAKAGES:
        sh(lab, breakage)
        code, report = doctor(lab)
        check = by_name(report)[name]
        assert (check["verdict"], code) == (verdict, 1 if verdict == "fail" else 0), (breakage, check)
        fixes = [c["fix"] for c in not_clean(report)]
        assert all(fixes) and check["fix"] in fixes, (breakage, report)
        assert not any("endpoint change" in fix for fix in fixes)      # iproute2: backup and fullmesh only
        if name == "limits":       # no note that announcements bring subflows while the limits ignore them
            assert "server-driven" not in by_name(report)
        for fix in dict.fromkeys(fixes):
            sh(lab, fix)
        code, report = doctor(lab)
        assert (code, not_clean(report)) == (0, []), (breakage, fixes, not_clean(report))


def test_url_reports_a_fallback_as_a_failure(lab):
    code, report = doctor(lab, "--url", lab.url(2_000_000, tcp=True))
    url = by_name(report)["url"]
    assert code == 1 and url["verdict"] == "fail" and "fell back" in url["detail"]


def test_human_output_marks_each_line(lab):
    sh(lab, "ip route add default via 192.0.2.1 dev wlan0 metric 100 && "
            "ip route add default via 198.51.100.1 dev wwan0 metric 200")
    with lab.client.entered():
        result = subprocess.run([sys.executable, "-m", "mptop", "doctor"], capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert any(line.startswith("! endpoint wwan0") for line in lines)
    assert any(line.strip() == "fix: ip mptcp endpoint add 198.51.100.2 dev wwan0 subflow" for line in lines)
    assert result.returncode == 0 and "MPTCP works here" in lines[-1]


def test_a_modem_preferred_over_wifi_is_noted(lab):
    sh(lab, "ip route add default via 192.0.2.1 dev wlan0 metric 600 && "
            "ip route add default via 198.51.100.1 dev wwan0 metric 100")
    code, report = doctor(lab)
    note = by_name(report)["route metrics"]
    assert code == 0 and note["verdict"] == "info"
    assert note["detail"].startswith("wwan0 (Cellular, metric 100) is preferred over wlan0 (Wi-Fi, metric 600)")


def test_strict_rp_filter_off_the_paths_is_not_a_failure(lab):
    """A dock's LAN (a veth with an address, no default route, no endpoint) filtering strictly carries
    no subflow: not a ✗. The same on a path (an endpoint, or a default route) is one."""
    sh(lab, "ip route add default via 192.0.2.1 dev wlan0 metric 100 && "
            "ip route add default via 198.51.100.1 dev wwan0 metric 200 && "
            "ip link add dock0 type veth peer name dock0p && ip addr add 203.0.113.2/24 dev dock0 && "
            "ip link set dock0p up && ip link set dock0 up && "
            "sysctl -w net.ipv4.conf.dock0.rp_filter=1")
    code, report = doctor(lab)
    rp = by_name(report)["rp_filter"]
    assert (code, rp["verdict"]) == (0, "ok") and "dock0" not in rp["detail"], rp
    sh(lab, "ip mptcp endpoint add 203.0.113.2 dev dock0 subflow")
    code, report = doctor(lab)
    rp = by_name(report)["rp_filter"]
    assert (code, rp["verdict"]) == (1, "fail") and "dock0" in rp["detail"], rp
