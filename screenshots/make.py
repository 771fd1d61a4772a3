"""Re-make screenshots/*.svg from the real recordings in assets/ (see assets/record.py).

    python screenshots/make.py                 # every picture in SHOTS
    python screenshots/make.py handover.svg    # only these

The pictures are of the real TUI fed with the records up to a named moment (mptop.core.moments).  To add
one: record it in assets/record.py, then add a Shot to SHOTS (picture, recording, moment, what it shows,
and a size if 110x34 cuts something).
Each picture is checked as it is made: every transfer's rate is its paths' sum within 2 % (one rate
definition on a screen), so a recording from before a change of the numbers cannot slip back in.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from mptop.core import moments
from mptop.core.model import Record, Sample
from mptop.core.recording import read_recording
from mptop.tui.app import MptopApp

ROOT = Path(__file__).resolve().parent.parent
SIZE = (110, 34)
RATE_TOLERANCE = 0.02

Moment = Callable[[Sequence[Record]], float]


class Shot(NamedTuple):
    name: str                      # the picture, in screenshots/
    recording: str                 # in assets/
    moment: Moment                 # when, found from what happens in the recording
    what: str                      # what it shows
    size: tuple[int, int] = SIZE   # columns, rows: wide enough that nothing is cut


SHOTS = [
    Shot("sharing.svg", "handover.ndjson", moments.sharing, "both paths carry the download"),
    Shot("handover.svg", "handover.ndjson", moments.stalled, "Wi-Fi is down, cellular carries it"),
    Shot("fallback.svg", "fallback.ndjson", moments.fallback, "a server that does not speak MPTCP", (140, 34)),
    Shot("compare.svg", "compare.ndjson", moments.compared, "plain TCP gave up at a Wi-Fi drop, MPTCP went on",
         (128, 36)),
]


def rates_agree(sample: Sample) -> str:
    """The transfers' rate against their paths' sum at the picture's moment; SystemExit if they differ."""
    transfers = sum(t.rate_bps for t in sample.transfers)
    paths = sum(p.rate_bps for p in sample.paths.values())
    if abs(transfers - paths) > RATE_TOLERANCE * max(transfers, paths):
        raise SystemExit(f"at t={sample.t:.2f}: transfers {transfers / 1e6:.2f} Mbit/s, paths {paths / 1e6:.2f}")
    return f"transfers {transfers / 1e6:.2f} Mbit/s = paths {paths / 1e6:.2f}"


async def shoot(shot: Shot) -> str:
    records = read_recording(ROOT / "assets" / shot.recording)
    shown = moments.until(records, shot.moment(records))
    check = rates_agree(moments.samples(shown)[-1])
    app = MptopApp(clock=False)
    async with app.run_test(size=shot.size) as pilot:
        for record in shown:
            app.feed(record)
        await pilot.pause()
        await pilot.pause(0.2)
        app.save_screenshot(shot.name, str(ROOT / "screenshots"))
    return f"{shot.name}: {check}"


async def main(names: Sequence[str]) -> None:
    unknown = set(names) - {shot.name for shot in SHOTS}
    if unknown:
        raise SystemExit(f"no such picture: {', '.join(sorted(unknown))}")
    for shot in SHOTS:
        if not names or shot.name in names:
            print(await shoot(shot))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
