"""Shared bench helpers: peer tools, client-side rx counters, and runs measured in the lab.

A bench compares mptop with a peer measured in the same lab, in the same run; these helpers do
the measuring the same way for both: wall time around the process, its CPU from the children's
rusage (the process is waited for, so every thread of it and its descendants count), and the
bytes that crossed the client's interfaces, sampled in a background thread.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from mptop.lab import Lab

CLIENT_IFACES = ("wlan0", "wwan0")


@dataclass(frozen=True)
class SizeOption:
    """A bench's size flag: ``--size-gib``, ``--shaped-mb``…, its default and its ``--quick`` value."""

    flag: str
    what: str            # e.g. "unshaped file size in GiB"
    default: float
    quick: float
    note: str = ""       # e.g. "~5 s at 50 Mbit/s"


@contextlib.contextmanager
def own_settings() -> Iterator[str]:
    """An empty settings folder (``XDG_CONFIG_HOME``) for every process the bench starts: mptop keeps
    the last ``--interval``, theme and units in ``~/.config/mptop/config.toml``, so the user's file
    would change what is measured (a remembered ``get --interval 5`` all but stops the sampler),
    and the bench's own runs would be remembered in it."""
    old = os.environ.get("XDG_CONFIG_HOME")
    with tempfile.TemporaryDirectory(prefix="mptop-bench-config-") as home:
        os.environ["XDG_CONFIG_HOME"] = home
        try:
            yield home
        finally:
            if old is None:
                os.environ.pop("XDG_CONFIG_HOME", None)
            else:
                os.environ["XDG_CONFIG_HOME"] = old


