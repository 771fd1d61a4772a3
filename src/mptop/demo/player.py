"""Plays a scenario's timed steps on a running lab, and the demo's keys (w, c, b, r).

Lab actions run `ip`/`tc` in the lab's namespaces (a few ms each); they go to a worker thread so the
event loop, and with it the display, never waits on them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from mptop.demo.scenario import IFACES, Scenario, Step
from mptop.lab import Lab

WIFI, CELLULAR = IFACES


class ScenarioPlayer:
    """Remembers what it changed, so keys can toggle links and `restore` undoes everything."""

    def __init__(self, lab: Lab, scenario: Scenario, on_note: Callable[[str], None] | None = None) -> None:
        self.lab = lab
        self.scenario = scenario
        self.on_note = on_note or (lambda note: None)
        self.link_up = {WIFI: True, CELLULAR: True}
        self.backup = {iface: iface in scenario.backup for iface in (WIFI, CELLULAR)}
        self.scripted = True
        self._lock = asyncio.Lock()

    def setup(self) -> None:
        """Apply the scenario's starting state (backup flags) before the download starts."""
        for iface in self.scenario.backup:
            self.lab.set_backup(iface, True)

    async def run(self, tick: float = 0.1) -> None:
        """Play the timed steps until cancelled; `scripted = False` pauses the script (keys take over)."""
        start = time.monotonic()
        played_until = 0.0
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic() - start
            if self.scripted:
                for _, step in self.scenario.steps_between(played_until, now):
                    await self.apply(step)
            played_until = now

    async def apply(self, step: Step) -> None:
        async with self._lock:
            await asyncio.to_thread(self._apply, step)

    def _apply(self, step: Step) -> None:
        lab, iface = self.lab, step.iface
        if step.action == "link_down":
            lab.link_down(iface)
            self.link_up[iface] = False
        elif step.action == "link_up":
            lab.link_up(iface)
            self.link_up[iface] = True
        elif step.action == "set_rate":
            lab.set_rate(iface, step.mbit)
        elif step.action in ("set_backup", "clear_backup"):
            self.backup[iface] = step.action == "set_backup"
            lab.set_backup(iface, self.backup[iface])
        elif step.action == "delete_endpoint":
            lab.delete_endpoint(iface)
        elif step.action == "add_endpoint":
            lab.add_endpoint(iface)
        elif step.action == "reset_subflows":
            lab.reset_subflows(iface)
        self.on_note(f"{_NAMES.get(iface, iface)}: {_VERBS[step.action]}"
                     + (f" {step.mbit:g} Mbit/s" if step.mbit else ""))

    # -- keys: manual control stops the script so it does not undo what the user did -------------
    async def toggle_link(self, iface: str) -> None:
        self.scripted = False
        await self.apply(Step(0, "link_up" if not self.link_up[iface] else "link_down", iface))

    async def toggle_backup(self, iface: str = CELLULAR) -> None:
        self.scripted = False
        await self.apply(Step(0, "clear_backup" if self.backup[iface] else "set_backup", iface))

    async def restore(self) -> None:
        """Both links up at the scenario's rates, backup as the scenario set it; the script resumes."""
        for iface in (WIFI, CELLULAR):
            if not self.link_up[iface]:
                await self.apply(Step(0, "link_up", iface))
            await asyncio.to_thread(self.lab.set_rate, iface, self.scenario.rate_mbit.get(iface))
            wanted = iface in self.scenario.backup
            if self.backup[iface] != wanted:
                await self.apply(Step(0, "set_backup" if wanted else "clear_backup", iface))
        self.scripted = True
        self.on_note("restored: both links up, scenario resumed")


_NAMES = {WIFI: "Wi-Fi", CELLULAR: "Cellular"}
_VERBS = {
    "link_down": "link down", "link_up": "link up", "set_rate": "rate set to", "set_backup": "marked backup",
    "clear_backup": "no longer backup", "delete_endpoint": "endpoint deleted", "add_endpoint": "endpoint added",
    "reset_subflows": "subflows reset",
}
