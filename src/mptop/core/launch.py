"""``mptop run``: the command it starts — its environment, its signals, its exit code — and the run
that watches its connections (:class:`RunSession`).

::

    run = RunSession(["curl", "-O", url], force=True, interval=1.0)
    run.start()            # PreloadMissing, MptcpDisabled, MptcpUnavailable, CommandUnavailable: nothing started
    summary = await run.run(sink)            # CMD starts; records until it has ended; Summary with exit_code


    env = command_env(force=True)            # PreloadMissing: mptcpize's library is not installed
    cmd = Command(["curl", "-O", url], env)  # own_session=True for the TUI (no terminal for CMD)
    cmd.start()                              # CommandUnavailable: not found (127), not executable (126)
    code = await cmd.wait()                  # its exit code; a signal N is 128 + N, as shells say it

``force`` puts mptcpize's library (:mod:`mptop.kernel.mptcpize`) first in ``LD_PRELOAD``, as
``mptcpize run`` does (it replaces the variable; we keep what was there after it), so every TCP
socket CMD and its children open is an MPTCP one.  Statically linked programs and ones that make
the socket() system call themselves (Go) are not affected: they use MPTCP only if they ask for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from mptop.core.lookout import CgroupLookout
from mptop.core.model import Event, Record, Sample, Sink, Summary
from mptop.core.proctree import ProcessTree, RunSampler, RunTally
from mptop.kernel.cgroups import CgroupConnections, RunCgroup
from mptop.kernel.descendants import become_subreaper
from mptop.kernel.mptcpize import PACKAGE, preload_library
from mptop.kernel.sockops import SubflowCloses

Stream = int | IO[Any] | None           # a Popen stdin/stdout/stderr: an fd, a file, PIPE/DEVNULL, None
Stdio = tuple[Stream, Stream, Stream]
NOT_FOUND, NOT_EXECUTABLE = 127, 126      # what shells return for these
LINGER_S = 3.0           # after CMD ended: polls until its connections have closed (final counts), at most this
LINGER_POLL_S = 0.1
STOP_GRACE_S = 2.0       # a CMD still running when mptop leaves gets SIGTERM, then SIGKILL after this


class PreloadMissing(Exception):
    def __str__(self) -> str:
        return (f"mptcpize's library is not installed (Debian/Ubuntu: apt install {PACKAGE}); "
                "--no-force watches a program that opens MPTCP sockets itself, e.g. curl --mptcp")


class MptcpDisabled(Exception):
    def __str__(self) -> str:
        return ("MPTCP is disabled here (net.mptcp.enabled = 0): every socket mptcpize's library makes "
                "would fail; `mptop doctor` says how to enable it")


class CommandUnavailable(Exception):
    """CMD could not be started; ``code`` is the exit status a shell would give (127, 126)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def command_env(force: bool, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    if force:
        library = preload_library()
        if library is None:
            raise PreloadMissing()
        env["LD_PRELOAD"] = " ".join(p for p in (library, env.get("LD_PRELOAD", "").strip()) if p)
    return env


def shell_status(returncode: int) -> int:
    """Popen's returncode as a shell says it: ended by signal N → 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


class Command:
    """CMD, started by :meth:`start`; ``own_session``: in a session of its own (no terminal), so the
    TUI keeps the keyboard and Ctrl-C reaches CMD only through :meth:`interrupt`."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], *, own_session: bool = False,
                 stdin: Stream = None, stdout: Stream = None, stderr: Stream = None) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.own_session = own_session
        self._streams = (stdin, stdout, stderr)
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.interrupts = 0

    @property
    def name(self) -> str:
        return os.path.basename(self.argv[0])

    def check(self) -> None:
        """CommandUnavailable now, before anything runs, if :meth:`start` could not exec CMD."""
        name = self.argv[0]
        path = name if "/" in name else shutil.which(name, path=self.env.get("PATH", os.defpath))
        if path is None or not os.path.exists(path):
            raise CommandUnavailable(f"{name}: command not found", NOT_FOUND)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise CommandUnavailable(f"{name}: permission denied", NOT_EXECUTABLE)

    def start(self, cgroup: RunCgroup | None = None) -> None:
        """``cgroup``: CMD moves itself into it before exec (its children inherit it)."""
        become_subreaper()            # what CMD's children orphan stays ours (proctree)
        stdin, stdout, stderr = self._streams
        try:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=stdin, stdout=stdout, stderr=stderr,
                                         start_new_session=self.own_session,
                                         preexec_fn=cgroup.join if cgroup is not None else None)
        except FileNotFoundError:
            raise CommandUnavailable(f"{self.argv[0]}: command not found", NOT_FOUND) from None
        except PermissionError:
            raise CommandUnavailable(f"{self.argv[0]}: permission denied", NOT_EXECUTABLE) from None
        except OSError as e:
            raise CommandUnavailable(f"{self.argv[0]}: {e.strerror or e}", NOT_EXECUTABLE) from None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.returncode is None and self.proc.poll() is None

    async def wait(self) -> int:
        """Until CMD has ended (a pidfd readable in the loop, no thread); its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            loop = asyncio.get_running_loop()
            ended = loop.create_future()
            try:
                fd = os.pidfd_open(self.proc.pid)
            except OSError:         # Linux < 5.3: a thread waits instead
                await loop.run_in_executor(None, self.proc.wait)
            else:
                def readable() -> None:
                    if not ended.done():
                        ended.set_result(None)
                loop.add_reader(fd, readable)
                try:
                    await ended
                finally:
                    loop.remove_reader(fd)
                    os.close(fd)
        self.returncode = shell_status(self.proc.wait())
        return self.returncode

    def send(self, sig: int) -> None:
        """Signal CMD (its whole process group when it has a session of its own, as a terminal would)."""
        if not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            if self.own_session:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)

    def interrupt(self) -> None:
        """Ctrl-C for CMD: SIGINT the first time, SIGTERM the second, SIGKILL after that."""
        self.interrupts += 1
        self.send({1: signal.SIGINT, 2: signal.SIGTERM}.get(self.interrupts, signal.SIGKILL))

    def kill(self) -> None:
        """End CMD now and collect it."""
        self.send(signal.SIGKILL)
        if self.proc is not None:
            self.returncode = shell_status(self.proc.wait())

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """End CMD if it still runs (the app is closing): SIGTERM, SIGKILL after ``grace_s``."""
        if not self.running or self.proc is None:
            return
        self.send(signal.SIGTERM)
        try:
            self.returncode = shell_status(self.proc.wait(grace_s))
        except subprocess.TimeoutExpired:
            self.kill()


def terminal_delivers(sig: int) -> bool:
    """Whether the terminal already sent ``sig`` (SIGINT from Ctrl-C, SIGHUP…) to CMD too: this
    process group is the foreground one of a controlling terminal, and CMD is in it."""
    if sig not in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        return False
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError as e:
        return e.errno == errno.EINTR
    finally:
        os.close(fd)


@dataclass
class RunSession:
    """CMD and the watch of its process tree's connections; see the module docstring.  ``stdio``:
    CMD's stdin, stdout, stderr (None: inherited)."""

    argv: Sequence[str]
    force: bool = True
    interval: float = 1.0
    labels: Mapping[str, str] = field(default_factory=dict)
    own_session: bool = False
    stdio: Stdio = (None, None, None)
    tally: RunTally = field(default_factory=RunTally)
    on_start: Callable[[Command], None] | None = None   # called once CMD runs (the TUI reads its output)
    group: RunCgroup | None = field(default=None, init=False)   # CMD's cgroup, made by start()

    def start(self) -> None:
        """Everything that can fail before CMD runs: the library, the watch (a dump, the path-manager
        subscription), MPTCP enabled, CMD there to run.  CMD itself starts in :meth:`run`, once the
        path-manager events are read: nothing of it is missed (a download of a few milliseconds is
        over before a late reader sees its events), nothing of it is taken for what was there before."""
        env = command_env(self.force)
        self.tree = ProcessTree()
        self.sampler = RunSampler(self.tree, self.interval, self.labels)
        self.sampler.open()
        self.sampler.start_events()
        self._host = self.sampler.host_info()
        if self.force and self._host.enabled is False:    # socket(IPPROTO_MPTCP) fails: CMD could not connect
            self.sampler.close()
            raise MptcpDisabled()
        self._first = self.sampler.poll()
        self.command = Command(self.argv, env, own_session=self.own_session, stdin=self.stdio[0],
                               stdout=self.stdio[1], stderr=self.stdio[2])
        try:
            self.command.check()
        except CommandUnavailable:
            self.sampler.close()
            raise
        self._linger = float("inf")       # set when CMD has ended: the last poll's deadline
        self.group = RunCgroup.create()   # None (no cgroup v2 writable here): the tree's fds decide
        if self.group is not None:
            try:
                self.tree.group = CgroupConnections(self.group.id)    # in this thread's netns
            except OSError:
                self.close()
            else:
                with contextlib.suppress(OSError):      # no PM events (not root): polls and probes only
                    self.tree.lookout = CgroupLookout(self.group.id)
                with contextlib.suppress(OSError):      # no BPF here: the destroy broadcasts alone
                    self.tree.closes = SubflowCloses(self.group.path)

    def close(self) -> None:
        """Remove CMD's cgroup (what still runs in it goes back to ours); again: nothing."""
        if self.tree.lookout is not None:
            self.tree.lookout.close()
            self.tree.lookout = None
        if self.tree.closes is not None:
            self.tree.closes.close()
            self.tree.closes = None
        if self.tree.group is not None:
            self.tree.group.close()
        if self.group is not None:
            self.group.remove()
            self.group = None

    async def run(self, sink: Sink) -> Summary:
        """Records until CMD has ended and its connections have closed (:data:`LINGER_S` at most),
        then the Summary (also fed to ``sink``).  One stream of polls throughout: the destroy
        broadcasts that carry a connection's final counts arrive on its subscription."""
        feed = _tee(sink, self.tally)
        feed(self._host)
        self._emit(feed, self._first)
        ended: asyncio.Future[int] | None = None
        waker: asyncio.Future[None] | None = None
        try:
            async with contextlib.aclosing(self.sampler.run()) as stream:
                async for result in stream:
                    self._emit(feed, result)
                    if ended is None:     # the path-manager events are read from now on: CMD starts
                        self.command.start(self.group)
                        if self.group is not None and not self.group.holds(self.command.pid):
                            self.tree.group = None        # it could not move in: the fds decide
                        self.tree.keep = {self.command.pid}
                        if self.on_start is not None:
                            self.on_start(self.command)
                        ended = asyncio.ensure_future(self.command.wait())
                        waker = asyncio.ensure_future(self._wake_when_ended(ended))
                    elif ended.done() and (not self.tally.open_connections() or time.monotonic() >= self._linger):
                        break
        except BaseException:
            self.command.kill()       # the watch failed (or was cancelled): CMD is not left running
            self.close()
            raise
        finally:
            for task in (waker, ended):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        try:
            code = await self.command.wait()
        finally:
            self.close()
        summary = self.tally.summary(list(self.argv), code, self.sampler.now())
        sink(summary)
        return summary

    async def _wake_when_ended(self, ended: asyncio.Future[int]) -> None:
        """Once CMD has ended, a poll every LINGER_POLL_S until :meth:`run` stops."""
        await asyncio.shield(ended)
        self._linger = time.monotonic() + LINGER_S
        while True:
            self.sampler.wake()
            await asyncio.sleep(LINGER_POLL_S)

    def summary(self) -> Summary:
        """The summary as things stand (the run was cut short, e.g. the TUI quit with CMD killed)."""
        code = self.command.returncode
        return self.tally.summary(list(self.argv), code, self.sampler.now())

    @staticmethod
    def _emit(feed: Sink, result: tuple[Sample, list[Event]]) -> None:
        sample, events = result
        for event in events:
            feed(event)
        feed(sample)


def _tee(sink: Sink, tally: RunTally) -> Sink:
    def both(record: Record) -> None:
        tally(record)
        sink(record)
    return both
