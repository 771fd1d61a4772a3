"""Re-make ``watch.ndjson``: a real ``mptop watch --json`` run beside other programs' downloads in the lab.

    python tests/tui/data/make_watch_recording.py        # as root (or a user with user namespaces); needs wget

What it records (interval 0.5 s, 24 samples), all measured on a real two-path lab (Wi-Fi 40, Cellular 10 Mbit/s):
an empty first poll, then three MPTCP downloads (two curl, one wget; each a Wi-Fi + Cellular subflow), one curl
that falls back to TCP (the server's plain-TCP port), and a short curl download that ends (connection closed).
``tests/tui/test_watch.py`` feeds it to the app.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mptop.lab import Lab, LabConfig

OUT = Path(__file__).resolve().parent / "watch.ndjson"


def main() -> None:
    with Lab(LabConfig(rate_mbit={"wlan0": 40, "wwan0": 10})) as lab:
        watch = lab.popen(lab.client, [sys.executable, "-m", "mptop", "watch", "--json", "--interval", "0.5",
                                       "--count", "24"], stdout=subprocess.PIPE, text=True)
        assert watch.stdout is not None
        lines = [watch.stdout.readline()]                 # the host record: the watch is up
        time.sleep(0.3)                                   # the first poll sees no connection yet
        mptcp = ["mptcpize", "run"]
        downloads = [
            lab.popen(lab.client, [*mptcp, "curl", "-s", "-o", "/dev/null", lab.url(100_000_000)]),
            lab.popen(lab.client, [*mptcp, "curl", "-s", "-o", "/dev/null", "--limit-rate", "500K",
                                   lab.url(100_000_000)]),
            lab.popen(lab.client, [*mptcp, "wget", "-q", "-O", "/dev/null", lab.url(100_000_000)]),
            lab.popen(lab.client, [*mptcp, "curl", "-s", "-o", "/dev/null", lab.url(100_000_000, tcp=True)]),
        ]
        time.sleep(1.5)
        short = lab.popen(lab.client, [*mptcp, "curl", "-s", "-o", "/dev/null", lab.url(1_000_000)])
        lines += watch.stdout.readlines()
        if watch.wait(timeout=30) != 0 or short.wait(timeout=30) != 0:
            raise SystemExit("mptop watch or the short download failed while recording")
        for proc in downloads:
            proc.kill()
    OUT.write_text("".join(lines))
    print(f"recorded {len(lines)} records to {OUT}")


if __name__ == "__main__":
    main()
