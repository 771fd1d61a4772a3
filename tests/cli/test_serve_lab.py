"""`mptop serve` in a real headless Chromium: the tab draws the app, each tab is its own mptop, and a demo
tab's lab is gone once the tab closes, and once the server is stopped (SIGTERM, Ctrl-C).

"The lab is gone" is read from the kernel: a network namespace lives while a process is in it or holds
an fd to it, so none of /proc/*/ns/net and /proc/*/fd/* may name the tab's namespaces any more.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import psutil
import pytest

from mptop.lab.loopback import loopback_connections
from tests.cli.browser import Browser, Tab, missing
from tests.support import wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]    # Chromium and labs on a loaded machine

DRAW_S = 120.0           # a loaded 2-core machine: a demo tab's lab, the app and Chromium all start


@pytest.fixture
def browser(lab_unavailable: Callable[[str], NoReturn]) -> Iterator[Browser]:
    if os.geteuid() != 0:
        lab_unavailable("a demo tab builds its lab as root")
    reason = missing()
    if reason:
        lab_unavailable(reason)
    chromium = Browser()
    try:
        yield chromium
    finally:
        chromium.quit()


class Served:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.url = proc, ""
        self.seen: set[psutil.Process] = set()

    def tabs(self) -> list[psutil.Process]:
        """The tabs' live mptop processes (the server's children)."""
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        tabs = [p for p in children if alive(p) and "mptop" in _cmdline(p)[1:3]]
        self.seen.update(tabs)
        return tabs


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (psutil's is_running() is true for a zombie)."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.NoSuchProcess:        # also a zombie's
        return []


@contextmanager
def serve(*what: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Iterator[Served]:
    proc = subprocess.Popen([sys.executable, "-m", "mptop", "serve", "--port", "0", *what], text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env=env, cwd=cwd)
    served = Served(proc)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        found = re.match(r"mptop serve: (http://127\.0\.0\.1:\d+/) ", first)
        assert found, first + proc.stderr.read()
        served.url = found.group(1)
        yield served
    finally:
        left = [p for p in served.seen if alive(p)]
        if proc.poll() is None:
            left += [psutil.Process(proc.pid), *psutil.Process(proc.pid).children()]
        for p in left:                  # a failed test's server and tabs (their labs die with them)
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        proc.communicate(timeout=30)


def netns_of(proc: psutil.Process) -> set[str]:
    """The network namespaces of ``proc`` and its descendants other than ours (a demo's lab)."""
    ours = os.readlink("/proc/self/ns/net")
    found = set()
    for p in [proc, *proc.children(recursive=True)]:
        with _gone_or_denied():
            found.add(os.readlink(f"/proc/{p.pid}/ns/net"))
    return found - {ours}


@contextmanager
def _gone_or_denied() -> Iterator[None]:
    try:
        yield
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass


def netns_in_use() -> set[str]:
    """Every network namespace a process is in or holds an fd to, as ``net:[inode]``."""
    used = set()
    for pid in Path("/proc").iterdir():
        if not pid.name.isdigit():
            continue
        with _gone_or_denied():
            used.add(os.readlink(pid / "ns" / "net"))
            for fd in (pid / "fd").iterdir():
                with _gone_or_denied():
                    target = os.readlink(fd)
                    if target.startswith("net:["):
                        used.add(target)
    return used


def veths() -> str:
    return subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True,
                          check=True).stdout


def open_drawn(browser: Browser, url: str, *words: str, drawn: tuple[str, ...] = ()) -> tuple[Tab, str]:
    """A new tab once its text has all ``words`` and its screenshot shows them (and ``drawn``)."""
    tab = browser.open(url)
    text = tab.wait_for(lambda t: all(w in t for w in words), DRAW_S)
    for word in (*words, *drawn):
        tab.wait_drawn(word)
    return tab, text


PATH_ROWS = ("wlan0", "wwan0")                 # the demo's Paths rows: its lab is up and sampled
NAMES = ("Wi-Fi", "Cellular")


