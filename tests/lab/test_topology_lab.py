"""The two-path lab, exercised for real: namespaces, MPTCP subflows, shaping, actions, teardown."""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from mptop.lab import Lab, LabConfig, LabUnavailable, content
from mptop.lab.userns import enter_user_namespace
from tests.support import ChildFailed, run_as_nobody, wait_for

pytestmark = pytest.mark.lab
IPPROTO_MPTCP = 262
TCP_IS_MPTCP = 43


class MptcpConnection(http.client.HTTPConnection):
    """http.client over an MPTCP socket (create it inside the lab's client netns)."""

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.host, self.port))


def get(lab: Lab, path: str, tcp: bool = False, headers: dict[str, str] | None = None,
        method: str = "GET") -> http.client.HTTPResponse:
    host = lab.paths[0].server_addr
    port = lab.config.tcp_port if tcp else lab.config.mptcp_port
    conn = MptcpConnection(host, port, timeout=10)
    with lab.client.entered():  # the socket is created (and lives) in the client netns
        conn.request(method, path, headers=headers or {})
    return conn.getresponse()


class Download(threading.Thread):
    """Reads /bytes/SIZE in the background, hashing as it goes."""

    def __init__(self, lab: Lab, size: int) -> None:
        super().__init__(daemon=True)
        self.size, self.received, self.error = size, 0, None
        self.sha = hashlib.sha256()
        self.resp = get(lab, f"/bytes/{size}")

    def run(self) -> None:
        try:
            while chunk := self.resp.read(1 << 16):
                self.sha.update(chunk)
                self.received += len(chunk)
        except OSError as e:
            self.error = e

    def finish(self, timeout: float = 30) -> str:
        self.join(timeout)
        assert not self.is_alive(), "download did not finish"
        assert self.error is None, self.error
        assert self.received == self.size
        return self.sha.hexdigest()


def rx_delta(lab: Lab, seconds: float) -> dict[str, int]:
    before = {p.iface: lab.rx_bytes(p.iface) for p in lab.paths}
    time.sleep(seconds)
    return {p.iface: lab.rx_bytes(p.iface) - before[p.iface] for p in lab.paths}


def test_download_uses_both_paths(lab: Lab) -> None:
    size = 100_000_000
    before = {p.iface: lab.rx_bytes(p.iface) for p in lab.paths}
    dl = Download(lab, size)
    wait_for(lambda: lab.subflows("wlan0") != [] and lab.subflows("wwan0") != [])
    msk = lab.run(lab.client, ["ss", "-Mni"]).stdout
    assert "subflows:1" in msk and "add_addr_accepted:1" in msk, msk
    sub = lab.run(lab.client, ["ss", "-tni"]).stdout
    assert "192.0.2.2:" in sub and "198.51.100.2:" in sub and sub.count("tcp-ulp-mptcp") == 2, sub
    dl.start()
    assert dl.finish() == lab.content_sha256(size)
    grew = {p.iface: lab.rx_bytes(p.iface) - before[p.iface] for p in lab.paths}
    assert all(n > size // 20 for n in grew.values()), grew
    assert sum(grew.values()) > size


def test_shaping_40_10_splits_about_80_20(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 10})
    size = 30_000_000  # ~4.8 s at 50 Mbit/s: the start, when both paths ramp up alike, weighs little
    before = {p.iface: lab.rx_bytes(p.iface) for p in lab.paths}
    dl = Download(lab, size)
    dl.start()
    assert dl.finish() == lab.content_sha256(size)
    grew = {p.iface: lab.rx_bytes(p.iface) - before[p.iface] for p in lab.paths}
    share = grew["wlan0"] / sum(grew.values())
    assert 0.65 < share < 0.92, grew


