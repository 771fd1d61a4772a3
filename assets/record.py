"""Re-make the recordings in assets/ from the real lab (run as root, or as a user with user namespaces).

    python assets/record.py            # handover.ndjson, fallback.ndjson, compare.ndjson, two-transfers.ndjson

They feed the TUI's snapshot and Pilot tests and `screenshots/make.py`: every number in them was measured by
mptop on a real two-path MPTCP lab, none is made up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mptop.lab import Lab, LabConfig

ASSETS = Path(__file__).resolve().parent
MPTOP = [sys.executable, "-m", "mptop"]


def demo(name: str, scenario: str, seconds: int) -> None:
    subprocess.run([*MPTOP, "demo", "--scenario", scenario, "--headless", "--duration", str(seconds),
                    "--record", str(ASSETS / name)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def two_transfers() -> None:
    """An MPTCP download beside one that falls back to TCP (the server's plain-TCP port), Wi-Fi dropping once."""
    with Lab(LabConfig(rate_mbit={"wlan0": 40, "wwan0": 10})) as lab, lab.client.entered():
        get = subprocess.Popen([*MPTOP, "get", "--json", "-o", "/dev/null", "--record",
                                str(ASSETS / "two-transfers.ndjson"), lab.url(60_000_000),
                                lab.url(30_000_000, tcp=True)], stdout=subprocess.DEVNULL)
        subprocess.run(["sleep", "4"], check=True)
        lab.link_down("wlan0")
        subprocess.run(["sleep", "3"], check=True)
        lab.link_up("wlan0")
        if get.wait(timeout=120) != 0:
            raise SystemExit("mptop get failed while recording")


if __name__ == "__main__":
    demo("handover.ndjson", "handover", 30)
    demo("fallback.ndjson", "fallback", 8)
    demo("compare.ndjson", "compare", 60)       # ends when both downloads have (~45 s)
    two_transfers()
    print("recorded:", ", ".join(p.name for p in sorted(ASSETS.glob("*.ndjson"))))
