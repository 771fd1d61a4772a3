"""mptop in a real terminal: a detached tmux session of a chosen size, its screen read with capture-pane."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil
import pytest

MPTOP = [sys.executable, "-m", "mptop"]
LIFETIME_S = 300          # the longest any session lives, whatever happens to the test


class Tmux:
    def __init__(self, name: str) -> None:
        self.name = name

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", self.name)   # -J: wrapped lines joined

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", self.name, "-x", str(width), "-y", str(height))

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)

    def pane_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", self.name, "#{pane_pid}").strip())

    def mptop(self) -> psutil.Process:
        """The mptop process of the pane (the pane's command itself, or its child)."""
        top = psutil.Process(self.pane_pid())
        for proc in [top, *top.children(recursive=True)]:
            if "mptop" in proc.cmdline()[1:3]:
                return proc
        raise AssertionError(f"no mptop process under the pane: {top.cmdline()}")

    def wait_for(self, condition: Callable[[str], bool], timeout: float = 60.0) -> str:
        """The screen once ``condition(screen)`` holds (bounded: the machine is shared)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            assert time.monotonic() < deadline, f"screen never matched:\n{screen}"
            time.sleep(0.1)


@contextmanager
def session(argv: list[str], width: int = 100, height: int = 30, wrap: str = "",
            env: dict[str, str] | None = None) -> Iterator[Tmux]:
    """``argv`` (prefixed by the shell words ``wrap``, e.g. ``setsid -w``) in a new detached session."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed (apt-get install tmux)")
    term = Tmux(f"mptop-test-{uuid.uuid4().hex[:8]}")
    # Bounded: a test killed before its `finally` (a CI timeout) must not leave mptop running in tmux.
    command = " ".join(["timeout", "-k", "5", str(LIFETIME_S), wrap, *(shlex.quote(a) for a in argv)]).strip()
    command = " ".join(command.split())
    environment = {**os.environ, "TERM": "xterm-256color", **(env or {})}
    subprocess.run(["tmux", "new-session", "-d", "-s", term.name, "-x", str(width), "-y", str(height),
                    command], check=True, env=environment)
    try:
        yield term
    finally:
        term.kill()