def test_link_down_moves_traffic_and_link_up_brings_it_back(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rate_mbit={"wlan0": 20, "wwan0": 20})
    dl = Download(lab, 10**10)
    dl.start()
    wait_for(lambda: lab.subflows("wwan0") != [])
    up = rx_delta(lab, 0.6)
    lab.link_down("wlan0")
    # Cellular takes over the full rate 1-2 s after the drop (measured), later on a loaded machine:
    # wait until it carries 20 Mbit/s' worth of bytes in 0.2 s at half rate, then measure.
    wait_for(lambda: rx_delta(lab, 0.2)["wwan0"] > 250_000, timeout=20)
    # Over 2 s, not 0.6: under load one retransmission timeout on Cellular can take half a short window.
    # Up to three windows: the data stuck on the dead Wi-Fi subflow is re-sent on Cellular a piece per
    # MPTCP retransmission timeout, 0.2-0.9 s each (docs/measured.md, "Handover: the wait for lost bytes"); CI run 4 of
    # 2026-12-05 measured 974 kB in its one window.  Wi-Fi must carry nothing in any of them.
    windows = []
    while len(windows) < 3 and (not windows or windows[-1]["wwan0"] <= 1_250_000):
        windows.append(rx_delta(lab, 2.0))
    down = max(windows, key=lambda w: w["wwan0"])
    lab.link_up("wlan0")
    wait_for(lambda: rx_delta(lab, 0.2)["wlan0"] > 100_000, timeout=20)   # at Wi-Fi's next retransmission
    assert up["wlan0"] > 500_000 and up["wwan0"] > 500_000, up
    assert down["wlan0"] < 20_000 and down["wwan0"] > 1_250_000, down   # ≥ 5 of its 20 Mbit/s
    assert all(w["wlan0"] < 20_000 for w in windows), windows
    assert dl.error is None and dl.is_alive()


def test_endpoint_delete_and_readd(lab: Lab) -> None:
    lab.set_rate("wwan0", 20)
    lab.set_rate("wlan0", 20)
    dl = Download(lab, 10**10)
    dl.start()
    wait_for(lambda: lab.subflows("wwan0") != [])
    lab.delete_endpoint("wwan0")  # server's signal endpoint: RM_ADDR, subflow closed
    wait_for(lambda: lab.subflows("wwan0") == [])
    assert "signal" not in lab.run(lab.server, ["ip", "mptcp", "endpoint", "show"]).stdout
    lab.add_endpoint("wwan0")
    took = wait_for(lambda: lab.subflows("wwan0") != [])
    print(f"new subflow {took * 1000:.0f} ms after re-adding the endpoint")
    assert rx_delta(lab, 0.4)["wwan0"] > 200_000
    assert dl.error is None


def _server_estab_resets(lab: Lab) -> int:
    with open(f"/proc/{lab.server.pid}/net/snmp") as f:
        names, values = [line.split() for line in f if line.startswith("Tcp:")]
    return int(values[names.index("EstabResets")])


def test_reset_subflows_sends_rst(lab: Lab) -> None:
    size = 60_000_000
    lab.set_rate("wlan0", 50)
    dl = Download(lab, size)
    dl.start()
    wait_for(lambda: lab.subflows("wlan0") != [] and lab.subflows("wwan0") != [])
    resets = _server_estab_resets(lab)
    assert lab.reset_subflows("wlan0") == 1
    assert lab.subflows("wlan0") == []
    wait_for(lambda: _server_estab_resets(lab) == resets + 1)  # the server got a real RST
    assert dl.finish() == lab.content_sha256(size)  # the connection survives on wwan0
    assert lab.subflows("wlan0") == []  # and the in-kernel PM does not recreate it


def test_set_backup_moves_server_traffic_off_the_path(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rate_mbit={"wlan0": 20, "wwan0": 20})
    dl = Download(lab, 10**10)
    dl.start()
    wait_for(lambda: lab.subflows("wwan0") != [])
    for iface, other in (("wwan0", "wlan0"), ("wlan0", "wwan0")):
        lab.set_backup(iface, True)
        wait_for(lambda iface=iface, other=other: (d := rx_delta(lab, 0.3))[iface] < d[other] / 20, timeout=20)
        lab.set_backup(iface, False)
        wait_for(lambda iface=iface: rx_delta(lab, 0.3)[iface] > 300_000, timeout=20)
    assert dl.error is None


