"""`mptop run` in the TUI: the watch screen over CMD's connections only, plus a panel with CMD's output.

CMD runs in a session of its own with no terminal (stdin /dev/null); its stdout and stderr come
through a pipe into the Output panel (or go to ``--output-log FILE``, which the panel then names).
``q`` / ``ctrl+c`` while CMD runs is Ctrl-C for CMD (SIGINT to its process group; again: SIGTERM, then
SIGKILL); once CMD has ended, they quit.
"""

from __future__ import annotations

import asyncio
import os

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Footer, Log

from mptop.core.launch import Command, RunSession
from mptop.core.model import Sink, Summary
from mptop.core.safe_text import escape_controls
from mptop.tui.app import MptopApp
from mptop.tui.state import ViewState
from mptop.tui.style import muted
from mptop.tui.watch_screen import WatchScreen

OUTPUT_LINES = 2000        # kept in the Output panel
READ_SIZE = 1 << 16


class RunScreen(WatchScreen):
    """The watch screen with an Output panel above the footer: CMD's last line below 30 rows, up to
    eight lines on taller screens."""

    DEFAULT_CSS = """
    RunScreen #output { height: 3; overflow-x: hidden; scrollbar-size-vertical: 1; padding: 0 1;
                        border: round $primary 50%; border-title-color: $text-primary;
                        border-title-style: bold; border-subtitle-color: $text-muted; }
    RunScreen.-tall #output { height: 1fr; min-height: 4; max-height: 10; }
    RunScreen.-short #output { border: none; border-top: round $primary 50%; height: 2; }
    """

    def __init__(self, command: str, clock: bool = True) -> None:
        super().__init__(clock)
        self.command = command

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, Footer):
                yield Log(max_lines=OUTPUT_LINES, id="output")
            yield widget

    def on_mount(self) -> None:
        log = self.query_one("#output", Log)
        log.border_title = f"Output of {self.command}"
        attach = getattr(self.app, "attach_output", None)
        if attach is not None:
            attach(log)

    def _empty_text(self, state: ViewState, total: int) -> Text:
        if state.sample is not None and not total:
            return Text(f"No MPTCP connection of {self.command} yet", muted(self.app))
        return super()._empty_text(state, total)


class RunApp(MptopApp):
    """See the module docstring; ``summary`` is set once CMD has ended and its connections closed."""

    def __init__(self, session: RunSession, output_log: str | None = None) -> None:
        self.session = session
        self.command = escape_controls(session.command.name)
        super().__init__(runner=self._run, mode="watch", finished_text=f"{self.command} is running")
        self.main = RunScreen(self.command, self.clock)
        self.output_log = output_log
        self.summary: Summary | None = None
        self._partial = b""
        self._output_panel: Log | None = None
        self._reading = False
        session.on_start = self._command_started

    async def _run(self, feed: Sink) -> None:
        self.summary = await self.session.run(feed)
        self.finished_text = f"{self.command} exited with code {self.summary.exit_code} — q to quit"

    def attach_output(self, log: Log) -> None:
        """From the screen, once its Output panel exists: CMD's output flows into it once CMD runs."""
        self._output_panel = log
        if self.output_log is not None:
            log.border_subtitle = f"to {escape_controls(self.output_log)}"
            log.write_line(f"{self.command}'s output goes to {escape_controls(self.output_log)}")
        self._follow_output()

    def _command_started(self, _: Command) -> None:
        self._follow_output()

    def _follow_output(self) -> None:
        proc = self.session.command.proc
        if self._output_panel is not None and self.output_log is None and proc is not None and proc.stdout is not None \
                and not self._reading:
            self._reading = True
            asyncio.get_running_loop().add_reader(proc.stdout.fileno(), self._read_output)

    def _read_output(self) -> None:
        proc = self.session.command.proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(fd)
            data, self._partial = self._partial + b"\n", b""
            if data == b"\n":
                return
        *lines, self._partial = (self._partial + data).replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        if lines:
            text = [escape_controls(line.decode("utf-8", "replace")) for line in lines if line.strip()]
            log = self.main.query_one("#output", Log)
            follow = log.scroll_y >= log.max_scroll_y - 1       # not scrolled back by the user
            log.write_lines(text, scroll_end=False)
            if follow:          # once the new size is laid out: the last line, not the one before
                log.call_after_refresh(log.scroll_end, animate=False, x_axis=False)

    def _status(self) -> list[tuple[str, str]]:
        if not self.finished and self.session.command.interrupts:
            return [(f"Ctrl-C sent to {self.command}", "warn")] + super()._status()
        return super()._status()

    def action_quit(self) -> None:      # type: ignore[override]
        command = self.session.command
        if command.running and not self.finished:
            command.interrupt()
            again = {1: "SIGTERM", 2: "SIGKILL"}.get(command.interrupts, "SIGKILL")
            self.notify(f"Ctrl-C sent to {self.command}; q again sends {again}", timeout=5)
            self.redraw()
            return
        self.exit()
