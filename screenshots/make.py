"""Re-make screenshots/*.svg from the real recordings in assets/ (see assets/record.py).

    python screenshots/make.py                 # every picture in SHOTS
    python screenshots/make.py handover.svg    # only these

The pictures are of the real TUI fed with the records up to a named moment (mptop.core.moments).  To add
one: record it in assets/record.py, then add a line to SHOTS (picture, recording, moment, what it shows).
Each picture is checked as it is made: every transfer's rate is its paths' sum within 2 % (one rate
definition on a screen), so a recording from before a change of the numbers cannot slip back in.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mptop.core import moments
from mptop.core.model import Record, Sample
from mptop.core.recording import read_recording
from mptop.tui.app import MptopApp

ROOT = Path(__file__).resolve().parent.parent
SIZE = (110, 34)
RATE_TOLERANCE = 0.02

Moment = Callable[[Sequence[Record]], float]
SHOTS: list[tuple[str, str, Moment, str]] = [
    ("sharing.svg", "handover.ndjson", moments.sharing, "both paths carry the download"),
    ("handover.svg", "handover.ndjson", moments.stalled, "Wi-Fi is down, cellular carries it"),
    ("fallback.svg", "fallback.ndjson", moments.fallback, "a server that does not speak MPTCP"),
    ("compare.svg", "compare.ndjson", moments.compared, "plain TCP gave up at a Wi-Fi drop, MPTCP went on"),
]


def rates_agree(sample: Sample) -> str:
    """The transfers' rate against their paths' sum at the picture's moment; SystemExit if they differ."""
    transfers = sum(t.rate_bps for t in sample.transfers)
    paths = sum(p.rate_bps for p in sample.paths.values())
    if abs(transfers - paths) > RATE_TOLERANCE * max(transfers, paths):
        raise SystemExit(f"at t={sample.t:.2f}: transfers {transfers / 1e6:.2f} Mbit/s, paths {paths / 1e6:.2f}")
    return f"transfers {transfers / 1e6:.2f} Mbit/s = paths {paths / 1e6:.2f}"


async def shoot(name: str, recording: str, moment: Moment) -> str:
    records = read_recording(ROOT / "assets" / recording)
    shown = moments.until(records, moment(records))
    check = rates_agree(moments.samples(shown)[-1])
    app = MptopApp(clock=False)
    async with app.run_test(size=SIZE) as pilot:
        for record in shown:
            app.feed(record)
        await pilot.pause()
        await pilot.pause(0.2)
        app.save_screenshot(name, str(ROOT / "screenshots"))
    return f"{name}: {check}"


async def main(names: Sequence[str]) -> None:
    unknown = set(names) - {shot[0] for shot in SHOTS}
    if unknown:
        raise SystemExit(f"no such picture: {', '.join(sorted(unknown))}")
    for name, recording, moment, _what in SHOTS:
        if not names or name in names:
            print(await shoot(name, recording, moment))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
