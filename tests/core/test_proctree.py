"""`mptop run`'s pieces without the lab: which connections a process tree holds (real processes and
sockets, the connections synthetic), the run's summary from records, and CMD's start and exit code."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from mptop.core import launch
from mptop.core.launch import Command, CommandUnavailable, PreloadMissing, command_env
from mptop.core.model import ConnectionSample, Event, PathSample, Sample, SubflowSample
from mptop.core.proctree import ProcessTree, RunTally
from mptop.kernel.types import DiagConnection, MptcpInfo
from tests.support import wait_for

# A parent that forks a child; each holds a socket of its own (the child the parent's too) and says its inode.
HOLDERS = r"""
import os, socket, sys, time
s = socket.socket()
if os.fork() == 0:
    t = socket.socket()
    os.write(1, b"child %d\n" % os.stat(f"/proc/self/fd/{t.fileno()}").st_ino)
else:
    os.write(1, b"parent %d\n" % os.stat(f"/proc/self/fd/{s.fileno()}").st_ino)
time.sleep(60)
"""


def conn(token: int, inode: int) -> DiagConnection:
    info = MptcpInfo(1, 0, 0, 8, 0, 8, 0, token, 0, 0, 0)
    return DiagConnection(("192.0.2.2", 40000 + token), ("192.0.2.1", 80), 1, inode, 0, info)


@pytest.fixture
def holders() -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    # Under a shell: the tree is a root's descendants (mptop's, in a run), and this shell is the root.
    proc = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "$0"; true', HOLDERS], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        said = dict(proc.stdout.readline().split() for _ in range(2))
        yield proc, [int(said["parent"]), int(said["child"])]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_the_trees_sockets_are_kept_others_left_out(holders: tuple[subprocess.Popen[str], list[int]]) -> None:
    proc, inodes = holders
    tree = ProcessTree(root=proc.pid)
    with socket.socket() as mine:             # this process's: not in the tree
        ours = os.stat(f"/proc/self/fd/{mine.fileno()}").st_ino
        kept = tree.select([conn(1, inodes[0]), conn(2, inodes[1]), conn(3, ours), conn(4, 0)])
    assert {c.token for c in kept} == {1, 2}                    # the child's (forked) socket too
    parent, child = sorted(tree.pids())
    assert [(c.token, c.pid) for c in kept] == [(1, parent), (2, child)]   # an inherited socket: the parent's
    assert all(c.process and c.process.startswith("python") for c in kept)


def test_a_decision_is_kept_once_the_socket_is_closed(holders: tuple[subprocess.Popen[str], list[int]]) -> None:
    proc, inodes = holders
    tree = ProcessTree(root=proc.pid)
    assert [c.token for c in tree.select([conn(7, inodes[1])])] == [7]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not tree.pids())
    with socket.socket() as mine:             # never the tree's
        ours = os.stat(f"/proc/self/fd/{mine.fileno()}").st_ino
        assert [c.token for c in tree.select([conn(7, 0), conn(8, ours)])] == [7]   # 7 closed: inode 0


def sample(t: float, rx: dict[str, int], token: int = 5) -> Sample:
    subflows = [SubflowSample(id=i, local=f"10.0.{i}.2:4000{i}", remote=f"10.0.{i}.1:80", iface=iface, path=iface,
                              bytes_received=n, rate_bps=0.0, rtt_ms=None, backup=False, bytes_sent=12, bytes_acked=10)
                for i, (iface, n) in enumerate(rx.items())]
    c = ConnectionSample(token=token, local="10.0.0.2:40000", remote="10.0.0.1:80", process="curl",
                         status="mptcp", rate_bps=0.0, subflows=subflows, bytes=sum(rx.values()) + 20, pid=42)
    paths = {iface: PathSample(label={"wlan0": "Wi-Fi"}.get(iface, iface), rate_bps=0.0, bytes=0) for iface in rx}
    return Sample(t=t, paths=paths, connections=[c])


def test_the_tally_keeps_each_subflows_last_bytes_outages_and_fallbacks() -> None:
    tally = RunTally()
    tally(sample(1.0, {"wlan0": 100, "wwan0": 50}))
    tally(Event(2.0, "path_stalled", "wlan0", None, "Wi-Fi stalled"))
    tally(sample(3.0, {"wlan0": 100, "wwan0": 900}))
    tally(Event(4.5, "path_recovered", "wlan0", None, "Wi-Fi back"))
    tally(Event(5.0, "link_down", "wwan0", None, "down"))
    tally(Event(5.5, "fallback", None, None, "fell back to TCP: no MPTCP option — curl a → b", connection=9))
    tally(sample(6.0, {"wlan0": 100}, token=9))
    summary = tally.summary(["curl", "x"], 0, 7.0)
    assert summary.exit_code == 0 and summary.command == ["curl", "x"]
    by_token = {c.token: c for c in summary.connections or []}
    assert by_token[5].path_bytes == {"wlan0": 110, "wwan0": 910}     # rx + tx, the last totals
    assert by_token[9].fallback == "fell back to TCP: no MPTCP option"
    [stall, down] = summary.outages or []
    assert (stall.path, stall.kind, stall.start_s, stall.duration_s) == ("Wi-Fi", "stalled", 2.0, 2.5)
    assert (down.iface, down.kind, down.duration_s) == ("wwan0", "link_down", None)


def test_the_preload_goes_first_and_a_missing_library_says_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch, "preload_library", lambda: "/lib/libmptcpwrap.so.0.0.1")
    env = command_env(True, {"LD_PRELOAD": "/lib/mine.so", "PATH": "/bin"})
    assert env["LD_PRELOAD"] == "/lib/libmptcpwrap.so.0.0.1 /lib/mine.so"
    assert "LD_PRELOAD" not in command_env(False, {"PATH": "/bin"})
    monkeypatch.setattr(launch, "preload_library", lambda: None)
    with pytest.raises(PreloadMissing) as missing:
        command_env(True, {})
    assert "apt install mptcpize" in str(missing.value) and "--no-force" in str(missing.value)


@pytest.mark.parametrize(("script", "code"), [("exit 3", 3), ("kill -TERM $$", 143), ("kill -INT $$", 130)])
def test_the_exit_code_is_cmds_and_a_signal_is_128_plus_n(script: str, code: int) -> None:
    command = Command(["sh", "-c", script], os.environ, own_session=True)
    command.start()
    assert asyncio.run(command.wait()) == code


@pytest.mark.parametrize("step", ["check", "start"])     # checked before the watch starts; exec says the same
def test_a_command_not_found_or_not_executable(tmp_path, step: str) -> None:
    with pytest.raises(CommandUnavailable) as missing:
        getattr(Command(["no-such-command-mptop"], os.environ), step)()
    assert (missing.value.code, str(missing.value)) == (127, "no-such-command-mptop: command not found")
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(CommandUnavailable) as denied:
        getattr(Command([str(plain)], os.environ), step)()
    assert denied.value.code == 126 and str(denied.value).endswith("permission denied")
    Command(["sh"], os.environ).check()                             # on PATH: fine


def test_a_connection_a_probe_saw_is_listed_once_by_the_next_poll(
        holders: tuple[subprocess.Popen[str], list[int]]) -> None:
    """A download shorter than a poll: the path-manager event's probe saw it open; the poll's dump
    no longer has it, and lists it once as the probe read it."""
    proc, inodes = holders
    tree = ProcessTree(root=proc.pid)
    tree.probe([conn(1, inodes[0]), conn(2, 999_999_999)])       # 2: someone else's
    assert [c.token for c in tree.select([])] == [1]
    assert tree.select([]) == []
    tree.probe([conn(1, 0)])                                        # closing: the same token, inode 0
    assert [(c.token, c.inode) for c in tree.select([conn(1, 0)])] == [(1, 0)]   # the dump's, not twice
