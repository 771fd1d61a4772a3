"""The mptop TUI: fed records by a source, it draws what :mod:`mptop.core` produces.

Three ways in, all ending in :meth:`MptopApp.feed`:

* ``MptopApp(source)``: any async iterable of records (a sampler's ``records()``, a ReplaySource);
* ``MptopApp(runner=lambda feed: session.run(feed))``: a coroutine that pushes records to a sink;
* ``app.feed(record)`` from anywhere, any thread.

Data flow: ``feed(record)`` (thread-safe) posts :class:`RecordArrived`; every record is ingested
into :class:`ViewState` in order, then a :class:`Redraw` is posted.  Redraws replace each other in
the queue (``Message.can_replace``), so a slow frame never builds a backlog: however many records
arrived meanwhile, the view renders once, the latest state.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen

from mptop import config
from mptop.tui import format as fmt
from mptop.tui.screen import MainScreen
from mptop.tui.sources import Pausable
from mptop.tui.terminal import TerminalGuard

if TYPE_CHECKING:
    from mptop.core.model import Record, Sink
    from mptop.tui.screen import Mode
    from mptop.tui.state import ViewState
    from mptop.tui.toplist import TopList

Runner = Callable[["Sink"], Awaitable[object]]
FIRST_FRAME_SWITCH_S = 0.0005     # the GIL's switch interval until the first frame is out (MptopApp.on_load)


class RecordArrived(Message):
    def __init__(self, record: Record) -> None:
        super().__init__()
        self.record = record


class Redraw(Message):
    """Render the latest state; a queued Redraw is superseded by a newer one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Redraw)


class SourceFinished(Message):
    def __init__(self, error: str | None = None) -> None:
        super().__init__()
        self.error = error


