"""The demo's Textual app: the main screen plus keys that act on the lab for real."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from textual.app import App
from textual.binding import Binding

from mptop.demo.player import CELLULAR
from mptop.tui.app import MptopApp

if TYPE_CHECKING:
    from mptop.demo.player import ScenarioPlayer
    from mptop.demo.scenario import Scenario

INTRO_S = 6.0
WIDE = 100         # from this many columns the intro also says what the scenario does
FIRST = ("q", "question_mark")     # quit and help first: a 60-column footer still shows them
ON_THE_LAB = frozenset({"toggle_link", "toggle_backup", "restore", "endpoints"})   # wait for the lab


class DemoApp(MptopApp, inherit_bindings=False):
    """The main screen plus the demo's keys, which act on the lab for real."""

    # Quit, help, then the demo's keys, so that they are the ones a 60-80 column footer shows; pause
    # and units stay bound but leave the footer to them (`?` lists every key).
    BINDINGS = [
        *App.BINDINGS,
        *(b for b in MptopApp.BINDINGS if isinstance(b, Binding) and b.key in FIRST),
        Binding("w", "toggle_link('wlan0')", "Wi-Fi", tooltip="take the Wi-Fi link down or up"),
        Binding("c", "toggle_link('wwan0')", "Cellular", tooltip="take the cellular link down or up"),
        Binding("b", "toggle_backup", "Backup", tooltip="mark cellular as a backup path, or not"),
        Binding("r", "restore", "Restore", tooltip="both links up, scenario rates, the script resumes"),
        *(replace(b, show=False) if isinstance(b, Binding) and b.key in ("p", "u") else b
          for b in MptopApp.BINDINGS if not (isinstance(b, Binding) and b.key in FIRST)),
    ]
    HELP_ONLY_KEYS = frozenset({"p", "u"})
    FOOTER_FULL_WIDTH = 100         # below this the footer is compacted

    def __init__(self, scenario: Scenario, player: ScenarioPlayer | None = None, **kwargs: object) -> None:
        """``player`` None: the lab is still being built (the first frame comes before it); the keys
        that act on it stay greyed out until :meth:`lab_ready`."""
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.scenario = scenario
        self.player = player

    def lab_ready(self, player: ScenarioPlayer) -> None:
        self.player = player
        self.refresh_bindings()
        self.redraw()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ON_THE_LAB and self.player is None:
            return None                 # shown, greyed out: the lab is not up yet
        return super().check_action(action, parameters)

    def on_mount(self) -> None:
        super().on_mount()
        # The intro toast after the first frame (header, empty panels): a toast is widgets and CSS of
        # its own to set up first (bench/startup.py).
        self.call_after_refresh(self.intro)
        # One transfer: nothing to select, so its list takes no focus and the footer no "↑↓ Select".
        self.call_after_refresh(self.main.set_focus, None)

    def intro(self) -> None:
        """What the scenario does, as a toast.  Short, and small where the screen is: the first handover
        comes ~10 s in, the footer shows the keys, and the toast must stay clear of the Events panel."""
        scenario = self.scenario
        if self.size.width >= WIDE:
            self.notify(scenario.description, title=f"demo: {scenario.title}", timeout=INTRO_S)
        else:
            self.notify(scenario.title, title="demo", timeout=INTRO_S)

    def _status(self) -> list[tuple[str, str]]:
        # What a key did is in the event log ("you · …"); that the script waits is said here, not in a toast.
        if self.player is None:
            building = [] if self.finished else [("building the two-path lab…", "info")]
            return building + super()._status()
        paused = [] if self.player.scripted or self.finished else [("script paused · r resumes", "warn")]
        return paused + super()._status()

    async def action_toggle_link(self, iface: str) -> None:
        if self.player is not None:
            await self.player.toggle_link(iface)
            self.redraw()

    async def action_toggle_backup(self) -> None:
        if self.player is not None:
            await self.player.toggle_backup(CELLULAR)
            self.redraw()

    async def action_restore(self) -> None:
        if self.player is not None:
            await self.player.restore()
            self.redraw()