def test_demo_tabs_draw_the_handover_and_their_labs_go_with_the_tab_and_the_server(browser: Browser) -> None:
    veths_before = veths()
    with serve("demo") as served:
        first, _ = open_drawn(browser, served.url, *PATH_ROWS, "Subflows", drawn=NAMES)
        second, _ = open_drawn(browser, served.url, *PATH_ROWS, drawn=NAMES)
        wait_for(lambda: len(served.tabs()) == 2, 30)
        tabs = served.tabs()
        wait_for(lambda: all(len(netns_of(tab)) == 2 for tab in tabs), DRAW_S)        # both labs are up
        labs = [netns_of(tab) for tab in tabs]
        assert all(len(lab) == 2 for lab in labs) and not labs[0] & labs[1], labs    # client + server each
        assert set().union(*labs) <= netns_in_use()

        first.wait_for(lambda t: "Wi-Fi link down" in t, DRAW_S)                      # the scenario at 8 s
        first.wait_drawn("link down")

        first.close()
        wait_for(lambda: sum(map(alive, tabs)) == 1, 60)
        closed_lab, open_lab = (labs[0], labs[1]) if alive(tabs[1]) else (labs[1], labs[0])
        wait_for(lambda: not closed_lab & netns_in_use(), 30)
        assert open_lab <= netns_in_use(), "closing one tab ended the other's lab"
        assert second.text()                                                          # still served

        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=60) == 0
        wait_for(lambda: not open_lab & netns_in_use(), 30)
        out, err = served.proc.communicate(timeout=10)
        assert out + err == "", out + err            # after its URL line, nothing: the tabs quit, as asked
    assert veths() == veths_before


def test_watch_tabs_show_a_connection_take_keys_quit_with_q_and_ctrl_c_ends_server_and_tab(browser: Browser) -> None:
    with loopback_connections(1) as pairs, serve("watch") as served:
        port = pairs[0][0].getpeername()[1]
        quitter, _ = open_drawn(browser, served.url, f"127.0.0.1:{port}", "q Quit")  # focused: the footer's keys
        wait_for(lambda: len(served.tabs()) == 1, 30)
        quitting = served.tabs()[0]
        quitter.keys("?")
        quitter.wait_for(lambda t: "mptop — keys" in t)            # the help screen: the key reached the app
        quitter.keys("qq")                                         # the help closes, then the app
        wait_for(lambda: not alive(quitting), 30)
        wait_for(lambda: quitter.page_closed(), 30)                # the page says so (and offers a restart)

        open_drawn(browser, served.url, f"127.0.0.1:{port}")
        wait_for(lambda: len(served.tabs()) == 1, 30)
        tab = served.tabs()[0]
        os.killpg(served.proc.pid, signal.SIGINT)                  # Ctrl-C in the server's terminal
        assert served.proc.wait(timeout=60) == 0
        wait_for(lambda: not alive(tab), 30)
        out, err = served.proc.communicate(timeout=10)
        assert out + err == "", out + err                          # q is no failure: nothing to say


def test_a_demo_tabs_lab_does_not_outlive_a_killed_server(browser: Browser) -> None:
    with serve("demo") as served:
        open_drawn(browser, served.url, *PATH_ROWS)
        wait_for(lambda: len(served.tabs()) == 1, 30)
        tab = served.tabs()[0]
        lab = netns_of(tab)
        assert len(lab) == 2, lab
        served.proc.kill()                                          # no handler runs: SIGKILL
        served.proc.wait(timeout=30)
        wait_for(lambda: not alive(tab) and not lab & netns_in_use(), 30)


def test_a_tab_whose_mptop_fails_says_why_in_the_tab_and_the_servers_log(browser: Browser) -> None:
    with serve("demo", env={**os.environ, "PATH": "/nonexistent"}) as served:     # no setpriv: no lab
        tab = browser.open(served.url)
        text = tab.wait_for(lambda t: "setpriv not found" in t)
        tab.wait_drawn("setpriv not found")
        wait_for(lambda: tab.page_closed())
        assert not served.tabs()
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=60) == 0
        out, err = served.proc.communicate(timeout=10)
    said = text.strip().splitlines()[0].strip()
    assert said.startswith("mptop demo: ") and "setpriv not found" in said, text
    assert f"mptop serve: a tab's `mptop demo`: {said}\n" in err, err
    assert out == "", out


class Zeros(http.server.BaseHTTPRequestHandler):
    SIZE = 200 << 20

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        self.send_response(200)
        self.send_header("Content-Length", str(self.SIZE))
        self.end_headers()
        block = bytes(1 << 20)
        for _ in range(self.SIZE // len(block)):
            self.wfile.write(block)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """A plain HTTP server on loopback (this netns) in a thread; its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_url_tab_downloads_to_nowhere_and_its_close_leaves_nothing(browser: Browser, tmp_path: Path) -> None:
    with serving(Zeros) as port, serve(f"http://127.0.0.1:{port}/big", cwd=tmp_path) as served:
        tab, text = open_drawn(browser, served.url, f"127.0.0.1:{port}/big", "Transfers")
        tab.wait_for(lambda t: "#1 done" in t)                   # plain TCP on loopback: told as a fallback
        wait_for(lambda: len(served.tabs()) == 1, 30)
        process = served.tabs()[0]
        tab.close()
        wait_for(lambda: not alive(process), 30)
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=60) == 0
        out, err = served.proc.communicate(timeout=10)
    assert out + err == "", out + err               # e.g. no "Unknown child process pid N" from asyncio
    assert list(tmp_path.iterdir()) == []           # -o /dev/null: nothing saved where serve runs
