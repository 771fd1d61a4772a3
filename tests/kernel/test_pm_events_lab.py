"""Path-manager events from the real kernel in the lab, compared with `ip mptcp monitor`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import http.client
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable

import pytest

from mptop.kernel import pm
from mptop.kernel.pm_events import PmEvents, pm_events
from mptop.kernel.types import PmEvent, PmEventKind
from mptop.lab import Lab
from tests.support import open_fds

pytestmark = pytest.mark.lab
IPPROTO_MPTCP = 262
MPTCP_RST_EUNSPEC = 0


# ---- the real kernel ------------------------------------------------------------------------------

IP_LABELS = {PmEventKind.SUB_ESTABLISHED: "SF_ESTABLISHED", PmEventKind.SUB_CLOSED: "SF_CLOSED",
             PmEventKind.SUB_PRIORITY: "SF_PRIO"}


def mptcp_download(lab: Lab, size: int) -> http.client.HTTPConnection:
    """GET /bytes/<size> over an MPTCP socket made in the client netns; the connection stays open."""
    url = urllib.parse.urlsplit(lab.url(size))
    with lab.client.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    sock.settimeout(10)
    sock.connect((url.hostname, url.port or 80))
    conn = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=10)
    conn.sock = sock
    conn.request("GET", url.path)
    body = conn.getresponse().read()
    assert hashlib.sha256(body).hexdigest() == lab.content_sha256(size)
    return conn


async def collect_until(events: PmEvents, done: Callable[[PmEvent], bool], timeout: float = 5.0) -> list[PmEvent]:
    """Events up to and including the first one for which ``done`` is true."""
    seen: list[PmEvent] = []
    async with asyncio.timeout(timeout):
        async for event in events:
            seen.append(event)
            if done(event):
                return seen
    raise AssertionError(f"event stream ended early after {seen}")


def token_of(events: list[PmEvent], conn: http.client.HTTPConnection) -> int:
    assert conn.sock is not None
    port = conn.sock.getsockname()[1]
    (created,) = [e for e in events if e.kind is PmEventKind.CREATED and e.sport == port]
    assert created.token is not None
    return created.token


def kinds(events: list[PmEvent], token: int) -> list[PmEventKind]:
    return [e.kind for e in events if e.token == token]


def make_listener_event(lab: Lab) -> None:
    """LISTENER_CREATED + LISTENER_CLOSED in the client netns (loopback only)."""
    with lab.client.entered():
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    with listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()


class IpMonitor:
    """`ip mptcp monitor` in the client netns; its lines are parsed by a reader thread."""

    def __init__(self, lab: Lab) -> None:
        self.proc = lab.popen(lab.client, ["stdbuf", "-oL", "ip", "mptcp", "monitor"],
                              stdout=subprocess.PIPE, text=True)
        self.lines: list[tuple[str, dict[str, str]]] = []
        threading.Thread(target=self._read, daemon=True).start()
        # Subscribed once it prints something: poke it with listener events until it does.
        self.wait_for(lambda line: True, poke=lambda: make_listener_event(lab))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:   # "[SF_ESTABLISHED] token=0a1b2c3d remid=2 ..."
            label, _, rest = line.strip().strip("[ ").partition("]")
            self.lines.append((label.strip(), dict(kv.split("=", 1) for kv in rest.split())))

    def wait_for(self, match: Callable[[tuple[str, dict[str, str]]], bool],
                 poke: Callable[[], None] | None = None, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(match(line) for line in self.lines):
            assert time.monotonic() < deadline, f"ip mptcp monitor did not print it; printed {self.lines}"
            if poke is not None:
                poke()
            time.sleep(0.02)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)


def as_ip_prints(e: PmEvent) -> tuple[str, dict[str, str]]:
    """What `ip mptcp monitor` prints for an event (iproute2 ipmptcp.c), from our decoding."""
    def ip(name: str, addr: str | None) -> str:
        return name + ("6" if addr and ":" in addr else "4")

    pairs = [("token", e.token, "{:08x}"), ("remid", e.remote_id, "{}"), ("locid", e.local_id, "{}"),
             (ip("saddr", e.saddr), e.saddr, "{}"), (ip("daddr", e.daddr), e.daddr, "{}"),
             ("sport", e.sport, "{}"), ("dport", e.dport, "{}"), ("backup", e.backup, "{:d}"),
             ("error", e.error, "{}"), ("flags", e.flags, "{:x}"), ("timeout", e.timeout, "{}"),
             ("ifindex", e.ifindex, "{}"), ("reset_reason", e.reset_reason, "{}"),
             ("reset_flags", e.reset_flags, "{:#x}")]
    return IP_LABELS.get(e.kind, e.kind.name), {k: fmt.format(v) for k, v, fmt in pairs if v is not None}


async def test_download_events_match_ip_monitor(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(client_endpoints="subflow")   # the wwan0 endpoint binds its subflow: if_idx is set
    wlan, wwan = lab.paths
    monitor = IpMonitor(lab)
    with lab.client.entered():
        events = PmEvents()
        wwan_index = socket.if_nametoindex(wwan.iface)
        (client_ep,) = pm.list_endpoints()
    with lab.server.entered():
        (server_ep,) = pm.list_endpoints()
    with events:
        conn = mptcp_download(lab, 200_000)
        # Only our connection lives in this netns: wait for the join bound to the wwan0 endpoint.
        seen = await collect_until(events, lambda e: e.kind is PmEventKind.SUB_ESTABLISHED and bool(e.ifindex))
        token = token_of(seen, conn)
        conn.close()
        seen += await collect_until(events, lambda e: e.kind is PmEventKind.CLOSED and e.token == token)
    joins = [e for e in seen if e.kind is PmEventKind.SUB_ESTABLISHED and e.token == token]

    order = kinds(seen, token)
    assert order[:2] == [PmEventKind.CREATED, PmEventKind.ESTABLISHED] and order[-1] is PmEventKind.CLOSED
    assert PmEventKind.SUB_ESTABLISHED in order
    created = seen[[e.token for e in seen].index(token)]
    assert (created.saddr, created.daddr, created.dport, created.family) == (wlan.client_addr, wlan.server_addr,
                                                                              80, socket.AF_INET)
    bound = [j for j in joins if j.ifindex]
    assert [(j.saddr, j.local_id, j.ifindex) for j in bound] == [(wwan.client_addr, client_ep.id, wwan_index)]
    for join in joins:
        assert join.saddr == wwan.client_addr and join.backup is False
        # remote id 0 is the server's initial address; the announced one carries its endpoint id
        assert (join.daddr, join.remote_id) in {(wlan.server_addr, 0), (wwan.server_addr, server_ep.id)}

    ours = f"{token:08x}"
    monitor.wait_for(lambda line: line == ("CLOSED", {"token": ours}))
    monitor.stop()
    assert [line for line in monitor.lines if line[1].get("token") == ours] == [as_ip_prints(e) for e in seen
                                                                               if e.token == token]


async def open_with_two_subflows(lab: Lab) -> tuple[PmEvents, http.client.HTTPConnection, int, list[PmEvent]]:
    """Subscribe in the client netns, download, and wait for the join on wwan0."""
    with lab.client.entered():
        events = PmEvents()
    conn = mptcp_download(lab, 100_000)
    seen = await collect_until(events, lambda e: e.kind is PmEventKind.SUB_ESTABLISHED)
    return events, conn, token_of(seen, conn), seen


def is_sub_closed_from(addr: str, token: int) -> Callable[[PmEvent], bool]:
    return lambda e: e.kind is PmEventKind.SUB_CLOSED and e.token == token and e.saddr == addr


async def test_resets_give_sub_closed_with_error_and_reset_reason(lab: Lab) -> None:
    wlan, wwan = lab.paths
    events, conn, token, _ = await open_with_two_subflows(lab)
    with events, contextlib.closing(conn):
        assert lab.reset_subflows(wlan.iface) == 1          # we send the RST (SOCK_DESTROY here)
        ours = (await collect_until(events, is_sub_closed_from(wlan.client_addr, token)))[-1]
        # the server resets the wwan0 subflow: the RST carries MP_TCPRST, hence a reset reason
        lab.run(lab.server, ["ss", "-K", "-t", "dst", wwan.client_addr])
        theirs = (await collect_until(events, is_sub_closed_from(wwan.client_addr, token)))[-1]
    assert (ours.daddr, ours.local_id, ours.error, ours.reset_reason) == (wlan.server_addr, 0, errno.ECONNABORTED,
                                                                           None)
    assert (theirs.error, theirs.reset_reason, theirs.reset_flags) == (errno.ECONNRESET, MPTCP_RST_EUNSPEC, 0)
    assert theirs.local_id != 0 and theirs.remote_id is not None


async def test_server_endpoint_delete_gives_removed_then_sub_closed(lab: Lab) -> None:
    _, wwan = lab.paths
    with lab.server.entered():
        (signal,) = pm.list_endpoints()
    events, conn, token, _ = await open_with_two_subflows(lab)
    with events, contextlib.closing(conn):
        lab.delete_endpoint(wwan.iface)                     # the server's signal endpoint: RM_ADDR
        seen = await collect_until(events, is_sub_closed_from(wwan.client_addr, token))
    removed, closed = [e for e in seen if e.token == token][-2:]
    assert (removed.kind, removed.remote_id) == (PmEventKind.REMOVED, signal.id)
    assert (closed.daddr, closed.remote_id) == (wwan.server_addr, signal.id)


async def test_overrun_is_reported_and_the_stream_goes_on(lab: Lab) -> None:
    reported: list[int] = []
    with lab.client.entered():
        events = PmEvents(on_overrun=reported.append, rcvbuf=1)   # the kernel's minimum: a few events
    with events:
        for _ in range(100):                                   # without yielding to the loop: overflow
            make_listener_event(lab)
        burst = await collect_until(events, lambda e: True)
        assert burst[0].kind in (PmEventKind.LISTENER_CREATED, PmEventKind.LISTENER_CLOSED)
        deadline = time.monotonic() + 20                       # until the drain that hits ENOBUFS ran
        while events.overruns == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert events.overruns >= 1 and reported[-1] == events.overruns
        events.read_pending()                                  # forget the rest of the burst
        with lab.client.entered():
            late = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
        with late:
            late.bind(("127.0.0.1", 0))
            late.listen()
            port = late.getsockname()[1]
            after = await collect_until(events, lambda e: e.sport == port)
    assert after[-1].kind is PmEventKind.LISTENER_CREATED and after[-1].saddr == "127.0.0.1"


async def test_close_ends_iteration_and_releases_the_socket(lab: Lab) -> None:
    fds_before = open_fds()
    with lab.client.entered():
        events = PmEvents()
    waiting = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.01)
    events.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
    events.close()                                             # idempotent
    with pytest.raises(StopAsyncIteration):
        await anext(events)

    with lab.client.entered():
        stream = pm_events()
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.01)                              # subscribed now, from this netns
        make_listener_event(lab)
    event = await asyncio.wait_for(first, 5)
    assert event.kind is PmEventKind.LISTENER_CREATED
    await stream.aclose()
    assert open_fds() == fds_before
