"""The demo's Textual app: the main screen plus keys that act on the lab for real."""

from __future__ import annotations

from dataclasses import replace

from textual.app import App
from textual.binding import Binding

from mptop.demo.player import CELLULAR, WIFI, ScenarioPlayer
from mptop.tui.app import MptopApp


class DemoApp(MptopApp, inherit_bindings=False):
    """The main screen plus the demo's keys, which act on the lab for real."""

    # The demo's keys first, so that they are the ones an 80-column footer shows; pause and units
    # stay bound but leave the footer to them (`?` lists every key).
    BINDINGS = [
        *App.BINDINGS,
        Binding("w", "toggle_link('wlan0')", "Wi-Fi", tooltip="take the Wi-Fi link down or up"),
        Binding("c", "toggle_link('wwan0')", "Cellular", tooltip="take the cellular link down or up"),
        Binding("b", "toggle_backup", "Backup", tooltip="mark cellular as a backup path, or not"),
        Binding("r", "restore", "Restore", tooltip="both links up, scenario rates, the script resumes"),
        *(replace(b, show=False) if isinstance(b, Binding) and b.key in ("p", "u") else b
          for b in MptopApp.BINDINGS),
    ]
    HELP_ONLY_KEYS = frozenset({"p", "u"})
    FOOTER_FULL_WIDTH = 100         # below this the footer is compacted

    def __init__(self, player: ScenarioPlayer, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.player = player

    def on_mount(self) -> None:
        super().on_mount()
        scenario = self.player.scenario
        self.notify(f"{scenario.description}\nKeys: w Wi-Fi, c cellular, b backup, r restore.",
                    title=f"demo: {scenario.title}", timeout=12)

    async def action_toggle_link(self, iface: str) -> None:
        await self.player.toggle_link(iface)
        state = "up" if self.player.link_up[iface] else "down"
        self.notify(f"{'Wi-Fi' if iface == WIFI else 'Cellular'} link {state} (script paused; r resumes it)")

    async def action_toggle_backup(self) -> None:
        await self.player.toggle_backup(CELLULAR)
        self.notify(f"Cellular {'is now a backup path' if self.player.backup[CELLULAR] else 'is a regular path'}")

    async def action_restore(self) -> None:
        await self.player.restore()
        self.notify("restored: both links up, scenario resumed")
