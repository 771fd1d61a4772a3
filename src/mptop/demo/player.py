"""Plays a scenario's timed steps on a running lab, and the demo's keys (w, c, b, r).

Lab actions run `ip`/`tc` in the lab's namespaces (a few ms each); they go to a worker thread so the
event loop, and with it the display, never waits on them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mptop.demo.scenario import IFACES, Scenario, Step

if TYPE_CHECKING:          # the lab itself loads once the demo's first frame is drawn (mptop.demo.tui)
    from mptop.lab import Lab, LabConfig
    from mptop.lab.actions import EndpointConfig

WIFI, CELLULAR = IFACES
Note = Callable[[str, str], None]    # (event kind: "scenario" or "user_action", what was done)


def lab_config(scenario: Scenario) -> LabConfig:
    """The lab a scenario plays on: its rates and client endpoints."""
    from mptop.lab import LabConfig

    return LabConfig(rate_mbit=dict(scenario.rate_mbit), client_endpoints=scenario.client_endpoints)  # type: ignore[arg-type]


class ScenarioPlayer:
    """Remembers what it changed, so keys can toggle links and `restore` undoes everything."""

    def __init__(self, lab: Lab, scenario: Scenario, on_note: Note | None = None) -> None:
        self.lab = lab
        self.scenario = scenario
        self.on_note: Note = on_note or (lambda kind, note: None)
        self.link_up = {WIFI: True, CELLULAR: True}
        self.backup = {iface: iface in scenario.backup for iface in (WIFI, CELLULAR)}
        self.scripted = True
        self.endpoints: EndpointConfig | None = None     # the client's, as setup() found them
        self._lock = asyncio.Lock()

    def setup(self) -> None:
        """Apply the scenario's starting state (backup flags) before the download starts, and remember
        the client's endpoints and limits then: `r` puts them back whatever `e` changed."""
        for iface in self.scenario.backup:
            self.lab.set_backup(iface, True)
        self.endpoints = self.lab.endpoint_config("client")

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

    async def apply(self, step: Step, by_user: bool = False) -> None:
        async with self._lock:
            # Said before it is done: the cause is in the stream before the kernel events it causes.
            self.on_note("user_action" if by_user else "scenario", describe_step(step))
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

    # -- keys: manual control stops the script so it does not undo what the user did -------------
    async def toggle_link(self, iface: str) -> None:
        self.scripted = False
        await self.apply(Step(0, "link_up" if not self.link_up[iface] else "link_down", iface), by_user=True)

    async def toggle_backup(self, iface: str = CELLULAR) -> None:
        self.scripted = False
        await self.apply(Step(0, "clear_backup" if self.backup[iface] else "set_backup", iface), by_user=True)

    async def restore(self) -> None:
        """Both links up at the scenario's rates, the client's endpoints and limits as at the start,
        backup as the scenario set it; the script resumes."""
        self.on_note("user_action", "restore: both links up, endpoints and rates as at the start, script resumed")
        if self.endpoints is not None:
            async with self._lock:
                await asyncio.to_thread(self.lab.restore_endpoint_config, self.endpoints, "client")
        for iface in (WIFI, CELLULAR):
            if not self.link_up[iface]:
                await self.apply(Step(0, "link_up", iface), by_user=True)
            await asyncio.to_thread(self.lab.set_rate, iface, self.scenario.rate_mbit.get(iface))
            wanted = iface in self.scenario.backup
            if self.backup[iface] != wanted:
                await self.apply(Step(0, "set_backup" if wanted else "clear_backup", iface), by_user=True)
        self.scripted = True


def describe_step(step: Step) -> str:
    """``Wi-Fi: link down``, ``Cellular: rate set to 5 Mbit/s``."""
    rate = f" {step.mbit:g} Mbit/s" if step.mbit else ""
    return f"{_NAMES.get(step.iface, step.iface)}: {_VERBS[step.action]}{rate}"


_NAMES = {WIFI: "Wi-Fi", CELLULAR: "Cellular"}
_VERBS = {
    "link_down": "link down", "link_up": "link up", "set_rate": "rate set to", "set_backup": "marked backup",
    "clear_backup": "no longer backup", "delete_endpoint": "endpoint deleted", "add_endpoint": "endpoint added",
    "reset_subflows": "subflows reset",
}
