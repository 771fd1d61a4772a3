""".ci/leaks.py, the CI's leak check, against real leaks: it fails naming what a run left behind (a named
network namespace, a host veth, a process of the run still holding a namespace) and counts nothing that
was there before the run or belongs to someone else on the host.

Each check runs in a session of its own with a mark of its own, as ``.ci/run`` does, so the CI run
around this test (or anything else on the host) is not part of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import wait_for

pytestmark = pytest.mark.lab

LEAKS = Path(__file__).parents[1] / ".ci" / "leaks.py"
TAG = f"lk{os.getpid() % 100000}"           # names unique on the host, at most 15 characters with a suffix


class Run:
    """One pretend CI run: its mark, its snapshot, and its check."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.env = {**os.environ, "MPTOP_CI_RUN": f"leaktest-{os.getpid()}-{state.parent.name}"}

    def leaks(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["setsid", sys.executable, str(LEAKS), action, str(self.state), "--wait", "0.5"],
                              env=self.env, capture_output=True, text=True, timeout=60)

    def check(self) -> subprocess.CompletedProcess[str]:
        return self.leaks("check")


@pytest.fixture
def run(tmp_path: Path) -> Run:
    ci = Run(tmp_path / "before.json")
    assert ci.leaks("snapshot").returncode == 0
    return ci


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def cleanup() -> Iterator[list[list[str]]]:
    """`ip` commands that undo what a test made, run on every exit path."""
    undo: list[list[str]] = []
    yield undo
    for args in reversed(undo):
        subprocess.run(["ip", *args], capture_output=True, timeout=30)


def test_a_namespace_and_a_veth_the_run_leaves_fail_it_and_older_ones_do_not(
        tmp_path: Path, cleanup: list[list[str]]) -> None:
    ip("netns", "add", f"{TAG}-before")                  # someone else's, there before the run
    cleanup.append(["netns", "del", f"{TAG}-before"])
    ci = Run(tmp_path / "before.json")
    assert ci.leaks("snapshot").returncode == 0
    ip("netns", "add", f"{TAG}-leak")
    cleanup.append(["netns", "del", f"{TAG}-leak"])
    ip("link", "add", f"{TAG}-va", "type", "veth", "peer", "name", f"{TAG}-vb")
    cleanup.append(["link", "del", f"{TAG}-va"])
    leaked = ci.check()
    assert leaked.returncode == 1, leaked
    assert f"network namespace {TAG}-leak (ip netns)" in leaked.stdout
    assert f"veth {TAG}-va (host namespace)" in leaked.stdout and f"veth {TAG}-vb" in leaked.stdout
    assert f"{TAG}-before" not in leaked.stdout
    ip("netns", "del", f"{TAG}-leak")
    ip("link", "del", f"{TAG}-va")
    clean = ci.check()
    assert clean.returncode == 0 and "nothing left behind" in clean.stdout, clean


def test_a_process_of_the_run_holding_a_namespace_fails_it_and_a_strangers_does_not(run: Run) -> None:
    # Like a lab's namespace holder that outlived its test: marked with the run's token, in a session
    # of its own (so only the mark ties it to the run), holding an anonymous network namespace.
    holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "300"], env=run.env, start_new_session=True)
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True,
                                env={k: v for k, v in os.environ.items() if k != "MPTOP_CI_RUN"})
    try:
        host = os.readlink("/proc/self/ns/net")
        wait_for(lambda: os.readlink(f"/proc/{holder.pid}/ns/net") != host)     # unshare has run
        leaked = run.check()
        assert leaked.returncode == 1, leaked
        line = next((x for x in leaked.stdout.splitlines() if f"process {holder.pid}:" in x), None)
        assert line is not None and "in its own network namespace" in line, leaked.stdout
        assert f"process {stranger.pid}:" not in leaked.stdout
    finally:
        for proc in (holder, stranger):
            proc.kill()
            proc.wait(30)
    clean = run.check()
    assert clean.returncode == 0 and "nothing left behind" in clean.stdout, clean
