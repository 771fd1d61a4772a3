"""Throughput bench: `mptop get` against curl and a C reader, HTTP and HTTPS, same lab, same run.

Run as root::

    python bench/throughput.py [--rounds N] [--size-gib X] [--shaped-mb M] [--layout shared|split] [--quick]

Two labs: unshaped (a file of ``--size-gib`` GiB) and shaped 40 + 10 Mbit/s (``--shaped-mb`` MB).
In each, nginx under ``mptcpize`` serves the lab's content over HTTP and HTTPS (``bench/_peers.py``)
and these contenders fetch it, alternating (who goes first rotates every round), ``--rounds``
times each (default 5 unshaped and 7 shaped: single shaped runs of any tool spread ±10 %, see ``idle s``
below); medians are compared, with each tool's range beside them:

* ``mptop``: ``mptop get -o /dev/null --json`` (sampling on, sha256 on, as by default);
* ``mptop-nohash``: the same with ``--no-hash``;
* ``mptop-blake3``: the same with ``--hash blake3`` (unshaped only; when the blake3 package is installed);
* ``curl``: ``mptcpize run curl -o /dev/null`` (no hash);
* ``curl|sha256``: ``mptcpize run curl | openssl dgst -sha256``, the same work as mptop;
* ``C-recv+sha``: ``bench/recv_sha256.c``, built here with gcc: recv (or SSL_read) into one
  1 MiB buffer, OpenSSL's sha256 of it, on an MPTCP socket — the physical limit with hashing.

``--layout split`` pins nginx to CPU 0 and runs every contender under ``taskset -c 1`` (on 2 CPUs: the
server's sends and their softirq work on one core, the client on the other, as with a server on
another machine, but with one core for the client); ``shared`` (the default) pins nothing.  The layout
is printed with every table and RESULT line.

Before each measured run the links rest ``--rest`` seconds (default 1).  Back to back, a shaped run's
start depended on how soon after the previous transfer it connected: curl, connected 10–20 ms after the
last byte of the run before, drew 0.2–0.75 s less fast-path idle per run than mptop (means of 12–25
rounds), which starts 0.25 s later (Python and its imports), and a plain Python reader sleeping 0.25 s
before it connects drew 0.24 s more than without (docs/measured.md, "Shaped: where the fast path
idles").  Rested links give every contender the same start, as a download has that does not follow
another within milliseconds.

Per run: steady goodput from the client interfaces' rx counters over the middle 80 % of the bytes, in
payload bytes; ``rtx``, the server's MPTCP-level retransmissions meanwhile (each one ends a ~0.2 s stall
in which the client had all the data but its data-level ACK had not come: see docs/measured.md, "Idle
time"); CPU seconds of the client process and its children (their rusage) per GB, net of the tool's
fixed cost (the median CPU of ``--rounds`` 1 MB fetches: start-up, imports, handshakes) and whole-run;
nginx's CPU meanwhile (it shares the cores); every sha256 is checked against the lab's content; shaped,
``idle s``: the seconds of the measured span in which the 40 Mbit/s path received under 1/8 of its rate
— the kernel holding a hole on the 10 Mbit/s path with the server's MPTCP send buffer full
(docs/measured.md, "Shaped: where the fast path idles"), which hits every tool and is most of the
spread between shaped runs: one tool's mean over 11–25 rounds moved by up to 0.4 s between runs of the
same half hour, and the HTTP median ratio of two whole benches on one morning by 0.17 (0.886, 1.054).
Goals: unshaped goodput mptop/curl ≥ 1.0 (HTTP and HTTPS, sha256 on), shaped ≥ 0.99; unshaped CPU per
GB mptop/C-recv+sha ≤ 1.2 and mptop-nohash/curl ≤ 1.5.  Unshaped, it also prints the two ceilings on
mptop/curl (:func:`cpu_budget`): what the cores allow on an otherwise idle machine, and, with other
work on every core, curl's thread against the sha256's (which caps mptop over HTTP near 0.5× then).
The bench prints; it never asserts.  It ends with one ``RESULT`` line per setting.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _lab_common import (  # noqa: E402
    Run,
    SizeOption,
    ensure_debian_tools,
    fmt,
    idle_time,
    load_average,
    measured_run,
    median,
    own_settings,
    parse_bench_args,
    ratio,
    steady_rate,
)
from _peers import NginxPeer, build_c_reader  # noqa: E402

from mptop.commands.options import non_negative_float  # noqa: E402
from mptop.core.digest import missing  # noqa: E402
from mptop.lab import Lab, LabConfig, LabError  # noqa: E402
from mptop.lab import content as lab_content  # noqa: E402
from mptop.lab.signals import exit_on_signals  # noqa: E402

MPTOP, NOHASH, BLAKE3, CURL, CURL_SHA, C_REF = (
    "mptop", "mptop-nohash", "mptop-blake3", "curl", "curl|sha256", "C-recv+sha")
SHAPED = {"wlan0": 40.0, "wwan0": 10.0}
GOODPUT_TARGET = {"unshaped": 1.0, "shaped": 0.99}
CPU_TARGET_C = 1.2          # mptop / C-recv+sha, CPU per GB
CPU_TARGET_NOHASH = 1.5     # mptop-nohash / curl, CPU per GB
SMALL = 1_000_000           # the fixed-cost fetch
REST_S = 1.0                # quiet links before each measured run (--rest)
Medians = tuple[float | None, float | None, float | None, float | None]


@dataclass
class Outcome:
    """One run, reduced to what the table shows."""

    tool: str
    goodput: float | None      # payload bytes/s over the middle 80 %
    wall_s: float
    cpu_s: float
    cpu_per_gb: float          # whole run
    server_cpu_s: float        # nginx's CPU meanwhile
    check: str                 # "sha256 ok", "size ok", or what went wrong
    rtx: int = 0               # the server's MPTCP retransmissions meanwhile
    idle_s: float | None = None    # shaped: seconds the fast path received ~nothing (:func:`fast_path_idle`)

    @property
    def ok(self) -> bool:
        return " ok" in self.check


class Contenders:
    def __init__(self, peer: NginxPeer, c_reader: str | None, prefix: Sequence[str] = (), blake3: bool = False) -> None:
        self.peer, self.c_reader, self.prefix = peer, c_reader, list(prefix)
        self.tools = [MPTOP, NOHASH, *([BLAKE3] if blake3 else []), CURL, CURL_SHA] + ([C_REF] if c_reader else [])

    def argv(self, tool: str, size: int, scheme: str) -> list[str]:
        return self.prefix + self._argv(tool, size, scheme)

    def _argv(self, tool: str, size: int, scheme: str) -> list[str]:
        url, tls = self.peer.url(size, scheme), scheme == "https"
        if tool in (MPTOP, NOHASH, BLAKE3):
            hashing = {NOHASH: ["--no-hash"], BLAKE3: ["--hash", "blake3"]}.get(tool, [])
            return [sys.executable, "-m", "mptop", "get", "-o", "/dev/null", "--json", *hashing,
                    *(["--insecure"] if tls else []), url]
        curl = ["mptcpize", "run", "curl", "-s", "-S", *(["-k"] if tls else [])]
        if tool == CURL_SHA:      # sh waits for both, so their CPU lands in the children's rusage
            return ["sh", "-c", '"$@" | openssl dgst -sha256 -r', "sh", *curl, url]
        if tool == CURL:
            return [*curl, "-o", "/dev/null", "-w", "%{size_download}", url]
        assert self.c_reader is not None
        return [self.c_reader, self.peer.host, "443" if tls else "80", f"/bytes/{size}", *(["tls"] if tls else [])]

    def check(self, tool: str, run: Run, size: int) -> str:
        if run.returncode != 0:
            return f"FAILED rc={run.returncode}: {run.stderr.strip()[-200:]}"
        if tool in (MPTOP, NOHASH, BLAKE3):
            records = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
            summary = records[-1] if records and records[-1].get("type") == "summary" else None
            if summary is None or not summary["transfers"]:
                return "FAILED: no summary"
            t = summary["transfers"][0]
            want = {"sha256": lab_content.sha256(size) if tool == MPTOP else None,
                    "blake3": lab_content.hexdigest("blake3", size) if tool == BLAKE3 else None}
            if t["bytes"] != size or any(t[name] != value for name, value in want.items()):
                return f"MISMATCH bytes={t['bytes']} sha256={t['sha256']} blake3={t['blake3']}"
            return f"{'sha256' if tool == MPTOP else 'blake3' if tool == BLAKE3 else 'size'} ok, {t['status']}"
        got = run.stdout.split()[0] if run.stdout.split() else ""
        expected = str(size) if tool == CURL else lab_content.sha256(size)
        return f"{'size' if tool == CURL else 'sha256'} ok" if got == expected else f"MISMATCH {got!r}"


def fetch(lab: Lab, c: Contenders, tool: str, size: int, scheme: str, interval: float) -> Outcome:
    server0, rtx0 = c.peer.cpu_s(), c.peer.mptcp_retransmissions()
    run = measured_run(lab, tool, c.argv(tool, size, scheme), interval)
    server, rtx = c.peer.cpu_s() - server0, c.peer.mptcp_retransmissions() - rtx0
    rate = steady_rate(run.samples)
    # rx counts headers and TLS records too: scale the wire rate to payload bytes, the same for all.
    goodput = rate * size / run.rx_total if rate is not None and run.rx_total else None
    return Outcome(tool, goodput, run.wall_s, run.cpu_s, run.cpu_s / (size / 1e9), server, c.check(tool, run, size),
                   rtx, fast_path_idle(lab, run))


def fast_path_idle(lab: Lab, run: Run) -> float | None:
    """Shaped lab: seconds of the measured span in which the fastest path got under 1/8 of its rate.
    That is the kernel holding a hole on the slow path (the server's MPTCP send buffer full of data
    not yet acknowledged at the data level, the client holding the rest out of order): it hits every
    tool, at random, and is most of the spread of shaped runs (docs/measured.md)."""
    rates = {iface: rate for iface, rate in lab.config.rate_mbit.items() if rate}
    if not rates:
        return None
    fast = max(rates, key=lambda iface: rates[iface])
    return idle_time(run, fast, rates[fast] * 1e6 / 8 / 8)


def mbit(bytes_per_s: float | None) -> float | None:
    return None if bytes_per_s is None else bytes_per_s * 8 / 1e6


def rotations(tools: Sequence[str], rounds: int) -> list[tuple[int, list[str]]]:
    """Each round's order: who goes first rotates, so drift in the machine's load favours no one."""
    return [(r, [*tools[r % len(tools):], *tools[:r % len(tools)]]) for r in range(rounds)]


def bench_scheme(lab: Lab, c: Contenders, setting: str, scheme: str, size: int, rounds: int,
                 interval: float, layout: str, rest: float) -> tuple[dict[str, Medians], float | None]:
    """Medians per tool: (goodput, CPU/GB net of the fixed cost, CPU/GB whole run, nginx CPU/GB); and,
    shaped, mptop/curl at the same fast-path idle (:func:`same_idle`)."""
    print(f"\n== {setting} {scheme.upper()}: {size / 1e6:,.0f} MB, {rounds} round(s), layout {layout}, "
          f"links rest {rest:g} s before each run, load {load_average()}", flush=True)
    fixed: dict[str, list[float]] = {tool: [] for tool in c.tools}
    runs: dict[str, list[Outcome]] = {tool: [] for tool in c.tools}
    for _, order in rotations(c.tools, rounds):
        for tool in order:
            small = fetch(lab, c, tool, SMALL, scheme, interval)
            if small.ok:
                fixed[tool].append(small.cpu_s)
    print("  fixed cost (CPU s of a 1 MB fetch): "
          + ", ".join(f"{tool} {fmt(median(v), '.3f')}" for tool, v in fixed.items()), flush=True)
    print(f"  {'run':<18} {'Mbit/s':>9} {'wall s':>7} {'CPU s':>6} {'CPU s/GB':>9} {'nginx s':>7} {'rtx':>4} "
          f"{'idle s':>6}  check")
    for r, order in rotations(c.tools, rounds):
        for tool in order:
            time.sleep(rest)
            o = fetch(lab, c, tool, size, scheme, interval)
            runs[tool].append(o)
            print(f"  {tool + ' #' + str(r + 1):<18} {fmt(mbit(o.goodput), '9.1f'):>9} {o.wall_s:7.2f} "
                  f"{o.cpu_s:6.2f} {o.cpu_per_gb:9.3f} {o.server_cpu_s:7.2f} {o.rtx:4d} {fmt(o.idle_s):>6}  {o.check}",
                  flush=True)
    med = {}
    print(f"  {'median':<18} {'Mbit/s':>9} {'CPU s/GB net':>12} {'whole':>7} {'nginx':>6} {'rtx':>4} {'idle s':>6}  "
          "Mbit/s range (noise)")
    for tool, all_runs in runs.items():
        outcomes = [o for o in all_runs if o.ok]    # a failed run measured nothing
        fixed_cpu = median(fixed[tool]) or 0.0
        net = median([(o.cpu_s - fixed_cpu) / ((size - SMALL) / 1e9) for o in outcomes])
        goodput, whole = median([o.goodput for o in outcomes]), median([o.cpu_per_gb for o in outcomes])
        server = median([o.server_cpu_s / (size / 1e9) for o in outcomes])
        rates = [mbit(o.goodput) or 0.0 for o in outcomes if o.goodput is not None]
        spread = f"{min(rates):.1f}-{max(rates):.1f}" if rates else "n/a"
        rtx, idle = median([o.rtx for o in outcomes]), median([o.idle_s for o in outcomes])
        print(f"  {tool:<18} {fmt(mbit(goodput), '9.1f'):>9} {fmt(net, '12.3f'):>12} {fmt(whole, '7.3f'):>7} "
              f"{fmt(server, '6.3f')} {fmt(rtx, '4.0f'):>4} {fmt(idle):>6}  {spread}")
        med[tool] = (goodput, net, whole, server)
    return med, same_idle(runs)


def same_idle(runs: dict[str, list[Outcome]]) -> float | None:
    """Shaped: mptop/curl with the kernel's stalls taken out.  Over every run of the setting, goodput
    against the fast path's idle seconds is a line (r ≈ −0.99, docs/measured.md); each tool's median
    residual from that line, added to the line at the median idle of all runs, is its goodput at the
    same idle.  None unshaped, or with too few runs to fit."""
    measured = {tool: [(o.idle_s, o.goodput) for o in outcomes
                       if o.ok and o.idle_s is not None and o.goodput is not None] for tool, outcomes in runs.items()}
    points = [point for tool_points in measured.values() for point in tool_points]
    if len(points) < 3 or len({i for i, _ in points}) < 2:
        return None
    fit = statistics.linear_regression([i for i, _ in points], [g for _, g in points])
    typical = fit.intercept + fit.slope * statistics.median(i for i, _ in points)
    at = {tool: typical + statistics.median(g - (fit.intercept + fit.slope * i) for i, g in tool_points)
          for tool, tool_points in measured.items() if tool_points}
    print(f"  at the same fast-path idle (fit over {len(points)} runs: Mbit/s = {mbit(fit.intercept):.1f} "
          f"{mbit(fit.slope):+.1f} x idle s): "
          + ", ".join(f"{tool} {fmt(mbit(g), '.1f')}" for tool, g in at.items()), flush=True)
    return ratio(at.get(MPTOP), at.get(CURL))


def verdict(value: float | None, target: float, at_least: bool) -> str:
    if value is None:
        return "n/a"
    return "met" if (value >= target if at_least else value <= target) else "MISSED"


def sha256_cpu_per_gb() -> float:
    """CPU seconds per GB of hashlib's sha256 (OpenSSL's, as mptop uses) on one core, here."""
    block, h = memoryview(bytearray(1 << 20)), hashlib.sha256()
    t0 = time.process_time()
    for _ in range(256):
        h.update(block)
    return (time.process_time() - t0) / (256 * (1 << 20) / 1e9)


def cpu_budget(med: dict[str, Medians], sha_cpu: float) -> None:
    """The two ceilings on mptop/curl.  Quiet machine: nginx runs on the same cores, so a client that
    needs more CPU per byte (mptop hashes, curl does not) runs out of cores at a lower goodput; client
    CPU per GB net of its fixed cost plus nginx's per GB is the whole machine's work per GB.  Busy
    machine (other work on every core): each thread gets about the same share of a core, so goodput
    follows the CPU per GB of a tool's busiest thread: curl's one thread against mptop's sha256 thread
    (sha256 is sequential; it cannot be split over threads)."""
    cores = os.cpu_count() or 1
    work = {tool: m[1] + m[3] for tool, m in med.items() if m[1] is not None and m[3] is not None}
    if MPTOP not in work or CURL not in work or not med[CURL][0]:
        return
    curl_gb_s = (med[CURL][0] or 0) / 1e9
    bound = cores / work[MPTOP] / curl_gb_s
    print("  CPU budget: machine CPU-s per GB (client net + nginx): "
          + ", ".join(f"{tool} {w:.3f}" for tool, w in work.items())
          + f"; at curl's goodput curl keeps {curl_gb_s * work[CURL]:.2f} of {cores} cores busy, mptop would need "
          f"{curl_gb_s * work[MPTOP]:.2f} -> on an otherwise idle machine mptop/curl can reach at most {bound:.2f}x",
          flush=True)
    curl_cpu = med[CURL][1]
    if curl_cpu:
        print(f"  busy machine: sha256 alone costs {sha_cpu:.3f} CPU-s/GB on one thread, curl's only thread "
              f"{curl_cpu:.3f}; with every core shared, mptop/curl <= {curl_cpu / sha_cpu:.2f}x (less when another "
              "mptop thread is busier: over HTTPS the reader decrypts, ~0.8 CPU-s/GB)", flush=True)


def summarize(setting: str, scheme: str, med: dict[str, Medians], same_idle_r: float | None, sha_cpu: float,
              layout: str, rest: float) -> str:
    goodput_r = ratio(med[MPTOP][0], med[CURL][0])
    target = GOODPUT_TARGET[setting]
    cpu_c = ratio(med[MPTOP][1], med[C_REF][1]) if C_REF in med else None
    cpu_nohash = ratio(med[NOHASH][1], med[CURL][1])
    print(f"  goodput mptop/curl {fmt(goodput_r, '.3f')}x (target >= {target}: {verdict(goodput_r, target, True)}); "
          f"mptop/(curl|sha256) {fmt(ratio(med[MPTOP][0], med[CURL_SHA][0]), '.3f')}x; "
          f"mptop-nohash/curl {fmt(ratio(med[NOHASH][0], med[CURL][0]), '.3f')}x"
          + (f"; mptop-blake3/curl {fmt(ratio(med[BLAKE3][0], med[CURL][0]), '.3f')}x (no target)" if BLAKE3 in med
             else ""))
    # Shaped, a run lasts seconds whatever its size: the sampler's per-second cost is most of mptop's
    # CPU, so CPU per GB says little there and has no target.
    targets = setting == "unshaped"
    if targets:
        cpu_budget(med, sha_cpu)
    else:
        print("  idle s: the fast path waiting for a hole on the slow one to be filled (the kernel, not the tool: "
              "every contender gets it, in amounts that vary from run to run: docs/measured.md); a run's goodput "
              "falls with it.  "
              f"goodput mptop/curl at the same idle {fmt(same_idle_r, '.3f')}x", flush=True)
    print(f"  CPU/GB net: mptop/C-recv+sha {fmt(cpu_c, '.3f')}x"
          + (f" (target <= {CPU_TARGET_C}: {verdict(cpu_c, CPU_TARGET_C, False)})" if targets else "")
          + f"; mptop-nohash/curl {fmt(cpu_nohash, '.3f')}x"
          + (f" (target <= {CPU_TARGET_NOHASH}: {verdict(cpu_nohash, CPU_TARGET_NOHASH, False)})" if targets else "")
          + f"; mptop/(curl|sha256) {fmt(ratio(med[MPTOP][1], med[CURL_SHA][1]), '.3f')}x", flush=True)
    return (f"RESULT setting={setting}-{scheme} layout={layout} rest_s={rest:g} goodput_ratio={fmt(goodput_r, '.3f')} "
            f"cpu_ratio_c={fmt(cpu_c, '.3f')} cpu_ratio_nohash_curl={fmt(cpu_nohash, '.3f')}"
            + (f" goodput_ratio_same_idle={fmt(same_idle_r, '.3f')}" if setting == "shaped" else "")
            + (f" goodput_ratio_blake3={fmt(ratio(med[BLAKE3][0], med[CURL][0]), '.3f')}" if BLAKE3 in med else ""))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return parse_bench_args(argv, __doc__, [
        SizeOption("--size-gib", "unshaped file size in GiB", 1.0, 0.5),
        SizeOption("--shaped-mb", "shaped file size in MB", 30.0, 10.0, "~5 s at 50 Mbit/s")],
        extra_args, rounds="5 unshaped, 7 shaped")


def extra_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheme", choices=("http", "https"), help="one scheme only (default both)")
    p.add_argument("--layout", choices=("shared", "split"), default="shared",
                   help="split: nginx on CPU 0, every contender on CPU 1 (taskset); shared: no pinning (default)")
    p.add_argument("--rest", type=non_negative_float, default=REST_S,
                   help=f"seconds the links rest before each measured run (default {REST_S:g}; see the module doc)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: run as root (the lab, mptcpize and apt-get need it)", file=sys.stderr)
        return 2
    ensure_debian_tools({"mptcpize": "mptcpize", "curl": "curl", "openssl": "openssl", "nginx": "nginx-light"})
    settings = [("unshaped", LabConfig(start_server=False), int(args.size_gib * (1 << 30)), 5),
                ("shaped", LabConfig(rate_mbit=dict(SHAPED), start_server=False), int(args.shaped_mb * 1e6), 7)]
    if args.layout == "split" and (os.cpu_count() or 1) < 2:
        print("bench: --layout split needs 2 CPUs", file=sys.stderr)
        return 2
    prefix = ["taskset", "-c", "1"] if args.layout == "split" else []
    schemes = [args.scheme] if args.scheme else ["http", "https"]
    print(f"throughput bench: mptop get vs curl and a C reader; {os.cpu_count()} CPUs, layout {args.layout}"
          f"{' (nginx on CPU 0, contenders on CPU 1)' if prefix else ' (nothing pinned)'}, load {load_average()}")
    sha_cpu = sha256_cpu_per_gb()
    results: list[str] = []
    try:
        with exit_on_signals(), tempfile.TemporaryDirectory(prefix="mptop-bench-") as work:
            c_reader, why = build_c_reader(work)
            if c_reader is None:
                print(f"C reader unavailable: {why}")
            for name, config, size, rounds in settings:
                if args.only not in (None, name):
                    continue
                with Lab(config) as lab, NginxPeer(lab, [SMALL, size]) as peer:
                    if prefix:
                        peer.pin(0)
                    c = Contenders(peer, c_reader, prefix, blake3=name == "unshaped" and missing("blake3") is None)
                    for scheme in schemes:
                        med, same = bench_scheme(lab, c, name, scheme, size, args.rounds or rounds, args.interval,
                                                 args.layout, args.rest)
                        results.append(summarize(name, scheme, med, same, sha_cpu, args.layout, args.rest))
    except LabError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print(f"\nload at the end: {load_average()}")
    print("\n".join(results))
    return 0


if __name__ == "__main__":
    with own_settings():
        sys.exit(main())
