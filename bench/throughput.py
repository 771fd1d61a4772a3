"""Throughput bench: `mptop get` against `mptcpize run curl`, same lab, same run.

Run as root::

    python bench/throughput.py [--rounds N] [--size-gib X] [--shaped-mb M] [--quick]

Two settings, each in its own two-path lab: unshaped (a file of ``--size-gib`` GiB) and shaped
80 + 20 Mbit/s (``--shaped-mb`` MB, about 10 s).  In each, the same file is fetched by
``mptop get -o /dev/null --json`` (sampling on) and by ``mptcpize run curl -s -o /dev/null``,
alternating (the order flips every round), ``--rounds`` times each; medians are compared.

Per run: steady goodput from the client interfaces' rx counters (wlan0 + wwan0, sampled every
``--interval`` s) over the middle 80 % of the bytes, expressed in payload bytes; whole-run wall
time; CPU seconds of the client process → CPU s per GB.  Every mptop run's sha256 is checked
against the lab's content.  Targets (mptop / curl): steady goodput ≥ 1.0 unshaped and ≥ 0.99
shaped, CPU per GB ≤ 1.5.  An informational third peer, ``curl | openssl dgst -sha256``, does
the same work as mptop (mptop hashes every byte; plain curl does not) and is compared too
(``--no-hash-peer`` skips it).  The bench prints; it never asserts.  The last two lines are
``RESULT setting=… goodput_ratio=… cpu_ratio=…``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _lab_common import Run, ensure_debian_tools, fmt, load_average, measured_run, median, ratio, steady_rate  # noqa: E402

from mptop.lab import Lab, LabConfig, LabError  # noqa: E402
from mptop.lab.signals import exit_on_signals  # noqa: E402

PEER = "curl"
HASH_PEER = "curl|sha256"   # informational: curl piped to `openssl dgst -sha256`, the same work as mptop
TOOLS = ("mptop", PEER, HASH_PEER)
GOODPUT_TARGET = {"unshaped": 1.0, "shaped": 0.99}
CPU_TARGET = 1.5
WARMUP_SIZE = 1_000_000


@dataclass
class Setting:
    name: str
    config: LabConfig
    size: int


@dataclass
class Outcome:
    """One run, reduced to what the table shows."""

    tool: str
    goodput: float | None      # payload bytes/s over the middle 80 %
    wall_s: float
    user_s: float
    sys_s: float
    cpu_per_gb: float
    wwan_share: float | None
    check: str                 # "sha256 ok", "size ok", or what went wrong


def argv_for(tool: str, url: str) -> list[str]:
    if tool == "mptop":
        return [sys.executable, "-m", "mptop", "get", "-o", "/dev/null", "--json", url]
    if tool == HASH_PEER:
        # sh waits for both, so their CPU lands in the children's rusage.
        return ["sh", "-c", 'mptcpize run curl -s -S "$1" | openssl dgst -sha256 -r', "sh", url]
    return ["mptcpize", "run", "curl", "-s", "-S", "-o", "/dev/null", "-w", "%{size_download}", url]


def check_mptop(run: Run, expected_sha: str) -> str:
    """The summary's verdict: its sha256 against the lab's content, and the run's status."""
    summary = None
    samples = 0
    for line in run.stdout.splitlines():
        record = json.loads(line)
        samples += record.get("type") == "sample"
        if record.get("type") == "summary":
            summary = record
    if run.returncode != 0 or summary is None or not summary["transfers"]:
        return f"FAILED rc={run.returncode}: {run.stderr.strip()[-200:]}"
    t = summary["transfers"][0]
    if t["sha256"] != expected_sha:
        return f"SHA256 MISMATCH {t['sha256']}"
    return f"sha256 ok, {t['status']}, {samples} samples"


def check_hash_peer(run: Run, expected_sha: str) -> str:
    got = run.stdout.split()[0] if run.stdout.split() else ""
    if run.returncode != 0 or got != expected_sha:
        return f"FAILED rc={run.returncode} sha256={got!r}: {run.stderr.strip()[-200:]}"
    return "sha256 ok"


def check_curl(run: Run, size: int) -> str:
    got = run.stdout.strip()
    if run.returncode != 0 or got != str(size):
        return f"FAILED rc={run.returncode} size={got!r}: {run.stderr.strip()[-200:]}"
    return "size ok"


