"""The demo's Textual app: the main screen plus keys that act on the lab for real."""

from __future__ import annotations

from dataclasses import replace

from textual.app import App
from textual.binding import Binding

from mptop.demo.player import CELLULAR, ScenarioPlayer
from mptop.tui.app import MptopApp

INTRO_S = 6.0
WIDE = 100         # from this many columns the intro also says what the scenario does
FIRST = ("q", "question_mark")     # quit and help first: a 60-column footer still shows them


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

    def __init__(self, player: ScenarioPlayer, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.player = player

    def on_mount(self) -> None:
        super().on_mount()
        scenario = self.player.scenario
        # Short, and small where the screen is: the first handover comes ~10 s in, the footer shows the
        # keys, and the toast must stay clear of the Events panel.
        if self.size.width >= WIDE:
            self.notify(scenario.description, title=f"demo: {scenario.title}", timeout=INTRO_S)
        else:
            self.notify(scenario.title, title="demo", timeout=INTRO_S)
        # One transfer: nothing to select, so its list takes no focus and the footer no "↑↓ Select".
        self.call_after_refresh(self.main.set_focus, None)

    def _status(self) -> list[tuple[str, str]]:
        # What a key did is in the event log ("you · …"); that the script waits is said here, not in a toast.
        paused = [] if self.player.scripted or self.finished else [("script paused · r resumes", "warn")]
        return paused + super()._status()

    async def action_toggle_link(self, iface: str) -> None:
        await self.player.toggle_link(iface)
        self.redraw()

    async def action_toggle_backup(self) -> None:
        await self.player.toggle_backup(CELLULAR)
        self.redraw()

    async def action_restore(self) -> None:
        await self.player.restore()
        self.redraw()
