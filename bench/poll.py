"""Poll bench: one system-wide poll of mptop (``kernel.diag``) against ``ss -tiMn``, same lab, same run.

Run as root::

    python bench/poll.py [--counts 1,100,1000] [--rounds N]

Builds a two-path lab, starts a tiny accept-and-hold MPTCP server in the server namespace, and
opens 1, then 100, then 1,000 idle MPTCP connections from the client namespace (each sends and
receives one byte, then waits until its second subflow, the join on the cellular path, is up).
For each count it measures, interleaved round by round (medians):

* ``mptop``: ``DiagReader.connections()`` on a long-lived reader (the way ``mptop watch`` polls):
  MPTCP + TCP/ULP dumps, decoded into typed connections with subflows joined, owners named;
* ``dumps``: ``DiagReader.capture()``, the same dumps copied out undecoded: the kernel's share;
* ``one-shot``: ``dump_connections()``, a fresh reader per poll (socket, shapes, /proc scan);
* ``ss``: ``ss -tiMn`` as a subprocess inside the client namespace, output read, not parsed;
* ``own``: ``kernel.sockopt.read_socket`` on every client socket (µs per connection).

The target is mptop ≤ half of ss at 1,000 connections.  The bench prints; it never asserts.  The
last line is ``RESULT conns=1000 mptop_ms=… ss_ms=… ratio=…``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from mptop.kernel.diag import DiagReader, dump_connections
from mptop.lab import Lab, LabConfig, LabError
from mptop.lab.signals import exit_on_signals

try:
    from mptop.kernel.sockopt import read_socket
except ImportError:                  # the own-socket reader is optional for this bench
    read_socket = None  # type: ignore[assignment]

PORT = 5201
SS = shutil.which("ss") or "/usr/bin/ss"
SETTLE_S = 2.5
IPPROTO_MPTCP = 262
SERVER = f"""
import socket
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM, {IPPROTO_MPTCP})
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", {PORT}))
srv.listen(4096)
print("ready", flush=True)
held = []
while True:
    conn, _ = srv.accept()
    conn.recv(1)
    conn.sendall(b"y")
    held.append(conn)
"""


@dataclass
class Row:
    conns: int
    mptop_ms: float
    mptop_cpu_ms: float
    dumps_ms: float
    oneshot_ms: float
    ss_ms: float
    own_us_per_conn: float | None
    ss_bytes: int


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        raise SystemExit(f"bench: need {need} file descriptors, the hard limit is {hard}")


def connect_one(server: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    sock.settimeout(10)
    sock.connect((server, PORT))
    sock.sendall(b"x")                # data makes the connection fully established: the PM acts
    if sock.recv(1) != b"y":
        raise SystemExit("bench: the hold server did not answer")
    return sock


def wait_for_joins(reader: DiagReader, count: int, timeout: float = 60.0) -> None:
    """Until ``count`` connections to PORT each have their 2 subflows (the join on wwan0)."""
    deadline = time.monotonic() + timeout
    while True:
        conns = [c for c in reader.connections() if c.remote[1] == PORT]
        ready = sum(len(c.subflows) == 2 for c in conns)
        if len(conns) == count and ready == count:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {ready} of {count} connections got their 2nd subflow within {timeout:.0f} s")
        time.sleep(0.2)


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, CPU ms of this process: all its threads) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3


def run_ss() -> int:
    """``ss -tiMn``, output read.  An absolute path and close_fds=False let subprocess use
    posix_spawn (vfork): no copy-on-write of this process's heap, which would otherwise slow ss's
    start and, through page faults, this process's next poll."""
    out = subprocess.run([SS, "-tiMn"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=False,
                         check=True).stdout
    return len(out)


def measure(reader: DiagReader, clients: list[socket.socket], rounds: int) -> Row:
    wall, cpu, dumps, oneshot, ss, own = [], [], [], [], [], []
    ss_bytes = 0
    for _ in range(rounds):             # interleaved, so load changes hit every column alike
        w, c = timed(reader.connections)
        wall.append(w)
        cpu.append(c)
        t0 = time.perf_counter()
        ss_bytes = run_ss()
        ss.append((time.perf_counter() - t0) * 1e3)
        if read_socket is not None:
            own.append(timed(lambda: [read_socket(s) for s in clients])[0] * 1e3 / len(clients))
    for _ in range(max(3, rounds // 3)):  # apart: their garbage would cool the caches of the others
        dumps.append(timed(reader.capture)[0])
        oneshot.append(timed(dump_connections)[0])
    med = statistics.median
    return Row(len(clients), med(wall), med(cpu), med(dumps), med(oneshot), med(ss), med(own) if own else None,
               ss_bytes)


def check_view(reader: DiagReader, count: int) -> str:
    conns = [c for c in reader.connections() if c.remote[1] == PORT]
    subflows = sum(len(c.subflows) for c in conns)
    named = sum(c.process is not None for c in conns)
    return f"{len(conns)} connections, {subflows} subflows, {named} with their process"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,100,1000", help="connection counts, ascending (default 1,100,1000)")
    parser.add_argument("--rounds", type=int, default=25, help="polls per column and count (median)")
    args = parser.parse_args(argv)
    counts = sorted(int(c) for c in args.counts.split(","))
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (it builds network namespaces)")
    raise_fd_limit(max(counts) * 2 + 256)
    rows: list[Row] = []
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    try:
        with exit_on_signals(), Lab(LabConfig()) as lab:
            server = lab.popen(lab.server, [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
            if server.stdout is None or server.stdout.readline().strip() != "ready":
                raise SystemExit("bench: the hold server did not start")
            server_addr = lab.paths[0].server_addr
            clients: list[socket.socket] = []
            with lab.client.entered():
                reader = DiagReader()
                try:
                    for count in counts:
                        clients += [connect_one(server_addr) for _ in range(count - len(clients))]
                        wait_for_joins(reader, count)
                        # Let the last ACKs and the owner cache's rescan interval pass: idle connections.
                        time.sleep(SETTLE_S)
                        print(f"{count:>5} connections up: {check_view(reader, count)}", flush=True)
                        rows.append(measure(reader, clients, args.rounds))
                finally:
                    reader.close()
                    for sock in clients:
                        sock.close()
    except LabError as e:
        raise SystemExit(f"bench: {e}") from None
    print_table(rows)
    return 0


def print_table(rows: list[Row]) -> None:
    print(f"\n{'conns':>6} {'mptop ms':>9} {'(cpu ms)':>9} {'dumps ms':>9} {'one-shot':>9} {'ss -tiMn':>9} "
          f"{'ss/mptop':>9} {'own µs/conn':>12}")
    for r in rows:
        own = "n/a" if r.own_us_per_conn is None else f"{r.own_us_per_conn:.2f}"
        print(f"{r.conns:>6} {r.mptop_ms:>9.2f} {r.mptop_cpu_ms:>9.2f} {r.dumps_ms:>9.2f} {r.oneshot_ms:>9.2f} "
              f"{r.ss_ms:>9.2f} {r.ss_ms / r.mptop_ms:>9.2f} {own:>12}")
    last = rows[-1]
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"RESULT conns={last.conns} mptop_ms={last.mptop_ms:.2f} ss_ms={last.ss_ms:.2f} "
          f"ratio={last.ss_ms / last.mptop_ms:.2f}")


if __name__ == "__main__":
    sys.exit(main())