class MptopApp(App[int]):
    CSS_PATH = Path(__file__).with_name("mptop.tcss")     # absolute: subclasses live elsewhere
    TITLE = "mptop"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (80, "-normal")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (24, "-normal"), (30, "-tall")]
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="quit mptop"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),     # not Textual's "press ctrl+q"
        Binding("question_mark", "help", "Help", key_display="?", tooltip="this help"),   # 2nd: 60 columns show it
        Binding("p", "pause", "Pause", tooltip="pause or resume the display; data keeps being collected"),
        Binding("space", "replay_pause", "Play/pause", tooltip="pause or resume the replay"),
        Binding("u", "units", "Bits/bytes", tooltip="rates in bits or in bytes per second"),
        Binding("up", "select(-1)", "Select", key_display="↑↓", show=False),
        Binding("down", "select(1)", "Select", show=False),
        Binding("e", "endpoints", "Endpoints", tooltip="MPTCP endpoints and limits: add, delete, backup, new subflow"),
    ]

    HELP_ONLY_KEYS: frozenset[str] = frozenset()     # bound, left out of the footer, listed by `?`

    def __init__(
        self,
        source: AsyncIterable[Record] | None = None,
        *,
        runner: Runner | None = None,
        mode: Mode = "transfers",
        clock: bool = True,
        finished_text: str = "finished",
    ) -> None:
        super().__init__()
        self.source = source
        self.runner = runner
        self.mode: Mode = mode
        self.clock = clock
        self.finished_text = finished_text
        self._state: ViewState | None = None       # made after the first frame (see :attr:`state`)
        self.frozen: ViewState | None = None       # what the display shows while paused
        self.units: fmt.Units = "bits"
        self.finished = False
        self.error: str | None = None               # why the source stopped, if it failed
        self.frames = 0                             # redraws applied (tests count them)
        self._switch_interval = sys.getswitchinterval()     # restored once the first frame is out (on_load)
        self.main: MainScreen
        if mode == "watch":      # its screen, query and filter: not loaded by the other TUIs (bench/startup.py)
            from mptop.tui.watch_screen import WatchScreen

            self.main = WatchScreen(clock)
        else:
            self.main = MainScreen(mode, clock)

    @property
    def state(self) -> ViewState:
        """The view model, made at first use: once the first frame is drawn (:meth:`on_mount`), as the
        view models and the records they read are not needed for a header and empty panels."""
        if self._state is None:
            from mptop.tui.state import ViewState
            from mptop.tui.watch_state import WatchState

            self._state = WatchState() if self.mode == "watch" else ViewState()
        return self._state

    @state.setter
    def state(self, state: ViewState) -> None:
        self._state = state

    # -- feeding -------------------------------------------------------------------------------
    def feed(self, record: Record) -> None:
        """Hand the app one record (from any thread)."""
        self.post_message(RecordArrived(record))

    def on_record_arrived(self, message: RecordArrived) -> None:
        self.state.ingest(message.record)
        self.post_message(Redraw())

    def on_redraw(self, _: Redraw) -> None:
        self.redraw(force=False)

    @work(exclusive=True, group="source")
    async def _consume(self) -> None:
        try:
            if self.source is not None:
                async for record in self.source:
                    self.feed(record)
            if self.runner is not None:
                await self.runner(self.feed)
        except Exception as exc:      # a failing source must not take the display down with it
            self.post_message(SourceFinished(f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(SourceFinished())

    def on_source_finished(self, message: SourceFinished) -> None:
        self.finished = True
        self.error = message.error
        self.refresh_bindings()
        if message.error:
            self.notify(message.error, title="source stopped", severity="error", timeout=30)
        else:
            self.notify(self.finished_text, timeout=8)
        self.redraw()

    # -- layout and drawing ----------------------------------------------------------------------
    def get_default_screen(self) -> MainScreen:
        return self.main

    def on_load(self) -> None:
        # Textual writes each frame from a thread of its own.  Right after the first frame the main
        # thread goes on settling the layout for ~5 ms, and the writer would wait that long (Python's
        # 5 ms switch interval) for the GIL before the frame reaches the terminal: until it is out, the
        # main thread lets go of the GIL sooner (bench/startup.py; restored in on_mount).
        sys.setswitchinterval(min(self._switch_interval, FIRST_FRAME_SWITCH_S))

    def on_mount(self) -> None:
        self.call_after_refresh(sys.setswitchinterval, self._switch_interval)    # the first frame is out
        self.theme_changed_signal.subscribe(self, lambda _: self.redraw())
        # No redraw here: the first frame is the header and empty panels; the screen redraws after it
        # (MainScreen._first_draw), which makes the view model (bench/startup.py).
        if self.source is not None or self.runner is not None:
            # After the first frame (header, empty panels): the slow start of a source — the demo's
            # lab, the first kernel poll, a name lookup — must not keep the screen blank.
            self.call_after_refresh(self._consume)
        self.call_after_refresh(self.fit_terminal)

    def on_resize(self, _: events.Resize) -> None:
        self.call_after_refresh(self.fit_terminal)

    def fit_terminal(self) -> None:
        """Below 60×20 one line says so over every screen; it goes once the terminal is big enough."""
        # This screen and the help's are loaded when they may show: after the first frame (bench/startup.py).
        from mptop.tui.too_small import TooSmallScreen, too_small

        small = too_small(self.size)
        if isinstance(self.screen, TooSmallScreen):
            if small:
                self.screen.show(self.size)
            else:
                self.pop_screen()
        elif small and self.is_running and not self._exit:
            self.clear_notifications()
            self.push_screen(TooSmallScreen())

    def _status(self) -> list[tuple[str, str]]:
        pills: list[tuple[str, str]] = []
        if self.frozen is not None:
            pills.append(("display paused", "warn"))
        if self.error is not None:
            return pills + [(fmt.clip(f"stopped: {self.error}", 48), "bad")]
        if isinstance(self.source, Pausable):
            speed = getattr(self.source, "speed", 1.0)
            if self.finished:
                pills.append((f"■ {self.finished_text}", "info"))
            elif self.source.paused:
                pills.append(("replay paused", "warn"))
            else:
                pills.append((f"▶ replay {speed:g}×", "good"))
        elif self.finished:
            pills.append((self.finished_text, "info"))
        return pills

    def redraw(self, force: bool = True) -> None:
        """Draw the latest state; while paused only the header moves, unless ``force`` (a key)."""
        if not self.main.is_mounted or self._exit:
            return                      # starting up or shutting down: nothing to draw on
        try:
            self.main.draw_header(self.state, self._status())
            if force or self.frozen is None:
                self.main.draw(self.frozen or self.state, self.units)
        except NoMatches:               # the screen's widgets are being torn down (app closing)
            return
        self.frames += 1

    def on_top_list_highlighted(self, _: TopList.Highlighted) -> None:
        if self.main.is_mounted:
            self.main.draw_subflows(self.frozen or self.state, self.units)

    # -- actions -------------------------------------------------------------------------------
    def action_pause(self) -> None:
        """Freeze the display; records keep being ingested and show on resume."""
        self.frozen = None if self.frozen is not None else copy.deepcopy(self.state)
        self.redraw()

    def action_units(self) -> None:
        self.units = "bytes" if self.units == "bits" else "bits"
        self.redraw()

    def action_replay_pause(self) -> None:
        if isinstance(self.source, Pausable) and not self.finished:
            self.source.toggle_pause()
            self.redraw()

    def action_select(self, delta: int) -> None:
        self.main.top.move(delta)

    def action_endpoints(self) -> None:
        # Imported on the first `e`: the path manager's client and its forms are a fifth of what the
        # first frame would otherwise wait for (bench/startup.py).
        from mptop.tui.endpoints import EndpointsScreen
        from mptop.tui.too_small import TooSmallScreen

        if not self.replaying and not isinstance(self.screen, EndpointsScreen | TooSmallScreen):
            self.push_screen(EndpointsScreen())

    def action_help(self) -> None:
        from mptop.tui.help import HelpScreen
        from mptop.tui.too_small import TooSmallScreen

        if not isinstance(self.screen, HelpScreen | TooSmallScreen):
            self.clear_notifications()          # nothing on top of the help
            self.push_screen(HelpScreen(self.key_help()))

    @property
    def replaying(self) -> bool:
        """A recording plays: nothing on screen is this host, so nothing may change it (no `e`)."""
        return isinstance(self.source, Pausable)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "endpoints":
            return not self.replaying
        if action == "replay_pause":   # hidden without a pausable source, greyed out once it ended
            return None if self.finished and isinstance(self.source, Pausable) else isinstance(self.source, Pausable)
        return True

    def key_help(self) -> list[tuple[str, str]]:
        """(key, description) for the help screen: the footer's keys (demo keys included), then more."""
        rows: list[tuple[str, str]] = []
        for active in self.active_bindings.values():
            binding = active.binding
            shown = binding.show or binding.key in self.HELP_ONLY_KEYS
            if shown and binding.description and active.enabled:
                row = (binding.key_display or self.get_key_display(binding), binding.tooltip or binding.description)
                if row not in rows:
                    rows.append(row)
        rows += [
            ("ctrl+p", "command palette: themes, units, pause, select a transfer"),
            ("mouse", "click a transfer to select it; the wheel scrolls a panel"),
        ]
        return rows

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        paused = self.frozen is not None
        yield SystemCommand("Resume display" if paused else "Pause display",
                            "freeze the panels; data keeps being collected", self.action_pause)
        other = "bytes" if self.units == "bits" else "bits"
        yield SystemCommand(f"Show rates in {other}", "toggle bit/s and B/s (key u)", self.action_units)
        yield SystemCommand("Keys", "list every key (key ?)", self.action_help)
        if isinstance(self.source, Pausable) and not self.finished:
            yield SystemCommand("Pause/resume replay", "key space", self.action_replay_pause)
        top = self.main.top
        for index, key in enumerate(top.keys):
            transfer = self.state.transfer(int(key[1:])) if key.startswith("t") else None
            if transfer is not None:
                yield SystemCommand(f"Select #{transfer.id} {fmt.short_url(transfer.url, 50)}",
                                    "show its subflows", lambda i=index: setattr(top, "highlighted", i))


def run_app(app: App[Any], *, theme: str | None = None, headless: bool = False) -> int:
    """Run a TUI app to its end; its exit status: non-zero when the display crashed (Textual has
    printed the traceback by then, and sets return_code 1), 128 + N when signal N (a hangup) ended it.
    It starts in ``theme`` (else Textual's default); a theme chosen meanwhile (ctrl+p) is kept for next time."""
    if theme:
        app.theme = theme
    start = app.theme
    with TerminalGuard(app) as guard:
        app.run(headless=headless)
    if app.theme != start:
        config.save({"theme": app.theme})
    code = app.return_code or 0
    if code and guard.ended_by is None:
        print(f"mptop: the display stopped on an error (exit status {code})", file=sys.stderr)
    return code