def fetch(lab: Lab, tool: str, size: int, interval: float, mptop_env: dict[str, str]) -> Outcome:
    env = mptop_env if tool == "mptop" else None
    run = measured_run(lab, tool, argv_for(tool, lab.url(size)), interval, env=env)
    if tool == "mptop":
        check = check_mptop(run, lab.content_sha256(size))
    elif tool == HASH_PEER:
        check = check_hash_peer(run, lab.content_sha256(size))
    else:
        check = check_curl(run, size)
    rate = steady_rate(run.samples)
    # rx counts headers too: scale the wire rate to payload bytes, the same for both tools.
    goodput = rate * size / run.rx_total if rate is not None and run.rx_total else None
    share = run.per_iface.get("wwan0", 0) / run.rx_total if run.rx_total else None
    return Outcome(tool, goodput, run.wall_s, run.user_s, run.sys_s, run.cpu_s / (size / 1e9), share, check)


def mbit(bytes_per_s: float | None) -> float | None:
    return None if bytes_per_s is None else bytes_per_s * 8 / 1e6


def print_row(label: str, o: Outcome) -> None:
    share = "n/a" if o.wwan_share is None else f"{o.wwan_share * 100:.0f} %"
    print(f"  {label:<16} {fmt(mbit(o.goodput), '9.1f')} {o.wall_s:7.2f} {o.user_s:6.2f} {o.sys_s:6.2f} "
          f"{o.cpu_per_gb:9.3f} {share:>6}  {o.check}", flush=True)


def warm_up(lab: Lab, tools: Sequence[str], interval: float, mptop_env: dict[str, str]) -> None:
    """One small fetch each, not counted: caches warm; shows each tool's fixed cost."""
    for tool in tools:
        o = fetch(lab, tool, WARMUP_SIZE, interval, mptop_env)
        print(f"  warm-up {tool:<11} 1 MB: wall {o.wall_s:.2f} s, CPU {o.user_s + o.sys_s:.2f} s ({o.check})",
              flush=True)


def bench_setting(setting: Setting, tools: Sequence[str], rounds: int, interval: float,
                  mptop_env: dict[str, str]) -> dict[str, list[Outcome]]:
    print(f"\n== {setting.name}: {setting.size / 1e6:,.0f} MB, {rounds} round(s) each, "
          f"load {load_average()}", flush=True)
    results: dict[str, list[Outcome]] = {tool: [] for tool in tools}
    with Lab(setting.config) as lab:
        warm_up(lab, tools, interval, mptop_env)
        print(f"  {'run':<16} {'Mbit/s':>9} {'wall s':>7} {'user s':>6} {'sys s':>6} {'CPU s/GB':>9} "
              f"{'wwan0':>6}  check")
        for r in range(rounds):
            # Rotate who goes first, so drift in the machine's load does not favour one tool.
            k = r % len(tools)
            for tool in [*tools[k:], *tools[:k]]:
                o = fetch(lab, tool, setting.size, interval, mptop_env)
                results[tool].append(o)
                print_row(f"{tool} #{r + 1}", o)
    return results


def summarize(setting: Setting, results: dict[str, list[Outcome]]) -> tuple[float | None, float | None]:
    med = {tool: (median([o.goodput for o in runs]), median([o.wall_s for o in runs]),
                  median([o.cpu_per_gb for o in runs])) for tool, runs in results.items()}
    print(f"  {'median':<16} {'Mbit/s':>9} {'wall s':>7} {'CPU s/GB':>9}  Mbit/s range (noise)")
    for tool, (goodput, wall, cpu) in med.items():
        rates = [mbit(o.goodput) for o in results[tool] if o.goodput is not None]
        spread = f"{min(rates):.1f}-{max(rates):.1f}" if rates else "n/a"
        print(f"  {tool:<16} {fmt(mbit(goodput), '9.1f')} {fmt(wall, '7.2f')} {fmt(cpu, '9.3f')}  {spread}")
    goodput_r = ratio(med["mptop"][0], med[PEER][0])
    wall_r = ratio(med["mptop"][1], med[PEER][1])
    cpu_r = ratio(med["mptop"][2], med[PEER][2])
    target = GOODPUT_TARGET[setting.name]
    print(f"  mptop/curl: goodput {fmt(goodput_r, '.3f')}x (target >= {target}: {verdict(goodput_r, target, True)}), "
          f"whole-run time {fmt(wall_r, '.3f')}x, CPU/GB {fmt(cpu_r, '.3f')}x "
          f"(target <= {CPU_TARGET}: {verdict(cpu_r, CPU_TARGET, False)})", flush=True)
    if HASH_PEER in med:
        print(f"  mptop/({HASH_PEER}), same work incl. sha256: goodput "
              f"{fmt(ratio(med['mptop'][0], med[HASH_PEER][0]), '.3f')}x, CPU/GB "
              f"{fmt(ratio(med['mptop'][2], med[HASH_PEER][2]), '.3f')}x (informational)", flush=True)
    return goodput_r, cpu_r


