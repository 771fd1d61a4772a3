"""The transfer engine against the real two-path lab (network namespaces, the lab's HTTP server).

Every test runs its asyncio code with this thread inside the lab's client namespace.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mptop.core.partfile import VALIDATOR_XATTR
from mptop.core.transfer import (
    Transfer,
    TransferManager,
    TransferOptions,
    run_transfers,
)
from mptop.kernel.sockopt import read_socket, socket_status
from mptop.kernel.types import SocketStatus
from mptop.lab import Lab, LabError
from mptop.lab import content as lab_content
from tests.core.tls import self_signed_server_context
from tests.support import open_fds

pytestmark = pytest.mark.lab

DISABLED = "MPTCP disabled on this host (net.mptcp.enabled=0)"


async def fetch(lab: Lab, urls: list[str], **options: object) -> list[Transfer]:
    """run_transfers with this thread in the lab's client namespace."""
    with lab.client.entered():
        return await run_transfers(urls, TransferOptions(**options))  # type: ignore[arg-type]


def file_sha256(path: str | Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_part(path: Path, data: bytes, size: int) -> None:
    """A .part as mptop leaves it: the bytes and the validator of /bytes/SIZE (its ETag)."""
    path.write_bytes(data)
    os.setxattr(path, VALIDATOR_XATTR, lab_content.etag(size).encode())


def assert_done(t: Transfer, lab: Lab, size: int) -> None:
    assert t.state == "done", t.error
    assert t.error is None
    assert t.bytes_done == t.total == size
    assert t.sha256 == lab.content_sha256(size)
    assert t.started_at is not None and t.ended_at is not None and t.ended_at >= t.started_at


async def test_two_path_download_is_mptcp_and_both_subflows_are_readable(
        make_lab: Callable[..., Lab], tmp_path: Path) -> None:
    lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 10})
    size = 2_000_000
    rx_before = {p.iface: lab.rx_bytes(p.iface) for p in lab.paths}
    with lab.client.entered():
        async with TransferManager([lab.url(size)], TransferOptions(output=f"{tmp_path}/")) as manager:
            [t] = await manager.run()
            assert_done(t, lab, size)
            assert t.file == f"{tmp_path}/{size}" and file_sha256(t.file) == t.sha256
            assert os.listdir(tmp_path) == [str(size)]
            assert t.mptcp_unavailable is None
            assert len(t.sockets) == 1 and t.active_socket is t.sockets[0]
            # The session is closed, but the handle still reads the connection's final state.
            reading = read_socket(t.sockets[0])
            assert reading.status is SocketStatus.MPTCP
            assert len(reading.subflows) == 2
            received = [sf.tcp.bytes_received or 0 for sf in reading.subflows if sf.tcp]
            assert len(received) == 2 and min(received) > size // 20
            assert sum(received) >= size
            handle = t.sockets[0]
        assert t.sockets == [] and handle.fileno() == -1      # released on leaving the manager
    for p in lab.paths:
        assert lab.rx_bytes(p.iface) - rx_before[p.iface] > size // 20, p.iface


async def test_plain_tcp_server_downloads_over_an_mptcp_socket(lab: Lab, tmp_path: Path) -> None:
    size = 300_000
    with lab.client.entered():
        async with TransferManager([lab.url(size, tcp=True)], TransferOptions(output=f"{tmp_path}/")) as m:
            [t] = await m.run()
            assert_done(t, lab, size)
            assert t.mptcp_unavailable is None                # the socket was MPTCP ...
            assert socket_status(t.sockets[0]) is SocketStatus.FALLBACK   # ... and fell back
    [t] = await fetch(lab, [lab.url(size, tcp=True)], output=f"{tmp_path}/strict/", require_mptcp=True)
    assert t.state == "failed"
    assert t.error == "the server does not speak MPTCP (connection fell back to TCP)"
    assert not (tmp_path / "strict").exists()


