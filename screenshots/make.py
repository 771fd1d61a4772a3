"""Re-make screenshots/*.svg from the real demo recordings in assets/ (see assets/record.py).

    python screenshots/make.py

sharing.svg: both paths carry the download · handover.svg: Wi-Fi is down, cellular carries it ·
fallback.svg: a server that does not speak MPTCP · compare.svg: plain TCP gave up at a Wi-Fi drop, MPTCP
went on.  The pictures are of the real TUI fed with the records.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mptop.core import moments
from mptop.core.recording import read_recording
from mptop.tui.app import MptopApp

ROOT = Path(__file__).resolve().parent.parent
SIZE = (110, 34)


async def shoot(recording: str, moment, name: str) -> Path:  # type: ignore[no-untyped-def]
    records = read_recording(ROOT / "assets" / recording)
    app = MptopApp(clock=False)
    async with app.run_test(size=SIZE) as pilot:
        for record in moments.until(records, moment(records)):
            app.feed(record)
        await pilot.pause()
        await pilot.pause(0.2)
        app.save_screenshot(name, str(ROOT / "screenshots"))
    return ROOT / "screenshots" / name


async def main() -> None:
    made = [
        await shoot("handover.ndjson", moments.sharing, "sharing.svg"),
        await shoot("handover.ndjson", moments.stalled, "handover.svg"),
        await shoot("fallback.ndjson", moments.fallback, "fallback.svg"),
        await shoot("compare.ndjson", moments.compared, "compare.svg"),
    ]
    print("made:", ", ".join(p.name for p in made))


if __name__ == "__main__":
    asyncio.run(main())