def test_tcp_port_is_plain_tcp(lab: Lab) -> None:
    verdict = {}
    for tcp in (False, True):
        conn = MptcpConnection(lab.paths[0].server_addr, lab.config.tcp_port if tcp else 80, timeout=10)
        with lab.client.entered():
            conn.request("GET", "/bytes/1000")
        assert conn.getresponse().read() == content.content(1000)
        sock = conn.sock
        verdict[tcp] = sock.getsockopt(socket.IPPROTO_TCP, TCP_IS_MPTCP)
        if tcp:
            with pytest.raises(OSError) as err:
                sock.getsockopt(284, 1, 96)  # MPTCP_INFO
            assert err.value.errno == errno.EOPNOTSUPP
    assert verdict == {False: 1, True: 0}
    listeners = lab.run(lab.server, ["ss", "-Mln"]).stdout
    assert ":80 " in listeners and ":8080" not in listeners, listeners


SLOW_SERVER = """
import asyncio, sys
from aiohttp import web
from mptop.lab.server import main
start = web.SockSite.start
async def slow_start(site):      # a loaded machine: a while between starting one port and the next
    await start(site)
    await asyncio.sleep(1.0)
web.SockSite.start = slow_start
sys.exit(main(sys.argv[1:]))
"""


def test_the_plain_tcp_port_listens_once_the_mptcp_port_accepts(lab: Lab) -> None:
    # The lab is ready when its MPTCP port accepts; the plain-TCP one refused connections a moment
    # longer (ConnectionRefusedError on :8080 in loaded CI runs).  A second server on other ports,
    # each port's start slowed down.
    server = lab.popen(lab.server, [sys.executable, "-c", SLOW_SERVER, "--mptcp-port", "81", "--tcp-port", "8081"])
    try:
        address = lab.paths[0].server_addr

        def accepts(port: int) -> bool:
            with lab.client.entered(), socket.socket() as sock:
                sock.settimeout(5)
                return sock.connect_ex((address, port)) == 0

        wait_for(lambda: accepts(81), timeout=30)
        assert accepts(8081)
    finally:
        server.kill()
        server.wait(10)


def test_server_paths(lab: Lab) -> None:
    resp = get(lab, "/bytes/5000", headers={"Range": "bytes=100-199"})
    assert (resp.status, resp.getheader("Content-Range")) == (206, "bytes 100-199/5000")
    assert resp.read() == content.content(100, start=100)
    resp = get(lab, "/bytes/5000", method="HEAD")
    assert (resp.getheader("Content-Length"), resp.getheader("ETag"), resp.read()) == ("5000", '"mptop-5000"', b"")
    assert get(lab, "/status/503").status == 503
    resp = get(lab, "/redirect/2")
    assert (resp.status, resp.getheader("Location")) == (302, "/redirect/1")
    assert get(lab, "/redirect/1").getheader("Location") == "/bytes/1000"
    resp = get(lab, "/disposition/10?name=report%201.bin")
    assert resp.getheader("Content-Disposition") == 'attachment; filename="report 1.bin"'
    resp = get(lab, "/disposition/10?name=%C3%A9t%C3%A9.txt")
    assert resp.getheader("Content-Disposition").endswith("filename*=utf-8''%C3%A9t%C3%A9.txt")
    with pytest.raises(http.client.IncompleteRead) as short:
        get(lab, "/truncated/100000").read()
    assert len(short.value.partial) == 50_000
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
        get(lab, "/reset/4000000").read()


def test_delay_needs_netem(lab_unavailable: Callable[[str], NoReturn]) -> None:
    lab = Lab(LabConfig(delay_ms={"wlan0": 40}))
    try:
        lab.start()
    except LabUnavailable as e:  # this kernel: no sch_netem
        if "netem" not in str(e):
            lab_unavailable(str(e))
        assert not lab.supports_delay
        return
    try:
        with lab.client.entered():
            began = time.monotonic()
            socket.create_connection((lab.paths[0].server_addr, 80), timeout=5).close()
        assert time.monotonic() - began >= 0.035  # the SYN-ACK waited in netem
    finally:
        lab.stop()