async def test_mptcp_disabled_uses_tcp_with_the_reason(lab: Lab, tmp_path: Path) -> None:
    lab.sysctl(lab.client, "net.mptcp.enabled", "0")
    size = 100_000
    with lab.client.entered():
        async with TransferManager([lab.url(size)], TransferOptions(output=f"{tmp_path}/")) as m:
            [t] = await m.run()
            assert_done(t, lab, size)
            assert t.mptcp_unavailable == DISABLED
            assert socket_status(t.sockets[0]) is SocketStatus.TCP
    [t] = await fetch(lab, [lab.url(size)], output=f"{tmp_path}/strict/", require_mptcp=True)
    assert t.state == "failed"
    assert t.error == f"MPTCP required but unavailable: {DISABLED}"
    assert not (tmp_path / "strict").exists()


async def test_bad_inputs_each_fail_with_one_plain_line(lab: Lab, tmp_path: Path) -> None:
    base = lab.base_url()
    host = lab.paths[0].server_addr
    cases: dict[str, str | re.Pattern[str]] = {
        "http://[::1/x": "malformed URL: http://[::1/x (invalid ipv6 url)",
        "ftp://example.org/f": "unsupported URL scheme 'ftp' in ftp://example.org/f (http and https only)",
        f"http://{host}:9/refused": f"connection refused ({host}:9)",
        "http://no-such-host.mptop-test/x": "unknown host no-such-host.mptop-test (no DNS server answered)",
        f"{base}/status/404": "HTTP 404 Not Found",
        f"{base}/status/500": "HTTP 500 Internal Server Error",
        f"{base}/status/304": "HTTP 304 Not Modified",
        f"https://{host}:80/tls":
            f"TLS handshake with {host}:80 failed (wrong version number) — is this an https port?",
        f"{base}/truncated/100000": re.compile(r"connection closed after (\d+) of 100000 bytes"),
        f"{base}/reset/1000000": re.compile(r"connection reset by the server after (\d+) of 1000000 bytes"),
        f"{base}/redirect/12": "too many redirects (more than 10)",
    }
    began, fds_before = time.monotonic(), open_fds()
    transfers = await fetch(lab, list(cases), output=f"{tmp_path}/", connect_timeout=5)
    assert time.monotonic() - began < 5          # nothing hangs, the unknown host included
    assert open_fds() == fds_before       # failures leak no handle either
    received = {}
    for t, expected in zip(transfers, cases.values(), strict=True):
        assert t.state == "failed" and t.file is None and t.sha256 is None, t.url
        match = re.fullmatch(expected if isinstance(expected, re.Pattern) else re.escape(expected), t.error or "")
        assert match, (t.url, t.error)
        if match.groups():
            received[os.path.basename(t.url)] = int(match.group(1))
    # Nothing under a final name; the cut bodies stay as .part for a resume.  The server sent half
    # of each; aiohttp may drop what it had buffered when the connection ends (so "at most").
    assert sorted(os.listdir(tmp_path)) == ["100000.part", "1000000.part"]
    for name, sent in (("100000", 50_000), ("1000000", 500_000)):
        assert 0 <= received[name] <= sent
        assert (tmp_path / f"{name}.part").stat().st_size == received[name]


async def test_redirects_and_several_urls_at_once(lab: Lab, tmp_path: Path) -> None:
    base = lab.base_url()
    urls = [f"{base}/redirect/3", lab.url(700_000), lab.url(500_000, tcp=True)]
    started: list[int] = []
    fds_before = open_fds()
    with lab.client.entered():
        transfers = await run_transfers(urls, TransferOptions(output=f"{tmp_path}/"),
                                        on_start=lambda t: started.append(t.id))
    assert sorted(started) == [1, 2, 3]
    assert open_fds() == fds_before        # no socket handle or file left open
    for t, size in zip(transfers, (1000, 700_000, 500_000), strict=True):
        assert_done(t, lab, size)
    assert transfers[0].file == f"{tmp_path}/3"     # named from the URL asked for, like wget
    spans = [(t.started_at or 0, t.ended_at or 0) for t in transfers]
    assert max(s for s, _ in spans) < min(e for _, e in spans)   # they overlapped in time
    assert sorted(os.listdir(tmp_path)) == ["3", "500000", "700000"]


