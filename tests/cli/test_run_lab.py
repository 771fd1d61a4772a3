"""`mptop run -- CMD` in the lab's client namespace: exactly CMD's MPTCP connections, their bytes on
both paths (checked against a packet capture of the interfaces), and CMD's exit code as mptop's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from mptop.lab import Lab
from tests.capture import Capture, capture
from tests.core.sampling import SHAPED
from tests.support import kill_subflow, wait_for

pytestmark = pytest.mark.lab
SIZE = 12_000_000          # 2 s at 40 + 10 Mbit/s: every path carries megabytes of it

# A program that opens its own MPTCP socket (no LD_PRELOAD), downloads (``times`` times, one after
# the other), says what it read on which local address, and exits with a code of its own.
OWN_SOCKET = textwrap.dedent("""\
    import socket, sys
    host, path, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for _ in range(int(sys.argv[4]) if len(sys.argv) > 4 else 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
        s.connect((host, 80))
        s.sendall(f"GET {path} HTTP/1.1\\r\\nHost: {host}\\r\\nConnection: close\\r\\n\\r\\n".encode())
        got = 0
        while chunk := s.recv(1 << 16):
            got += len(chunk)
        local = "%s:%d" % s.getsockname()[:2]
        s.close()
        print("got", got, local, flush=True)
    sys.exit(code)
""")
REQUEST = len("GET /bytes/N HTTP/1.1\r\nHost: 192.0.2.1\r\nConnection: close\r\n\r\n") - 1   # + len(str(size))
def mptop_run(lab: Lab, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``mptop run ARGS`` in the client netns, in a session of its own (no terminal, as in CI)."""
    with lab.client.entered():
        return subprocess.run([sys.executable, "-m", "mptop", "run", *args], capture_output=True, text=True,
                              timeout=timeout, start_new_session=True)


def start_curl_run(lab: Lab, interval: str, size: int) -> subprocess.Popen[str]:
    """``mptop run --json -- curl URL`` in the client netns, its NDJSON read as it comes."""
    with lab.client.entered():
        return subprocess.Popen([sys.executable, "-m", "mptop", "run", "--json", "--interval", interval, "--",
                                 "curl", "-s", "-o", "/dev/null", lab.url(size)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def unrelated_download(lab: Lab) -> tuple[subprocess.Popen[bytes], str]:
    """A slow MPTCP download in the same netns, not started by mptop (4 kB/s: within the byte checks'
    margin however long a loaded machine takes); its local "ip:port" once listed."""
    proc = lab.popen(lab.client, ["mptcpize", "run", "curl", "-s", "-o", "/dev/null",
                                  lab.base_url() + "/slow/100000000?bps=4000"])
    wait_for(lambda: bool(lab.subflows("wlan0")) or proc.poll() is not None, timeout=30)
    assert proc.poll() is None, "the unrelated download ended early"
    return proc, lab.subflows("wlan0")[0][0]


def check_paths_carried_the_bytes(cap: Capture, result: subprocess.CompletedProcess[str], process: str,
                                  count: int = 1, beside: float = 4_000) -> list[dict[str, Any]]:
    """CMD's ``count`` connections: bytes on both paths, each path's total (every connection's
    subflows, to their last byte: the first subflow's last bytes come from the cgroup's sock_ops
    program, the others' from the destroy broadcasts) as a capture of the interface counted it —
    what each TCP flow's receiver acknowledged — within a byte per flow (its FIN), plus what an
    unrelated download beside added while mptop ran (``beside`` B/s; its flows began before the
    capture, so mostly not counted)."""
    summary = records(result.stdout)[-1]
    assert summary["type"] == "summary", result.stderr
    conns = summary["connections"]
    assert len(conns) == count, conns
    for conn in conns:
        assert conn["process"].startswith(process) and conn["status"] == "mptcp", conn
    others = beside * (summary["duration_s"] + 2)
    for iface in ("wlan0", "wwan0"):
        flows = cap.flows[iface]
        carried = sum(flows.values())
        counted = sum(conn["path_bytes"][iface] for conn in conns)
        assert counted > 0.1 * SIZE, (iface, [c["path_bytes"] for c in conns])   # both paths carried it
        assert -len(flows) <= carried - counted <= len(flows) + others, \
            f"{iface}: counted {counted} B, captured {carried} B in {len(flows)} flows {sorted(flows.items())}; " \
            f"each connection: {[(sum(c['path_bytes'].values()), c['path_bytes']) for c in conns]}"
    return conns


def check_every_byte_read_is_counted(result: subprocess.CompletedProcess[str], conns: list[dict[str, Any]],
                                     size: int) -> None:
    """Each connection's paths carried at least what CMD read on it and its request: a last interval
    missing fails here.  (More is right: SYN/FIN, and segments MPTCP sent again on another subflow
    when one stalled — the interfaces carried those too, and check_paths_carried_the_bytes bounds them.)"""
    read = {line.split()[2]: int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("got ")}
    assert sorted(read) == sorted(c["local"] for c in conns), (read, conns)
    for conn in conns:
        data = read[conn["local"]] + REQUEST + len(str(size))
        assert read[conn["local"]] > size and sum(conn["path_bytes"].values()) >= data, \
            (conn["local"], read[conn["local"]], conn["path_bytes"], sum(conn["path_bytes"].values()) - data)


def test_own_mptcp_socket_no_force_both_paths_not_the_other_download(make_lab) -> None:
    lab = make_lab(rate_mbit=SHAPED)
    other, other_local = unrelated_download(lab)
    try:
        with capture(lab) as cap:
            result = mptop_run(lab, "--no-force", "--json", "--interval", "0.1", "--",
                               sys.executable, "-c", OWN_SOCKET, "192.0.2.1", f"/bytes/{SIZE}", "3")
        assert result.returncode == 3, result.stderr               # CMD's exit code is mptop's
        [conn] = check_paths_carried_the_bytes(cap, result, "python")
        check_every_byte_read_is_counted(result, [conn], SIZE)       # --json: CMD's stdout goes to stderr
        shown = {c["local"] for r in records(result.stdout) if r["type"] == "sample" for c in r["connections"]}
        assert shown == {conn["local"]}
        assert other_local not in shown and other.poll() is None     # running all along, never shown
    finally:
        other.kill()
        other.wait()


def test_each_connections_last_bytes_are_on_its_paths(make_lab) -> None:
    """Eight downloads one after the other, each closed right after its last read: every one's first
    subflow is reset by the kernel before it is freed (its destroy broadcast is blank), and the
    connection can be gone before a reader woken by its CLOSED event runs.  Its last bytes count
    all the same, on their path, for every connection."""
    lab = make_lab(rate_mbit=SHAPED)
    count, size = 8, SIZE // 8
    with capture(lab) as cap:
        result = mptop_run(lab, "--no-force", "--json", "--interval", "0.1", "--",
                           sys.executable, "-c", OWN_SOCKET, "192.0.2.1", f"/bytes/{size}", "0", str(count))
    assert result.returncode == 0, result.stderr
    conns = check_paths_carried_the_bytes(cap, result, "python", count, beside=0)
    check_every_byte_read_is_counted(result, conns, size)


def test_an_initial_subflow_killed_mid_transfer_keeps_its_bytes(make_lab) -> None:
    """The Wi-Fi subflow (the initial one) is destroyed mid-download (``ss -K``, as a middlebox's RST
    would): MPTCP resets it at once, long before the connection ends, and the download finishes on
    cellular.  Every byte ``ss`` saw it receive before the kill is still counted on Wi-Fi (a poll
    at the SUB_CLOSED event comes after the reset; polls are 2 s apart here)."""
    lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 20})
    size = 8_000_000
    with capture(lab) as cap:
        with lab.client.entered():
            proc = subprocess.Popen([sys.executable, "-m", "mptop", "run", "--no-force", "--json", "--interval", "2",
                                     "--", sys.executable, "-c", OWN_SOCKET, "192.0.2.1", f"/bytes/{size}", "0"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            seen = kill_subflow(lab, proc, "192.0.2.1", 2_000_000)   # the Wi-Fi one, until 2 MB
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    [conn] = records(out)[-1]["connections"]
    flows = cap.flows["wlan0"]
    # Nothing the subflow received is lost; nothing is invented.
    assert seen <= conn["path_bytes"]["wlan0"] <= sum(flows.values()) + len(flows), (seen, conn["path_bytes"], flows)
    assert conn["path_bytes"]["wwan0"] > 1_000_000, conn


def test_plain_curl_is_forced_to_mptcp_and_its_exit_code_is_mptops(make_lab) -> None:
    lab = make_lab(rate_mbit=SHAPED)
    other, other_local = unrelated_download(lab)
    try:
        with capture(lab) as cap:
            result = mptop_run(lab, "--json", "--interval", "0.1", "--", "curl", "-s", "-o", "/dev/null",
                               lab.url(SIZE))
        assert result.returncode == 0, result.stderr
        [conn] = check_paths_carried_the_bytes(cap, result, "curl")
        assert conn["bytes"] >= SIZE
        shown = {c["local"] for r in records(result.stdout) if r["type"] == "sample" for c in r["connections"]}
        assert shown == {conn["local"]} and other_local not in shown
        # A failing CMD: curl -f on a 404 exits 22, and so does mptop (its connection lasts a few
        # milliseconds: whether a poll catches it is not what this checks).
        failed = mptop_run(lab, "--json", "--", "curl", "-sf", "-o", "/dev/null", lab.base_url() + "/status/404")
        assert failed.returncode == 22, failed.stderr
        summary = records(failed.stdout)[-1]
        assert summary["exit_code"] == 22 and "exited with code 22" in failed.stderr, summary
    finally:
        other.kill()
        other.wait()


def test_a_child_of_a_child_is_followed_and_a_signal_is_128_plus_n(make_lab) -> None:
    """sh starts curl in the background and waits; then sh kills itself with SIGTERM: 143."""
    lab = make_lab(rate_mbit=SHAPED)
    script = f"curl -s -o /dev/null {lab.url(5_000_000)} & wait; kill -TERM $$"
    result = mptop_run(lab, "--json", "--interval", "0.1", "--", "sh", "-c", script)
    assert result.returncode == 143, result.stderr
    [conn] = records(result.stdout)[-1]["connections"]
    assert conn["process"] == "curl" and conn["bytes"] > 0, conn


def test_ctrl_c_goes_to_cmd_first(make_lab) -> None:
    """SIGINT to mptop (no terminal: nobody else sent it) reaches CMD; mptop waits for it and exits
    with CMD's code, after the summary."""
    lab = make_lab(rate_mbit={"wlan0": 2, "wwan0": 2})
    proc = start_curl_run(lab, "0.1", 100_000_000)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:                 # until curl's connection is listed (a line per 0.1 s poll)
            assert time.monotonic() < deadline, "curl's connection never listed"
            record = json.loads(line)
            if record["type"] == "sample" and record["connections"]:
                break
        started = time.monotonic()
        proc.send_signal(2)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err       # curl ended by SIGINT
        assert time.monotonic() - started < 30
        summary = records(out)[-1]
        assert summary["type"] == "summary" and summary["exit_code"] == 130
        assert "exited with code 130" in err
    finally:
        proc.kill()
        proc.wait()


def test_a_command_that_is_not_there_is_one_line_and_127(lab) -> None:
    result = mptop_run(lab, "--json", "--", "no-such-command-mptop")
    assert result.returncode == 127
    assert result.stderr.strip() == "mptop run: no-such-command-mptop: command not found"
    assert result.stdout == ""


def test_a_fallback_says_why_in_the_summary(make_lab) -> None:
    lab = make_lab(rate_mbit=SHAPED)                             # ~1 s: several polls see it
    result = mptop_run(lab, "--json", "--interval", "0.2", "--", "curl", "-s", "-o", "/dev/null",
                       lab.url(3_000_000, tcp=True))               # the lab's plain-TCP server
    assert result.returncode == 0, result.stderr
    [conn] = records(result.stdout)[-1]["connections"]
    assert conn["status"] == "fallback" and "SYN-ACK" in conn["fallback"], conn
    assert "fallbacks: curl" in result.stderr


def test_wifi_going_down_is_an_outage_and_cellular_carries_the_rest(make_lab) -> None:
    lab = make_lab(rate_mbit={"wlan0": 20, "wwan0": 10})
    proc = start_curl_run(lab, "0.2", 10_000_000)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:                 # until both paths carry curl's bytes
            assert time.monotonic() < deadline, "both paths never carried curl's bytes"
            record = json.loads(line)
            if record["type"] == "sample" and all(record["paths"].get(p, {}).get("bytes") for p in ("wlan0", "wwan0")):
                break
        lab.link_down("wlan0")
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
    finally:
        proc.kill()
        proc.wait()
    summary = records(out)[-1]
    [conn] = summary["connections"]
    assert conn["path_bytes"]["wwan0"] > 2_000_000, conn
    assert any(o["iface"] == "wlan0" and o["kind"] == "link_down" for o in summary["outages"]), summary["outages"]
    assert "Wi-Fi link down at" in err


def test_mptcp_disabled_is_one_line_before_cmd_starts(lab) -> None:
    lab.sysctl(lab.client, "net.mptcp.enabled", "0")
    result = mptop_run(lab, "--json", "--", "curl", "-s", "-o", "/dev/null", lab.url(1000))
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("mptop run: MPTCP is disabled here (net.mptcp.enabled = 0)"), line
    # Not forced, CMD runs (plain TCP): nothing of it to show, its exit code all the same.
    plain = mptop_run(lab, "--no-force", "--json", "--", "curl", "-s", "-o", "/dev/null", lab.url(1000))
    assert plain.returncode == 0, plain.stderr
    assert records(plain.stdout)[-1]["connections"] == []


def test_output_log_takes_cmds_stdout_and_stderr(lab, tmp_path) -> None:
    log = tmp_path / "cmd.log"
    result = mptop_run(lab, "--headless", "--output-log", str(log), "--", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert result.returncode == 4
    assert log.read_text().split() == ["out", "err"]
    assert "out" not in result.stdout and "exited with code 4" in result.stderr


def test_ten_short_downloads_are_all_listed_and_the_cgroup_is_gone(lab) -> None:
    """Ten 16 KiB downloads of a few milliseconds each, closed before a poll or even a look at the
    fds: all ten listed with their bytes (their sockets' cgroup outlives close()), none of a loop of
    short downloads running beside them; CMD's cgroup is removed at the end."""
    size = 16_384
    loop = f"for i in $(seq 10); do curl -s -o /dev/null {lab.url(size)}; done"
    beside = lab.popen(lab.client, ["mptcpize", "run", "sh", "-c",
                                    f"while :; do curl -s -o /dev/null {lab.url(size)}; done"])
    try:
        with lab.client.entered():
            proc = subprocess.Popen([sys.executable, "-m", "mptop", "run", "--json", "--", "sh", "-c", loop],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
        out, err = proc.communicate(timeout=120)
        assert beside.poll() is None, "the downloads beside ended early"
    finally:
        beside.kill()
        beside.wait()
    assert proc.returncode == 0, err
    conns = records(out)[-1]["connections"]
    assert len(conns) == 10 and len({c["local"] for c in conns}) == 10, [c["local"] for c in conns]
    for conn in conns:       # the body and the headers, once (not a stale reading counted again)
        assert size <= conn["bytes"] < size + 1024, conn
        assert size <= sum(conn["path_bytes"].values()) < size + 1024, conn
    with open("/proc/self/cgroup") as f:
        own = next(line[3:].strip() for line in f if line.startswith("0::"))
    mounts = [line.split()[4] for line in open("/proc/self/mountinfo") if " - cgroup2 " in line]
    assert mounts and not os.path.exists(os.path.join(mounts[0], own.lstrip("/"), f"mptop-run-{proc.pid}"))
