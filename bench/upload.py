"""Upload bench: `mptop put` against `mptcpize run curl -T`, same lab, same file, same run.

Run as root::

    python bench/upload.py [--rounds N] [--size-mb X] [--shaped-mb M] [--quick]

Two settings, each in its own two-path lab: shaped uploads of 40 + 10 Mbit/s (``--shaped-mb`` MB,
about 10 s) and unshaped (``--size-mb`` MB).  In each, one random file is sent to the lab server's
``/upload`` by ``mptop put --json`` (sampling on, sha256 on), by ``mptop put --json --no-hash`` (a regular
file then goes by ``sendfile``) and by ``mptcpize run curl -s -T FILE``, alternating (who goes first rotates
every round), ``--rounds`` times each; medians are compared.

Per run: steady goodput from the client interfaces' tx counters (wlan0 + wwan0, sampled every
``--interval`` s) over the middle 80 % of the bytes, in payload bytes (scaled by file size / tx
bytes, the same for both tools); whole-run wall time; CPU seconds of the client → CPU s per GB.
Every run is checked against the server: the sha256 and byte count it answers must be the file's
(mptop also checks its own sha256).  Target: goodput mptop / curl ≥ 1.0 shaped; the unshaped ratio is
reported.  The bench prints; it never asserts.  The last lines are ``RESULT setting=… goodput_ratio=…``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _lab_common import (  # noqa: E402
    Run,
    SizeOption,
    ensure_debian_tools,
    fmt,
    load_average,
    measured_run,
    median,
    own_settings,
    parse_bench_args,
    ratio,
    steady_rate,
)
from throughput import mbit, rotations, verdict  # noqa: E402

from mptop.lab import Lab, LabConfig, LabError  # noqa: E402
from mptop.lab.signals import exit_on_signals  # noqa: E402

PEER = "curl -T"
NOHASH = "mptop-nohash"
TOOLS = ("mptop", NOHASH, PEER)
GOODPUT_TARGET = {"shaped": 1.0, "unshaped": None}
RATES = {"wlan0": 40.0, "wwan0": 10.0}


@dataclass
class Outcome:
    """One upload, reduced to what the table shows."""

    tool: str
    goodput: float | None      # payload bytes/s over the middle 80 %
    wall_s: float
    user_s: float
    sys_s: float
    cpu_per_gb: float          # whole run
    wwan_share: float | None   # share of the bytes sent over wwan0
    check: str                 # "server sha256 ok", or what went wrong


def print_row(label: str, o: Outcome) -> None:
    share = "n/a" if o.wwan_share is None else f"{o.wwan_share * 100:.0f} %"
    print(f"  {label:<16} {fmt(mbit(o.goodput), '9.1f')} {o.wall_s:7.2f} {o.user_s:6.2f} {o.sys_s:6.2f} "
          f"{o.cpu_per_gb:9.3f} {share:>6}  {o.check}", flush=True)


@dataclass
class Setting:
    name: str
    config: LabConfig
    size: int


def argv_for(tool: str, path: str, url: str) -> list[str]:
    if tool in ("mptop", NOHASH):
        return [sys.executable, "-m", "mptop", "put", "--json", *(["--no-hash"] if tool == NOHASH else []), path, url]
    return ["mptcpize", "run", "curl", "-s", "-S", "-T", path, url]


def check(tool: str, run: Run, size: int, sha: str) -> str:
    """The server's answer (and mptop's own summary) against the file."""
    reply = run.stdout
    if tool in ("mptop", NOHASH):
        lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
        summary = lines[-1] if lines and lines[-1].get("type") == "summary" else None
        if run.returncode != 0 or summary is None:
            return f"FAILED rc={run.returncode}: {run.stderr.strip()[-200:]}"
        t = summary["transfers"][0]
        if t["sha256"] != (sha if tool == "mptop" else None):
            return f"SHA256 MISMATCH ({tool}) {t['sha256']}"
        reply = t["reply"] or ""
    try:
        answer = json.loads(reply)
    except ValueError:
        return f"FAILED rc={run.returncode}: no JSON answer {reply[-100:]!r} {run.stderr.strip()[-200:]}"
    if answer != {"bytes": size, "sha256": sha}:
        return f"SERVER GOT OTHER BYTES {answer}"
    return "server sha256 ok"


def send(lab: Lab, tool: str, path: str, size: int, sha: str, interval: float) -> Outcome:
    run = measured_run(lab, tool, argv_for(tool, path, lab.upload_url()), interval, tx=True)
    verdict_ = check(tool, run, size, sha)
    rate = steady_rate(run.samples)
    goodput = rate * size / run.rx_total if rate is not None and run.rx_total else None
    share = run.per_iface.get("wwan0", 0) / run.rx_total if run.rx_total else None
    return Outcome(tool, goodput, run.wall_s, run.user_s, run.sys_s, run.cpu_s / (size / 1e9), share, verdict_)


def random_file(directory: str, size: int) -> tuple[str, str]:
    path = os.path.join(directory, f"upload-{size}.bin")
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 22))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return path, digest.hexdigest()


def bench_setting(setting: Setting, rounds: int, interval: float, directory: str) -> dict[str, list[Outcome]]:
    print(f"\n== {setting.name}: {setting.size / 1e6:,.0f} MB, {rounds} round(s) each, load {load_average()}",
          flush=True)
    path, sha = random_file(directory, setting.size)
    results: dict[str, list[Outcome]] = {tool: [] for tool in TOOLS}
    try:
        with Lab(setting.config) as lab:
            warm, warm_sha = random_file(directory, 1_000_000)
            for tool in TOOLS:
                o = send(lab, tool, warm, 1_000_000, warm_sha, interval)
                print(f"  warm-up {tool:<11} 1 MB: wall {o.wall_s:.2f} s, CPU {o.user_s + o.sys_s:.2f} s ({o.check})",
                      flush=True)
            print(f"  {'run':<16} {'Mbit/s':>9} {'wall s':>7} {'user s':>6} {'sys s':>6} {'CPU s/GB':>9} "
                  f"{'wwan0':>6}  check")
            for r, order in rotations(TOOLS, rounds):          # who goes first rotates
                for tool in order:
                    o = send(lab, tool, path, setting.size, sha, interval)
                    results[tool].append(o)
                    print_row(f"{tool} #{r + 1}", o)
    finally:
        os.unlink(path)
    return results


def summarize(setting: Setting, results: dict[str, list[Outcome]]) -> float | None:
    med = {tool: (median([o.goodput for o in runs]), median([o.wall_s for o in runs]),
                  median([o.cpu_per_gb for o in runs])) for tool, runs in results.items()}
    print(f"  {'median':<16} {'Mbit/s':>9} {'wall s':>7} {'CPU s/GB':>9}  Mbit/s range (noise)")
    for tool, (goodput, wall, cpu) in med.items():
        rates = [mbit(o.goodput) or 0.0 for o in results[tool] if o.goodput is not None]
        spread = f"{min(rates):.1f}-{max(rates):.1f}" if rates else "n/a"
        print(f"  {tool:<16} {fmt(mbit(goodput), '9.1f')} {fmt(wall, '7.2f')} {fmt(cpu, '9.3f')}  {spread}")
    goodput_r = ratio(med["mptop"][0], med[PEER][0])
    nohash_r = ratio(med[NOHASH][0], med[PEER][0])
    target = GOODPUT_TARGET[setting.name]
    aim = f" (target >= {target}: {verdict(goodput_r, target, True)})" if target else " (reported)"
    wall_r, cpu_r = ratio(med["mptop"][1], med[PEER][1]), ratio(med["mptop"][2], med[PEER][2])
    print(f"  mptop/curl: goodput {fmt(goodput_r, '.3f')}x{aim}, whole-run time {fmt(wall_r, '.3f')}x, "
          f"CPU/GB {fmt(cpu_r, '.3f')}x; mptop-nohash/curl: goodput {fmt(nohash_r, '.3f')}x, "
          f"CPU/GB {fmt(ratio(med[NOHASH][2], med[PEER][2]), '.3f')}x", flush=True)
    return goodput_r


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return parse_bench_args(argv, __doc__, [
        SizeOption("--size-mb", "unshaped file size in MB", 1000.0, 300.0),
        SizeOption("--shaped-mb", "shaped file size in MB", 60.0, 30.0, "~10 s at 50 Mbit/s")])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: run as root (the lab, mptcpize and apt-get need it)", file=sys.stderr)
        return 2
    ensure_debian_tools({"mptcpize": "mptcpize", "curl": "curl"})
    settings = [
        Setting("shaped", LabConfig(upload_rate_mbit=dict(RATES)), int(args.shaped_mb * 1e6)),
        Setting("unshaped", LabConfig(), int(args.size_mb * 1e6)),
    ]
    settings = [s for s in settings if args.only in (None, s.name)]
    print(f"upload bench: mptop put vs mptcpize run curl -T; {os.cpu_count()} CPUs, load {load_average()}")
    verdicts: list[tuple[str, float | None]] = []
    try:
        with exit_on_signals(), tempfile.TemporaryDirectory(prefix="mptop-upload-bench-") as directory:
            for setting in settings:
                verdicts.append((setting.name, summarize(setting, bench_setting(setting, args.rounds, args.interval,
                                                                                directory))))
    except LabError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print(f"\nload at the end: {load_average()}")
    for name, goodput_r in verdicts:
        print(f"RESULT setting={name} goodput_ratio={fmt(goodput_r, '.3f')}")
    return 0


if __name__ == "__main__":
    with own_settings():
        sys.exit(main())