async def test_existing_file_is_kept_without_force(lab: Lab, tmp_path: Path) -> None:
    target = tmp_path / "keep.bin"
    target.write_bytes(b"precious")
    with lab.client.entered():
        async with TransferManager([lab.url(1000)], TransferOptions(output=str(target))) as m:
            [t] = await m.run()
            assert t.sockets == []                   # -o FILE: refused before connecting
    assert (t.state, t.error) == ("failed", f"{target} exists — use --force")
    assert target.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["keep.bin"]
    (tmp_path / "1000").write_bytes(b"also precious")      # URL-named: refused once the name is final
    [t] = await fetch(lab, [lab.url(1000)], output=f"{tmp_path}/")
    assert (t.state, t.error) == ("failed", f"{tmp_path}/1000 exists — use --force")
    assert (tmp_path / "1000").read_bytes() == b"also precious"
    [t] = await fetch(lab, [lab.url(1000)], output=str(target), force=True)
    assert_done(t, lab, 1000)
    assert file_sha256(target) == lab.content_sha256(1000)
    assert sorted(os.listdir(tmp_path)) == ["1000", "keep.bin"]


async def test_resume_completes_a_part_with_range(lab: Lab, tmp_path: Path) -> None:
    size, kept = 3_000_000, 2_000_000
    write_part(tmp_path / f"{size}.part", lab_content.content(kept), size)
    rx_before = sum(lab.rx_bytes(p.iface) for p in lab.paths)
    [t] = await fetch(lab, [lab.url(size)], output=f"{tmp_path}/")
    assert_done(t, lab, size)
    assert t.resumed == kept                # not fetched by this run: an average leaves them out
    assert file_sha256(tmp_path / str(size)) == lab.content_sha256(size)
    assert os.listdir(tmp_path) == [str(size)]
    assert sum(lab.rx_bytes(p.iface) for p in lab.paths) - rx_before < size - kept + 200_000


async def test_resume_of_a_complete_part_and_of_a_server_named_file(lab: Lab, tmp_path: Path) -> None:
    size = 200_000
    write_part(tmp_path / f"{size}.part", lab_content.content(size), size)   # nothing left to fetch: 416
    [t] = await fetch(lab, [lab.url(size)], output=f"{tmp_path}/")
    assert_done(t, lab, size)
    assert t.resumed == size
    assert os.listdir(tmp_path) == [str(size)]
    named = tmp_path / "named"
    named.mkdir()
    write_part(named / f"{size}.part", lab_content.content(50_000), size)
    [t] = await fetch(lab, [f"{lab.base_url()}/disposition/{size}?name=../report.bin"], output=f"{named}/")
    assert_done(t, lab, size)
    assert t.file == f"{named}/report.bin" and os.listdir(named) == ["report.bin"]