def parse_bench_args(argv: Sequence[str] | None, doc: str | None, sizes: Sequence[SizeOption],
                     extra: Callable[[argparse.ArgumentParser], object] | None = None,
                     rounds: str = "3") -> argparse.Namespace:
    """The lab benches' command line: ``--rounds``, one flag per size, ``--interval``, ``--only
    shaped|unshaped``, ``--quick`` (1 round and each size's quick value), plus ``extra``'s.
    ``rounds`` says what the default is; unless it is a number, ``args.rounds`` stays None without
    ``--rounds`` (the bench picks per setting)."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=None, help=f"runs per tool and setting (default {rounds}; --quick 1)")
    for size in sizes:
        note = f", {size.note}" if size.note else ""
        p.add_argument(size.flag, type=float, default=None,
                       help=f"{size.what} (default {size.default:g}{note}; --quick {size.quick:g})")
    p.add_argument("--interval", type=float, default=0.05, help="rx/tx counter sampling interval, s (default 0.05)")
    p.add_argument("--only", choices=("unshaped", "shaped"), help="run one setting only")
    p.add_argument("--quick", action="store_true",
                   help="1 round, " + ", ".join(f"{s.flag} {s.quick:g}" for s in sizes))
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    if args.rounds is None and (args.quick or rounds.isdigit()):
        args.rounds = 1 if args.quick else int(rounds)
    for size in sizes:
        dest = size.flag.lstrip("-").replace("-", "_")
        value = getattr(args, dest)
        if value is None:
            value = size.quick if args.quick else size.default
        setattr(args, dest, value)
        if value <= 0:
            p.error(f"{size.flag} must be positive")
    if (args.rounds is not None and args.rounds < 1) or args.interval <= 0:
        p.error("--rounds and --interval must be positive")
    return args


def ensure_debian_tools(tools: dict[str, str]) -> None:
    """``{command: package}``: install the packages of the missing commands with apt-get."""
    missing = sorted({pkg for cmd, pkg in tools.items() if shutil.which(cmd) is None})
    if not missing:
        return
    print(f"installing {' '.join(missing)} …", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", *missing]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        # A fresh machine has no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=True)
    still = [cmd for cmd in tools if shutil.which(cmd) is None]
    if still:
        raise SystemExit(f"bench: {', '.join(still)} still missing after apt-get install")


class RxMeter:
    """Samples the summed rx counters (``tx``: tx counters, for uploads) of the client interfaces every
    ``interval`` seconds in a background thread: ``samples`` is [(monotonic time, bytes since start)],
    ``iface_samples`` the same per interface ([(time, {iface: bytes since start})])."""

    def __init__(self, lab: Lab, interval: float = 0.05, ifaces: Sequence[str] = CLIENT_IFACES,
                 tx: bool = False) -> None:
        self.lab, self.interval, self.ifaces = lab, interval, tuple(ifaces)
        self._read = lab.tx_bytes if tx else lab.rx_bytes
        self.samples: list[tuple[float, int]] = []
        self.iface_samples: list[tuple[float, dict[str, int]]] = []
        self.start_counts = self._counts()
        self.end_counts = self.start_counts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rx-meter", daemon=True)

    def _counts(self) -> dict[str, int]:
        return {iface: self._read(iface) for iface in self.ifaces}

    def _sample(self) -> None:
        counts, now = self._counts(), time.monotonic()
        self.samples.append((now, sum(counts.values()) - sum(self.start_counts.values())))
        self.iface_samples.append((now, {i: counts[i] - self.start_counts[i] for i in self.ifaces}))
        self.end_counts = counts

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RxMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()          # the final count, after the process has exited

    @property
    def per_iface(self) -> dict[str, int]:
        return {i: self.end_counts[i] - self.start_counts[i] for i in self.ifaces}

    @property
    def total(self) -> int:
        return self.samples[-1][1] if self.samples else 0


def idle_time(run: Run, iface: str, floor: float, low: float = 0.1, high: float = 0.9) -> float | None:
    """Seconds, within the span :func:`steady_rate` measures, in which ``iface`` received less than
    ``floor`` bytes/s (sample to sample): on the shaped lab, the fast path waiting while the MPTCP
    level holds a hole on the slow one (docs/measured.md, "Shaped: where the fast path idles")."""
    total = run.samples[-1][1] if run.samples else 0
    t_low, t_high = crossing_time(run.samples, low * total), crossing_time(run.samples, high * total)
    if t_low is None or t_high is None:
        return None
    idle = 0.0
    for (t0, c0), (t1, c1) in pairwise(run.iface_samples):
        span = min(t1, t_high) - max(t0, t_low)
        if span > 0 and t1 > t0 and (c1[iface] - c0[iface]) / (t1 - t0) < floor:
            idle += span
    return idle


def crossing_time(samples: Sequence[tuple[float, int]], level: float) -> float | None:
    """When the cumulative count first reached ``level`` (linear between two samples)."""
    if samples and samples[0][1] >= level:
        return samples[0][0]
    for (t0, b0), (t1, b1) in pairwise(samples):
        if b1 >= level > b0:
            return t0 + (t1 - t0) * (level - b0) / (b1 - b0)
    return None


def steady_rate(samples: Sequence[tuple[float, int]], low: float = 0.1, high: float = 0.9) -> float | None:
    """Bytes/s over the middle of the transfer's bytes (``low``..``high`` of the final count),
    so connection set-up, slow start and the tail do not weigh in."""
    if len(samples) < 2 or samples[-1][1] <= 0:
        return None
    total = samples[-1][1]
    t_low, t_high = crossing_time(samples, low * total), crossing_time(samples, high * total)
    if t_low is None or t_high is None or t_high <= t_low:
        return None
    return (high - low) * total / (t_high - t_low)


@dataclass
class Run:
    """One measured client run."""

    tool: str
    wall_s: float
    user_s: float
    sys_s: float
    returncode: int
    stdout: str
    stderr: str
    samples: list[tuple[float, int]] = field(default_factory=list)
    per_iface: dict[str, int] = field(default_factory=dict)
    iface_samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def rx_total(self) -> int:
        return sum(self.per_iface.values())


def _child_cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime, r.ru_stime


def measured_run(lab: Lab, tool: str, argv: Sequence[str], interval: float = 0.05,
                 timeout: float = 300.0, env: Mapping[str, str] | None = None, tx: bool = False) -> Run:
    """Run ``argv`` in the client namespace; wall time, CPU seconds (user and system of the
    process and its waited-for descendants), stdout/stderr, and the rx (``tx``: tx) counters meanwhile.
    ``env`` adds to this process's environment.  Nothing else may reap children in this process
    while it runs (the CPU is a delta)."""
    with RxMeter(lab, interval, tx=tx) as meter:
        cpu0, t0 = _child_cpu(), time.monotonic()
        proc = lab.popen(lab.client, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **env} if env else None)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\nbench: killed after {timeout:.0f} s"
        wall, cpu1 = time.monotonic() - t0, _child_cpu()
    return Run(tool, wall, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], proc.returncode, out, err,
               meter.samples, meter.per_iface, meter.iface_samples)


def median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
