"""Closing the terminal of `mptop demo` (killing its tmux session) or sending SIGTERM ends it and tears
the lab down: no process of it is left (the lab's namespaces live exactly as long as their holder
processes, children of mptop).  Before, a hung-up demo spun at ~90 % CPU on the dead tty and ignored
SIGTERM and SIGHUP."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from tests.cli.tmux import MPTOP, session

pytestmark = pytest.mark.lab


def running_demo(screen: str) -> bool:
    return "MPTCP" in screen and "subflows" in screen and "Paths" in screen


def wait_gone(procs: list[psutil.Process], timeout: float = 15.0) -> list[psutil.Process]:
    """The processes still alive after ``timeout``."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return alive


@pytest.mark.parametrize("how", ["kill-session", "hangup-without-sighup", "sigterm"])
def test_a_closed_terminal_or_sigterm_ends_the_demo_and_its_lab(how: str) -> None:
    # setsid: mptop is not in the terminal's session, so no SIGHUP comes; only its tty reads EIO
    wrap = "setsid -w" if how == "hangup-without-sighup" else ""
    with session([*MPTOP, "demo", "--scenario", "aggregate"], wrap=wrap) as term:
        term.wait_for(running_demo)
        mptop = term.mptop()
        lab = mptop.children(recursive=True)
        assert len(lab) >= 3, [p.cmdline() for p in lab]         # two namespace holders and the server
        started = time.monotonic()
        if how == "sigterm":
            mptop.send_signal(signal.SIGTERM)
        else:
            term.kill()
        left = wait_gone([mptop, *lab])
        took = time.monotonic() - started
        for proc in left:                                          # never leave a spinning process behind
            proc.kill()
        assert not left, f"still running {took:.1f} s after {how}: {[p.cmdline() for p in left]}"
