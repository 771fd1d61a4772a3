"""`mptop serve` without a browser or a lab: binding, the one-line errors, the page, the websocket's origin
check.  No tab is opened here (no app process starts); tests/cli/test_serve_lab.py drives Chromium."""

from __future__ import annotations

import http.client
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

MPTOP = [sys.executable, "-m", "mptop"]


@contextmanager
def served(*args: str) -> Iterator[tuple[str, int, list[str]]]:
    """A running `mptop serve --port 0 ARGS…`: its host, port and the stderr lines up to its URL line."""
    proc = subprocess.Popen([*MPTOP, "serve", "--port", "0", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline()]
        while lines[-1] and "Ctrl-C stops" not in lines[-1]:
            lines.append(proc.stderr.readline())
        found = re.search(r"http://([\d.]+):(\d+)/", lines[-1])
        assert found, "".join(lines) + proc.stderr.read()
        yield found.group(1), int(found.group(2)), lines
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def test_a_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run([*MPTOP, "serve", "demo", "--port", str(port)], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 1
    assert run.stderr == f"mptop serve: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert run.stdout == ""


def test_what_to_serve_that_is_neither_watch_demo_nor_urls_is_a_usage_error() -> None:
    for args, said in ((["ftp://x"], "neither watch, demo nor http(s) URLs: 'ftp://x'"),
                       (["demo", "extra"], "demo takes nothing more here: 'extra'"),
                       (["watch", "--scenario", "flaky"], "--scenario is for `mptop serve demo`"),
                       (["demo", "--scenario", "nosuch"], "no scenario 'nosuch'; choose one of: ")):
        run = subprocess.run([*MPTOP, "serve", *args], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
        assert run.returncode == 2 and run.stderr.startswith(f"mptop serve: {said}"), (args, run.stderr)
        assert run.stderr.count("\n") == 1, run.stderr


def test_loopback_by_default_and_a_warning_line_for_any_other_address() -> None:
    with served("watch") as (host, _, lines):
        assert host == "127.0.0.1" and len(lines) == 1, lines
    with served("watch", "--host", "0.0.0.0") as (host, port, lines):
        assert host == "0.0.0.0" and len(lines) == 2, lines
        assert lines[0] == ("mptop serve: warning: listening on 0.0.0.0, not loopback: anyone who can reach "
                            f"port {port} sees this host's connections\n")


def test_the_page_is_self_contained_large_and_its_websocket_refuses_other_sites() -> None:
    with served("demo") as (_, port, _):
        status, page = get(port, "/")
        assert status == 200
        assert 'data-font-size="20"' in page and "<title>mptop demo</title>" in page
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the page fetches from elsewhere"
        for asset in re.findall(r"""(?:src|href)="(/static/[^"]+)\"""", page):
            assert get(port, asset)[0] == 200, asset
        assert 'data-font-size="32"' in get(port, "/?fontsize=32")[1]
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        status, body = get(port, "/ws", {**upgrade, "Origin": "http://attacker.example"})
        assert status == 403, body
        status, _ = get(port, "/ws", {**upgrade, "Origin": f"http://localhost:{port}"})
        assert status == 403            # another name for this host is another origin too
