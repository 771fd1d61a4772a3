"""The TUI runs: `mptop URL…` (downloads) and `mptop demo` (the lab with its keys)."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from dataclasses import replace

from textual.app import App
from textual.binding import Binding

from mptop.commands._get_run import fan_out, open_run, report_failures
from mptop.core.model import Summary, TransferSummary
from mptop.core.session import Session, Sink
from mptop.demo.player import CELLULAR, WIFI, ScenarioPlayer
from mptop.tui.app import MptopApp


def run_downloads(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        opened = open_run(args, stack)
        if isinstance(opened, int):
            return opened
        record, session = opened
        done: list[Summary] = []

        async def runner(feed: Sink) -> None:
            done.append(await session.run(fan_out(feed, record)))

        app = MptopApp(runner=runner, finished_text="all transfers finished — q to quit")
        app.units = args.unit
        app.run()
        return report_failures(with_resume_hint(done[0] if done else interrupted(session)))


def interrupted(session: Session) -> Summary:
    """What to report when the app ended before the run could: each transfer as it stands."""
    transfers = [TransferSummary(id=t.id, url=t.url, file=t.file, bytes=t.bytes_done, sha256=t.sha256,
                                 status="connecting", reason=None, ok=t.state == "done", error=t.error or "stopped")
                 for t in session.transfers]
    return Summary(duration_s=0.0, transfers=transfers)


def with_resume_hint(summary: Summary) -> Summary:
    """A transfer the user's quit stopped says how to finish it (its .part stays for resume)."""
    summary.transfers = [replace(t, error="stopped before the end (run the same command to resume)")
                         if t.error == "stopped" else t for t in summary.transfers]
    return summary


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
        *(replace(b, show=False) if isinstance(b, Binding) and b.key in ("p", "u") else b for b in MptopApp.BINDINGS),
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


def run_demo_tui(args: argparse.Namespace, session: Session, player: ScenarioPlayer, record: Sink | None) -> int:
    from mptop.demo.run import exit_code, play

    done: list[Summary] = []

    async def runner(feed: Sink) -> None:
        done.append(await play(session, player, fan_out(feed, record), args.duration))

    app = DemoApp(player, runner=runner, finished_text="demo finished — q to quit")
    app.units = args.unit
    app.run()
    if app.return_code not in (None, 0):
        print(f"mptop demo: the display stopped ({app.return_code})", file=sys.stderr)
    return exit_code(done[0] if done else None)
