"""Re-measure the kernel facts mptop relies on (docs/measured.md), in a fresh two-path lab.

Run as root::

    python bench/facts.py [--only NAME,...]

Each fact prints one block of numbers; nothing is asserted (the tests assert what mptop does with
them).  The facts:

* ``fallback``: what each signal says for an MPTCP socket connected to a plain-TCP server (the
  lab's :8080) and to an MPTCP server (:80): SOL_MPTCP options, the zero-length MPTCP_INFO probe,
  TCP_IS_MPTCP, SO_PROTOCOL, TCP_ULP, sock_diag's mptcp_info flags, MPTcpExt counters; and
  socket(IPPROTO_MPTCP) with net.mptcp.enabled=0.
* ``payload``: a 32 MiB download; payload bytes against ``rx_bytes − 94 × rx_packets`` of the
  client's veths.
* ``implicit``: the endpoint the kernel adds for a server-driven join (flags, ``ip mptcp endpoint``).
* ``backup``: a client ``subflow backup`` endpoint: the backup bit in SUB_ESTABLISHED vs sock_diag.
* ``handover``: Wi-Fi down 5 s during a shaped download: PM events, and when Wi-Fi carries again.
* ``asyncio``: ``loop.sock_connect`` on a socket whose ``.proto`` is 262 (CPython gh-123174), and
  the fd re-wrap that mptop uses.
* ``netem``: whether ``tc qdisc … netem`` exists.
* ``stripped``: one path, the MPTCP option stripped from every non-SYN segment by iptables'
  TCPOPTSTRIP in the server's namespace, towards the client only and both ways: a 3 MB GET for 5 s
  (bytes received, where the body first differs from what was sent, both sides' MPTcpExt counters).

Lab traffic stays inside the lab's namespaces.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import errno
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mptop.kernel.diag import dump_connections
from mptop.kernel.pm import list_endpoints
from mptop.kernel.pm_events import PmEvents
from mptop.kernel.types import SUBFLOW_FLAG_BKUP_LOC, SUBFLOW_FLAG_BKUP_REM, PmEvent
from mptop.lab import Lab, LabConfig
from mptop.lab.signals import exit_on_signals

SOL_MPTCP, MPTCP_INFO, TCP_IS_MPTCP, TCP_ULP = 284, 1, 43, 31
HEADER_BYTES = 94            # per received packet, see docs/measured.md
_libc = ctypes.CDLL(None, use_errno=True)


def netstat(lab: Lab, side: str = "client") -> dict[str, int]:
    lines = open(f"/proc/{getattr(lab, side).pid}/net/netstat").read().splitlines()
    names, values = [line.split()[1:] for line in lines if line.startswith("MPTcpExt:")]
    return dict(zip(names, map(int, values), strict=True))


def dev(lab: Lab, iface: str) -> tuple[int, int]:
    """(rx_bytes, rx_packets) of a client interface."""
    for line in open(f"/proc/{lab.client.pid}/net/dev"):
        name, _, rest = line.partition(":")
        if name.strip() == iface:
            fields = rest.split()
            return int(fields[0]), int(fields[1])
    raise LookupError(iface)


def errno_of(call: Callable[[], object]) -> str:
    try:
        value = call()
    except OSError as e:
        return f"errno {e.errno} {errno.errorcode.get(e.errno or 0, '?')}"
    return f"ok {value!r}" if not isinstance(value, bytes) else f"ok ({len(value)} bytes)"


def zero_length_probe(fd: int) -> str:
    optlen = ctypes.c_uint32(0)
    rc = _libc.getsockopt(fd, SOL_MPTCP, MPTCP_INFO, None, ctypes.byref(optlen))
    err = ctypes.get_errno() if rc else 0
    return f"rc {rc}" + (f", errno {err} {errno.errorcode.get(err, '?')}" if rc else "")


@contextmanager
def connected(lab: Lab, port: int) -> Iterator[socket.socket]:
    with lab.client.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
    try:
        sock.settimeout(10)
        sock.connect((lab.paths[0].server_addr, port))
        sock.sendall(b"GET /bytes/100000 HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        got = 0
        while got < 100_000:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        yield sock
    finally:
        sock.close()


def fact_fallback(lab: Lab) -> None:
    print("== fallback signals (client side, one connection each)")
    servers = (("plain-TCP server :8080", lab.config.tcp_port), ("MPTCP server :80", lab.config.mptcp_port))
    for name, port in servers:
        before = netstat(lab)
        with connected(lab, port) as s:
            fd = s.fileno()
            print(f"-- {name}")
            print(f"   MPTCP_INFO (96 bytes)       {errno_of(lambda: s.getsockopt(SOL_MPTCP, MPTCP_INFO, 96))}")
            print(f"   MPTCP_INFO, optlen 0        {zero_length_probe(fd)}")
            print(f"   TCP_IS_MPTCP                {errno_of(lambda: s.getsockopt(socket.SOL_TCP, TCP_IS_MPTCP))}")
            proto = errno_of(lambda: s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))
            print(f"   SO_PROTOCOL                 {proto}")
            tcp_info = errno_of(lambda: s.getsockopt(socket.SOL_TCP, socket.TCP_INFO, 280))
            print(f"   TCP_INFO                    {tcp_info}")
            ulp = errno_of(lambda: s.getsockopt(socket.SOL_TCP, TCP_ULP, 16).rstrip(b"\0").decode())
            print(f"   TCP_ULP                     {ulp}")
            local = s.getsockname()[:2]
            with lab.client.entered():
                conns = [c for c in dump_connections() if c.local == local]
            flags = conns[0].info.flags if conns and conns[0].info else None
            print(f"   sock_diag mptcpi_flags      {flags!r} (bit 0 fallback, bit 1 remote key received)")
        grown = {k: v - before.get(k, 0) for k, v in netstat(lab).items() if v != before.get(k, 0)}
        print(f"   MPTcpExt grown              {grown}")
    lab.sysctl(lab.client, "net.mptcp.enabled", "0")
    try:
        with lab.client.entered():
            made = errno_of(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP).close())
        print(f"-- net.mptcp.enabled=0: socket(IPPROTO_MPTCP) {made}")
    finally:
        lab.sysctl(lab.client, "net.mptcp.enabled", "1")


def download(lab: Lab, size: int, port: int | None = None) -> int:
    """Payload bytes (headers + body) received by one MPTCP GET of /bytes/SIZE."""
    with lab.client.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
    with sock:
        sock.settimeout(60)
        sock.connect((lab.paths[0].server_addr, port or lab.config.mptcp_port))
        sock.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n".encode())
        total = 0
        buf = bytearray(1 << 20)
        while n := sock.recv_into(buf):
            total += n
        return total


def fact_payload(lab: Lab) -> None:
    print("== payload vs interface counters (32 MiB download, both paths)")
    ifaces = [p.iface for p in lab.paths]
    before = {i: dev(lab, i) for i in ifaces}
    payload = download(lab, 32 << 20)
    after = {i: dev(lab, i) for i in ifaces}
    estimate = 0
    for i in ifaces:
        rx, pk = after[i][0] - before[i][0], after[i][1] - before[i][1]
        estimate += rx - HEADER_BYTES * pk
        print(f"   {i}: rx_bytes {rx:,}  rx_packets {pk:,}  per packet {rx / max(pk, 1):,.0f} bytes")
    print(f"   payload received {payload:,}; rx_bytes - {HEADER_BYTES} x rx_packets = {estimate:,} "
          f"({(estimate - payload) / payload:+.4%})")


def fact_implicit(lab: Lab) -> None:
    print("== implicit endpoint (client without endpoints, server signals path 2)")
    download(lab, 1 << 20)
    with lab.client.entered():
        eps = list_endpoints()
    for ep in eps:
        print(f"   id {ep.id} {ep.address} flags 0x{int(ep.flags):x} ({ep.flags!r}) dev {ep.ifname}")
    shown = lab.run(lab.client, ["ip", "mptcp", "endpoint", "show"]).stdout.strip()
    print(f"   ip mptcp endpoint show: {shown}")
    for ep in eps:
        for flag in ("subflow", "backup"):
            change = lab.run(lab.client, ["ip", "mptcp", "endpoint", "change", "id", str(ep.id), flag], check=False)
            print(f"   ip mptcp endpoint change id {ep.id} {flag}: rc {change.returncode} {change.stderr.strip()!r}")
        shown = lab.run(lab.client, ["ip", "mptcp", "endpoint", "show"]).stdout.strip()
        print(f"   ip mptcp endpoint show: {shown}")


def fact_backup(lab: Lab) -> None:
    print("== backup flag: client endpoint 'subflow backup' on wwan0")
    wwan = lab.paths[1]
    lab.run(lab.client, ["ip", "mptcp", "endpoint", "add", wwan.client_addr, "dev", wwan.iface, "subflow", "backup"])
    with lab.client.entered():
        events = PmEvents()
    with events, lab.client.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
        with sock:
            sock.settimeout(10)
            sock.connect((lab.paths[0].server_addr, lab.config.mptcp_port))
            sock.sendall(b"GET /bytes/1000000 HTTP/1.1\r\nHost: lab\r\n\r\n")
            deadline = time.monotonic() + 10
            joined: list[PmEvent] = []
            while time.monotonic() < deadline and not joined:
                sock.recv(65536)
                joined = [e for e in events.read_pending() if e.kind.name == "SUB_ESTABLISHED"]
            for e in joined:
                print(f"   SUB_ESTABLISHED {e.saddr} -> {e.daddr}: backup={e.backup}")
            local = sock.getsockname()[:2]
            for c in dump_connections():
                if c.local == local:
                    for sf in c.subflows:
                        print(f"   sock_diag subflow {sf.local[0]}: BKUP_LOC={bool(sf.flags & SUBFLOW_FLAG_BKUP_LOC)} "
                              f"BKUP_REM={bool(sf.flags & SUBFLOW_FLAG_BKUP_REM)}")


def fact_handover(lab: Lab) -> None:
    print("== handover: wlan0 down 5 s during a download shaped 20 + 20 Mbit")
    for p in lab.paths:
        lab.set_rate(p.iface, 20)
    with lab.client.entered():
        events = PmEvents()
    done = threading.Event()

    def pull() -> None:
        try:
            download(lab, 200 << 20)
        except OSError as e:
            print(f"   download: {e}")
        done.set()

    worker = threading.Thread(target=pull, daemon=True)
    worker.start()
    with events:
        time.sleep(3)                     # both subflows carrying
        events.read_pending()
        lab.link_down("wlan0")
        down_at = time.monotonic()
        time.sleep(5)
        during = [e.kind.name for e in events.read_pending()]
        lab.link_up("wlan0")
        up_at = time.monotonic()
        first, resumed = dev(lab, "wlan0")[0], None
        while time.monotonic() - up_at < 10 and not done.is_set():
            time.sleep(0.1)
            if dev(lab, "wlan0")[0] - first > 250_000:
                resumed = time.monotonic() - up_at
                break
        after = [e.kind.name for e in events.read_pending()]
    print(f"   PM events while down ({up_at - down_at:.1f} s): {during or 'none'}; after link up: {after or 'none'}")
    print(f"   wlan0 carried 250 kB again {resumed:.2f} s after link up" if resumed is not None
          else "   wlan0 did not carry again within 10 s")
    done.wait(120)
    worker.join(5)


def fact_asyncio(lab: Lab) -> None:
    print("== asyncio sock_connect on an MPTCP socket (CPython gh-123174)")
    addr = (lab.paths[0].server_addr, lab.config.mptcp_port)

    async def attempt(rewrap: bool) -> str:
        with lab.client.entered():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
        if rewrap:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fileno=sock.detach())
        sock.setblocking(False)
        with sock:
            try:
                await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, addr), 10)
            except OSError as e:
                return f"{type(e).__name__}: {e}"
            return f"connected; SO_PROTOCOL {sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)}"

    print(f"   Python {sys.version.split()[0]}, .proto 262: {asyncio.run(attempt(False))}")
    print(f"   fd re-wrapped with proto 0:   {asyncio.run(attempt(True))}")


def fact_netem(lab: Lab) -> None:
    print("== qdiscs")
    print(f"   netem: {'available' if lab.supports_delay else 'missing'}")
    probe = lab.run(lab.server, ["tc", "qdisc", "add", "dev", lab.paths[1].server_iface, "root", "netem",
                                 "delay", "1ms"], check=False)
    print(f"   tc qdisc add … netem: rc {probe.returncode} {probe.stderr.strip()!r}")


def fact_stripped(lab: Lab) -> None:
    print("== MPTCP option stripped after the SYNs (one path, 3 MB GET, 5 s)")
    from mptop.lab.content import content
    not_syn = ["!", "--tcp-flags", "SYN", "SYN", "-j", "TCPOPTSTRIP", "--strip-options", "30"]
    to_client = ["POSTROUTING", "-p", "tcp", "--sport", str(lab.config.mptcp_port)]
    to_server = ["PREROUTING", "-p", "tcp", "--dport", str(lab.config.mptcp_port)]
    for name, rules in (("towards the client only", [to_client]), ("both ways", [to_client, to_server])):
        lab.run(lab.server, ["iptables", "-t", "mangle", "-F"])
        for rule in rules:
            lab.run(lab.server, ["iptables", "-t", "mangle", "-A", *rule, *not_syn])
        before = {side: netstat(lab, side) for side in ("client", "server")}
        with lab.client.entered():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
        received = bytearray()
        start = time.monotonic()
        with sock:
            sock.settimeout(1)
            sock.connect((lab.paths[0].server_addr, lab.config.mptcp_port))
            sock.sendall(b"GET /bytes/3000000 HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
            while time.monotonic() - start < 5:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                received += chunk
        took = time.monotonic() - start
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        sent = content(len(body))
        differs = next((i for i in range(len(body)) if body[i] != sent[i]), None)
        print(f"-- {name}: {len(received)} bytes in {took:.2f} s (response head {len(head) + 4} bytes)")
        if differs is not None:
            print(f"   body differs from offset {differs}: {body[differs:differs + 17]!r}")
        for side in ("client", "server"):
            grown = {k: v - before[side].get(k, 0) for k, v in netstat(lab, side).items()
                     if v != before[side].get(k, 0)}
            print(f"   {side} MPTcpExt grown {grown}")


FACTS: dict[str, tuple[Callable[[Lab], None], LabConfig]] = {
    "fallback": (fact_fallback, LabConfig()),
    "payload": (fact_payload, LabConfig()),
    "implicit": (fact_implicit, LabConfig()),
    "backup": (fact_backup, LabConfig(server_signal=False)),
    "handover": (fact_handover, LabConfig()),
    "asyncio": (fact_asyncio, LabConfig()),
    "netem": (fact_netem, LabConfig()),
    "stripped": (fact_stripped, LabConfig(rate_mbit={"wlan0": 40}, server_signal=False)),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(FACTS), help="comma-separated: " + ", ".join(FACTS))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in FACTS]
    if unknown:
        parser.error(f"unknown fact {unknown[0]!r}")
    kernel = os.uname().release
    ip = subprocess.run(["ip", "-V"], capture_output=True, text=True).stdout.strip()
    print(f"kernel {kernel}; {ip}; Python {sys.version.split()[0]}; load {os.getloadavg()[0]:.2f}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with exit_on_signals():
        for name in names:
            fact, config = FACTS[name]
            with Lab(config) as lab:
                fact(lab)
    return 0


if __name__ == "__main__":
    sys.exit(main())