def verdict(value: float | None, target: float, at_least: bool) -> str:
    if value is None:
        return "n/a"
    return "met" if (value >= target if at_least else value <= target) else "MISSED"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=None, help="runs per tool and setting (default 3; --quick 1)")
    p.add_argument("--size-gib", type=float, default=None, help="unshaped file size in GiB (default 2; --quick 1)")
    p.add_argument("--shaped-mb", type=float, default=None,
                   help="shaped file size in MB (default 120, ~10 s at 100 Mbit/s; --quick 30)")
    p.add_argument("--interval", type=float, default=0.05, help="rx counter sampling interval, s (default 0.05)")
    p.add_argument("--only", choices=("unshaped", "shaped"), help="run one setting only")
    p.add_argument("--no-hash-peer", action="store_true",
                   help=f"skip the informational '{HASH_PEER}' peer (curl | openssl dgst -sha256)")
    p.add_argument("--mptop-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the mptop runs only, e.g. MALLOC_MMAP_THRESHOLD_=4194304 (repeatable)")
    p.add_argument("--quick", action="store_true", help="1 round, 1 GiB unshaped, 30 MB shaped")
    args = p.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (1 if quick else 3)
    args.size_gib = args.size_gib or (1.0 if quick else 2.0)
    args.shaped_mb = args.shaped_mb or (30.0 if quick else 120.0)
    pairs = [item.partition("=") for item in args.mptop_env]
    if any(not name or not sep for name, sep, _ in pairs):
        p.error("--mptop-env takes NAME=VALUE")
    args.mptop_env = {name: value for name, _, value in pairs}
    if args.rounds < 1 or args.size_gib <= 0 or args.shaped_mb <= 0 or args.interval <= 0:
        p.error("--rounds, --size-gib, --shaped-mb and --interval must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: run as root (the lab, mptcpize and apt-get need it)", file=sys.stderr)
        return 2
    tools = TOOLS[:2] if args.no_hash_peer else TOOLS
    ensure_debian_tools({"mptcpize": "mptcpize", "curl": "curl",
                         **({} if args.no_hash_peer else {"openssl": "openssl"})})
    settings = [
        Setting("unshaped", LabConfig(), int(args.size_gib * (1 << 30))),
        Setting("shaped", LabConfig(rate_mbit={"wlan0": 80, "wwan0": 20}), int(args.shaped_mb * 1e6)),
    ]
    settings = [s for s in settings if args.only in (None, s.name)]
    print(f"throughput bench: mptop get vs mptcpize run curl; {os.cpu_count()} CPUs, load {load_average()}")
    if args.mptop_env:
        print("mptop runs with " + " ".join(f"{k}={v}" for k, v in args.mptop_env.items()))
    verdicts: list[tuple[str, float | None, float | None]] = []
    try:
        with exit_on_signals():
            for setting in settings:
                results = bench_setting(setting, tools, args.rounds, args.interval, args.mptop_env)
                verdicts.append((setting.name, *summarize(setting, results)))
    except LabError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print(f"\nload at the end: {load_average()}")
    for name, goodput_r, cpu_r in verdicts:
        print(f"RESULT setting={name} goodput_ratio={fmt(goodput_r, '.3f')} cpu_ratio={fmt(cpu_r, '.3f')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