def test_sysctl_is_per_namespace(lab: Lab) -> None:
    root = open("/proc/sys/net/mptcp/enabled").read().strip()
    assert lab.sysctl(lab.client, "net.mptcp.enabled", 0) == "0"
    with lab.client.entered(), pytest.raises(OSError) as err:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    assert err.value.errno == errno.ENOPROTOOPT
    assert open("/proc/sys/net/mptcp/enabled").read().strip() == root
    assert lab.sysctl(lab.server, "net.mptcp.enabled") == "1"


CHILD = """
import sys, time
from mptop.lab import Lab
from mptop.lab.signals import exit_on_signals
with exit_on_signals() if sys.argv[1] == "handled" else open("/dev/null"):
    with Lab() as lab:
        print(*lab.holder_pids, lab.server_process.pid, flush=True)
        time.sleep(60)
"""


def _root_names(argv: list[str]) -> set[str]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] if ":" in line else line.split()[0]
            for line in out.splitlines() if line.strip()}


def exited(pid: int) -> bool:
    """Gone, or a zombie: dead, holding no namespace, waiting for its new parent (init, once the owner
    died) to reap it.  This machine's init reaps orphans every ~2 s, later under load."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def ps(pid: int) -> str:
    return subprocess.run(["ps", "-o", "pid=,ppid=,stat=,args=", "-p", str(pid)], capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.parametrize(("sig", "mode", "exit_code"), [
    (signal.SIGTERM, "handled", 128 + signal.SIGTERM),   # a CLI: SystemExit unwinds `with Lab()`
    (signal.SIGTERM, "default", -signal.SIGTERM),        # library default: PDEATHSIG cleans up
    (signal.SIGKILL, "default", -signal.SIGKILL),
])
def test_teardown_when_the_owner_is_killed(sig: signal.Signals, mode: str, exit_code: int,
                                           lab_unavailable: Callable[[str], NoReturn]) -> None:
    links, netns = _root_names(["ip", "-o", "link"]), _root_names(["ip", "netns", "list"])
    child = subprocess.Popen([sys.executable, "-c", CHILD, mode], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline() if child.stdout else ""
        if not line:
            lab_unavailable(f"child: {child.communicate()[1].strip().splitlines()[-1:]}")
        pids = [int(p) for p in line.split()]
        assert len(pids) == 3 and all(os.path.exists(f"/proc/{p}") for p in pids)
        child.send_signal(sig)
        assert child.wait(5) == exit_code
        try:
            wait_for(lambda: all(map(exited, pids)))
        except AssertionError:
            raise AssertionError(f"alive 20 s after the owner died: {[ps(p) for p in pids if not exited(p)]}") from None
    finally:
        child.kill()
        child.wait()
    # Other engineers' work may add root links meanwhile; none of ours may ever appear there.
    new_links = _root_names(["ip", "-o", "link"]) - links
    assert not new_links & {"wlan0", "wwan0", "srv-wlan0", "srv-wwan0"}, new_links
    assert _root_names(["ip", "netns", "list"]) - netns == set()


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to uid 65534")


@needs_root
def test_unprivileged_user_namespace_runs_the_lab(lab_unavailable: Callable[[str], NoReturn]) -> None:
    size = 4_000_000

    def body() -> str:
        enter_user_namespace()
        with Lab() as lab:
            dl = Download(lab, size)
            wait_for(lambda: lab.subflows("wlan0") != [] and lab.subflows("wwan0") != [])
            dl.start()
            digest = dl.finish()
            return f"{os.getuid()} {digest} {lab.rx_bytes('wlan0') > 0} {lab.rx_bytes('wwan0') > 0}"

    try:
        report = run_as_nobody(None, body)
    except ChildFailed as e:
        if e.kind == "LabUnavailable":
            lab_unavailable(str(e).strip().splitlines()[-1])
        raise
    assert report == f"0 {content.sha256(size)} True True", report


@needs_root
def test_unprivileged_without_user_namespace_is_unavailable() -> None:
    def body() -> str:
        try:
            Lab().start()
        except LabUnavailable as e:
            return str(e)
        return "started?"

    report = run_as_nobody(None, body)
    assert "enter_user_namespace" in report and "\n" not in report, report
