"""The app and its terminal: a hangup or SIGTERM ends the app, like btop and htop.

Textual on its own survives the terminal: once the tty is hung up (its tmux session killed, its
window closed) its input thread reads EOF in a loop (~90 % CPU) and nothing ends the app; a
SIGHUP/SIGTERM that raised SystemExit somewhere in the event loop could leave its shutdown waiting
for that thread forever.  :class:`TerminalGuard` around ``app.run()``:

* SIGHUP and SIGTERM ask the app to exit (status 128 + signal), from the event loop;
* a thread watches the terminal: when it is hung up (``tcgetattr`` fails with EIO — also when no
  SIGHUP comes, e.g. the app is not in the terminal's session) it does the same as SIGHUP;
* an app drawn through a driver named in TEXTUAL_DRIVER (a browser tab of `mptop serve`: stdin and
  stdout are pipes to the server) does the same when the server that started it is gone (its parent
  changes: also after a SIGKILL), so a tab's demo lab never outlives the server;
* once a hung-up app has ended, fds 0-2 point at /dev/null: nothing after it writes to a dead tty;
* an app that has not ended ``FORCE_S`` after it was asked to is ended with ``os._exit`` (the lab's
  namespaces die with the process: their holders have PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import termios
import threading
from types import FrameType, TracebackType
from typing import Any

from textual import constants
from textual.app import App

SIGNALS = (signal.SIGHUP, signal.SIGTERM)
POLL_S = 0.25          # how often the terminal is checked
FORCE_S = 10.0         # how long an app asked to exit may take before the process is ended


def terminal_fd() -> int | None:
    """The fd of the controlling terminal the app draws on (stdin, else stdout), if any."""
    for stream in (sys.__stdin__, sys.__stdout__):
        try:
            if stream is not None and os.isatty(stream.fileno()):
                return stream.fileno()
        except (ValueError, OSError):
            continue
    return None


def hung_up(fd: int) -> bool:
    try:
        termios.tcgetattr(fd)
    except termios.error:
        return True
    return False


class TerminalGuard:
    """``with TerminalGuard(app): app.run()`` — see the module docstring."""

    def __init__(self, app: App[Any], fd: int | None = None) -> None:
        self.app = app
        self.fd = terminal_fd() if fd is None else fd
        self.ended_by: int | None = None          # the signal that ended the app (SIGHUP for a hangup)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done = threading.Event()
        self._previous: dict[signal.Signals, Any] = {}

    # -- asking the app to end ---------------------------------------------------------------------
    def end(self, signum: int) -> None:
        """Ask the app to exit with 128 + ``signum`` (from any thread, or a signal handler)."""
        if self.ended_by is None:
            self.ended_by = signum
            threading.Thread(target=self._force_after, name="mptop-exit-deadline", daemon=True).start()
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._exit_app, 128 + signum)
        except RuntimeError:              # the loop closed meanwhile: the app has ended
            pass

    def _exit_app(self, code: int) -> None:
        self.app.exit(return_code=code)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()     # a handler runs in the loop's (main) thread
            except RuntimeError:
                raise SystemExit(128 + signum) from None     # the app is not running (yet/any more)
        self.end(signum)

    def _force_after(self) -> None:
        if not self._done.wait(FORCE_S):
            os._exit(128 + (self.ended_by or signal.SIGTERM))

    def _watch(self) -> None:
        fd, parent = self.fd, os.getppid()
        while not self._done.wait(POLL_S):
            if hung_up(fd) if fd is not None else os.getppid() != parent:
                self.end(signal.SIGHUP)
                return

    # -- context -----------------------------------------------------------------------------------
    def __enter__(self) -> TerminalGuard:
        self.app.call_later(self._remember_loop)
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}
        if self.fd is not None or constants.DRIVER is not None:
            threading.Thread(target=self._watch, name="mptop-terminal-watch", daemon=True).start()
        return self

    def _remember_loop(self) -> None:
        self._loop = asyncio.get_running_loop()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self.ended_by == signal.SIGHUP:
            self._detach()

    def _detach(self) -> None:
        """Point stdin/stdout/stderr at /dev/null: the terminal is gone."""
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
