"""Export bench: one Prometheus scrape of ``mptop export`` against ``ss -tiMn``, 1,000 MPTCP connections open.

Run as root::

    python bench/export.py [--connections 1000] [--rounds 15]

Builds a lab, and in its client namespace opens N established MPTCP connections on loopback
(both ends there: 2N sockets, 2N subflows), starts ``mptop export`` there, then measures,
interleaved round by round (medians):

* ``http``: GET /metrics from the running exporter (what Prometheus waits for), body read;
* ``scrape``: ``Exporter.scrape()`` in this process (the exporter's own work, no HTTP);
* ``ss``: ``ss -tiMn`` as a subprocess in the same namespace, output read, not parsed.

Wall times on a loaded machine mostly measure waiting for a CPU, so CPU time is printed too
(user + system, the kernel's dump work included): the in-process scrape's, and ss's from the
children's rusage.

The issue's target: a scrape takes less time than ``ss -tiMn``.  The bench prints; it never
asserts.  The last line is ``RESULT conns=… http_ms=… scrape_ms=… ss_ms=… ratio=… scrape_cpu_ms=…
ss_cpu_ms=… cpu_ratio=…`` (ratio = http / ss wall time).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
import urllib.request

from _lab_common import own_settings
from poll import run_ss, timed

from mptop.core.export import Exporter
from mptop.lab import Lab, LabConfig, LabError
from mptop.lab.loopback import loopback_connections
from mptop.lab.netns import kill_quietly
from mptop.lab.signals import exit_on_signals

PORT = 9464      # inside the lab's client namespace


def fetch(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as response:
        return len(response.read())


def children_cpu_ms(fn: object) -> float:
    """CPU ms (user + system) of the child processes ``fn`` ran and waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    fn()  # type: ignore[operator]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1e3


def wait_until_serving(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fetch(url)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("bench: mptop export did not answer") from None
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    url = f"http://127.0.0.1:{PORT}/metrics"
    try:
        with exit_on_signals(), Lab(LabConfig()) as lab, lab.client.entered():
            with loopback_connections(args.connections):
                server = lab.popen(lab.client, [sys.executable, "-m", "mptop", "export", "--listen",
                                                f"127.0.0.1:{PORT}"], stderr=subprocess.DEVNULL)
                exporter = Exporter()
                try:
                    wait_until_serving(url)
                    series = sum(1 for line in urllib.request.urlopen(url).read().decode().splitlines()
                                 if line and not line.startswith("#"))
                    fetch(url), exporter.scrape(), run_ss()           # warm up every path once
                    http, scrape, ss, scrape_cpu, ss_cpu = [], [], [], [], []
                    for _ in range(args.rounds):
                        http.append(timed(lambda: fetch(url))[0])
                        wall, cpu = timed(exporter.scrape)
                        scrape.append(wall)
                        scrape_cpu.append(cpu)
                        ss_cpu.append(children_cpu_ms(lambda: ss.append(timed(run_ss)[0])))
                finally:
                    exporter.close()
                    kill_quietly(server)
    except LabError as e:
        raise SystemExit(f"bench: {e}") from None
    h, s, o = statistics.median(http), statistics.median(scrape), statistics.median(ss)
    print(f"{args.connections} MPTCP connections (both ends in one netns), {series} series per scrape")
    print(f"{'':10}{'median ms':>10}{'min':>8}{'max':>8}")
    for name, values in (("http", http), ("scrape", scrape), ("ss -tiMn", ss), ("scrape CPU", scrape_cpu),
                         ("ss CPU", ss_cpu)):
        print(f"{name:10}{statistics.median(values):>10.1f}{min(values):>8.1f}{max(values):>8.1f}")
    c, d = statistics.median(scrape_cpu), statistics.median(ss_cpu)
    print(f"RESULT conns={args.connections} http_ms={h:.1f} scrape_ms={s:.1f} ss_ms={o:.1f} ratio={h / o:.2f} "
          f"scrape_cpu_ms={c:.1f} ss_cpu_ms={d:.1f} cpu_ratio={c / d:.2f}")
    return 0


if __name__ == "__main__":
    with own_settings():
        sys.exit(main())