async def test_stdout_and_dev_null_are_written_directly(
        lab: Lab, tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    [t] = await fetch(lab, [lab.url(150_000)], output="-")
    assert_done(t, lab, 150_000)
    assert t.file is None
    assert capfdbinary.readouterr().out == lab_content.content(150_000)
    sizes = [100_000, 200_000, 300_000]
    transfers = await fetch(lab, [lab.url(n) for n in sizes], output=os.devnull)
    for t, n in zip(transfers, sizes, strict=True):
        assert_done(t, lab, n)
        assert t.file == os.devnull
    assert os.listdir(tmp_path) == []


async def test_timeouts_name_the_phase(lab: Lab, tmp_path: Path) -> None:
    silent = lab.paths[0].server_addr.rsplit(".", 1)[0] + ".99"      # on the lab subnet, nobody there
    [t] = await fetch(lab, [f"http://{silent}/x"], output=f"{tmp_path}/", connect_timeout=0.5)
    assert (t.state, t.error) == ("failed", f"timed out connecting to {silent} after 0.5 s")
    size = 400_000
    with lab.client.entered():
        async with TransferManager([f"{lab.base_url()}/slow/{size}?bps=100000"],
                                   TransferOptions(output=f"{tmp_path}/", idle_timeout=0.5)) as m:
            run = asyncio.create_task(m.run())
            [t] = m.transfers
            await _wait_for(lambda: t.bytes_done > 0)
            for p in lab.paths:
                lab.link_down(p.iface)
            await asyncio.wait_for(run, 10)
    assert t.state == "failed" and t.error is not None
    assert t.error.startswith("no data from the server for 0.5 s (idle timeout) after ")
    assert t.error.endswith(f" of {size} bytes")
    assert os.listdir(tmp_path) == [f"{size}.part"]


async def test_fail_from_outside_stops_the_transfer(lab: Lab, tmp_path: Path) -> None:
    size = 1_000_000
    with lab.client.entered():
        async with TransferManager([f"{lab.base_url()}/slow/{size}?bps=200000"],
                                   TransferOptions(output=f"{tmp_path}/")) as m:
            run = asyncio.create_task(m.run())
            [t] = m.transfers
            await _wait_for(lambda: t.bytes_done > 0)
            t.fail("the connection fell back to TCP")
            await asyncio.wait_for(run, 5)
    assert (t.state, t.error) == ("failed", "the connection fell back to TCP")
    assert os.listdir(tmp_path) == [f"{size}.part"]
    assert 0 < (tmp_path / f"{size}.part").stat().st_size < size


async def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_tls_certificate_checked_unless_insecure(lab: Lab, tmp_path: Path) -> None:
    from aiohttp import web

    ctx = self_signed_server_context(tmp_path)
    app = web.Application()
    async def secret(request: web.Request) -> web.Response:
        return web.Response(body=b"secret")

    app.router.add_get("/x", secret)
    out = tmp_path / "out"
    with lab.client.entered():
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            url = f"https://127.0.0.1:{port}/x"
            [bad] = await run_transfers([url], TransferOptions(output=f"{out}/"))
            [ok] = await run_transfers([url], TransferOptions(output=f"{out}/", insecure=True))
        finally:
            await runner.cleanup()
    assert bad.state == "failed"
    assert bad.error == ("TLS certificate of 127.0.0.1 not accepted: self-signed certificate "
                         "(--insecure skips the check)")
    assert ok.state == "done" and (out / "x").read_bytes() == b"secret"


# --- file-system failures, in a child process: a tiny tmpfs, a directory root cannot write ----------

_CHILD = """
import asyncio, json, os, sys
from mptop.core.transfer import TransferOptions, run_transfers
url, out = sys.argv[1], sys.argv[2]
[t] = asyncio.run(run_transfers([url], TransferOptions(output=out + "/")))
print(json.dumps({"state": t.state, "error": t.error, "file": t.file, "listing": sorted(os.listdir(out))}))
"""


def _child_transfer(lab: Lab, prefix: list[str], url: str, out: Path) -> dict[str, object]:
    try:
        proc = lab.run(lab.client, [*prefix, sys.executable, "-c", _CHILD, url, str(out)], timeout=30)
    except LabError as exc:
        pytest.skip(f"cannot set up the child: {exc}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_disk_full_is_one_line(lab: Lab, tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) not installed")
    out = tmp_path / "tiny"
    out.mkdir()
    # A 64 KiB tmpfs in a private mount namespace: it disappears with the child.
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              f'mount -t tmpfs -o size=64k mptop-test "{out}" && exec "$0" "$@"']
    result = _child_transfer(lab, prefix, lab.url(1_000_000), out)
    assert result == {"state": "failed", "error": f"disk full writing {out}/1000000.part",
                      "file": None, "listing": ["1000000.part"]}
    assert os.listdir(out) == []                         # the parent never saw the tmpfs


def test_unwritable_directory_is_one_line(lab: Lab, tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv(1) not installed")
    out = tmp_path / "locked"
    out.mkdir(mode=0o755)
    os.chown(out, 65534, 65534)          # someone else's directory; root without DAC_OVERRIDE can't write it
    prefix = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
              "--bounding-set=-dac_override,-dac_read_search", "--"]
    result = _child_transfer(lab, prefix, lab.url(1000), out)
    # Checked before connecting: the line names the directory that cannot be written.
    assert result == {"state": "failed", "error": f"permission denied: {out}",
                      "file": None, "listing": []}
