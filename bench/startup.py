"""Start-up bench: how soon mptop is useful, against peers measured in the same run.

Run as root::

    python bench/startup.py [--rounds N] [--size BYTES] [--only version,get,tui]

Three comparisons, each contender started ``--rounds`` times, the contenders of a comparison
alternated run by run (the order rotates every round, so a noisy neighbour hits them alike);
medians and minimums and their ratios are printed (on a shared machine the minimum is the steadier
figure), with the CPU time of the processes that run to their end (user + system, every thread and
child), and the machine's load average before and after:

* **version**: ``mptop --version`` and ``mptop --help`` against ``python -c pass`` (the same
  interpreter mptop runs on) — wall time of the process.  Target: ``--version`` ≤ 3×.
* **get**: ``mptop get --json -o FILE URL`` of a small file (``--size``, 1 kB) from the lab's server,
  against ``curl -o FILE URL`` and a minimal Python client that imports aiohttp and writes the same
  file — wall time from spawn to exit, inside the lab's client namespace.  Target: ≤ 1.3× the
  aiohttp client (its import alone is most of its time: the floor this dependency sets).
* **tui**: the first frame of ``mptop watch``, ``mptop URL`` (the download TUI, on the lab) and
  ``mptop demo`` against a Textual hello app (a Static in a screen), each in a 120×40 pseudo-terminal:
  time from spawn until the frame's text has been written (a marker only that frame draws), then
  ``q``.  Target: ≤ 1.2× the hello app.

The bench prints; it never asserts.  The last lines are ``RESULT name=… ratio=… target=…`` (the
ratio of medians; ``min=`` the ratio of minimums, ``cpu=`` of the minimum CPU times when measured).
"""

from __future__ import annotations

import argparse
import compileall
import fcntl
import os
import re
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _lab_common import ensure_debian_tools, fmt, load_average, median, own_settings, ratio  # noqa: E402

import mptop  # noqa: E402
from mptop.lab import Lab, LabConfig, LabError, Namespace  # noqa: E402
from mptop.lab.signals import exit_on_signals  # noqa: E402

PY = sys.executable
COLUMNS, LINES = 120, 40
FRAME_TIMEOUT = 30.0
ANSI = re.compile(rb"\x1b\[[0-9;?<>=$]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\x1b\][^\x07]*\x07")

MINIMAL_CLIENT = """\
import asyncio, sys
import aiohttp
async def main(url, path):
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        response.raise_for_status()
        with open(path, "wb") as out:
            async for chunk in response.content.iter_chunked(1 << 16):
                out.write(chunk)
asyncio.run(main(*sys.argv[1:]))
"""

HELLO_APP = """\
from textual.app import App
from textual.widgets import Static
class Hello(App):
    def compose(self):
        yield Static("hello from textual")
Hello().run()
"""


def mptop_argv(*args: str) -> list[str]:
    """The console script users run (``pip install`` puts it next to the interpreter), else ``-m mptop``."""
    script = Path(PY).with_name("mptop")
    return [str(script), *args] if script.exists() else [PY, "-m", "mptop", *args]


Run = tuple[float, float | None]    # (wall seconds, CPU seconds or None when not measured)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: Sequence[str], ns: Namespace | None = None, timeout: float = 60.0) -> Run | None:
    """(wall, CPU) seconds from spawn to exit of ``argv`` (in ``ns``), or None when it failed."""
    cpu = _children_cpu()
    with ns.entered() if ns is not None else nullcontext():
        start = time.monotonic()
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    took = time.monotonic() - start
    if proc.returncode != 0:
        print(f"  {' '.join(argv[:3])}…: exit {proc.returncode}: {err.decode(errors='replace')[-200:]}",
              file=sys.stderr)
        return None
    return took, _children_cpu() - cpu


def first_frame(argv: Sequence[str], marker: bytes, ns: Namespace | None = None) -> Run | None:
    """Seconds from spawn until ``marker`` shows in what ``argv`` wrote to its pseudo-terminal
    (escape sequences stripped); then ``q``, and SIGKILL if it does not leave."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
    with ns.entered() if ns is not None else nullcontext():
        start = time.monotonic()
        proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, env=env,
                                start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    seen, took = b"", None
    try:
        while took is None and time.monotonic() - start < FRAME_TIMEOUT:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:
                break                                  # the child closed its terminal
            seen += chunk
            if marker in ANSI.sub(b"", seen):
                took = time.monotonic() - start
        os.write(master, b"q")
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    os.read(master, 1 << 16)               # keep the terminal drained while it quits
                except OSError:
                    break
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        os.close(master)
    if took is None:
        print(f"  {' '.join(argv[:3])}…: no {marker!r} within {FRAME_TIMEOUT:g} s", file=sys.stderr)
        return None
    return took, None                       # the process is stopped after its frame: no CPU to the frame


Contender = tuple[str, Callable[[], Run | None]]


def alternate(contenders: Sequence[Contender], rounds: int) -> dict[str, list[Run | None]]:
    """Each contender ``rounds`` times, interleaved; the order rotates every round."""
    runs: dict[str, list[Run | None]] = {name: [] for name, _ in contenders}
    for r in range(rounds):
        order = list(contenders[r % len(contenders):]) + list(contenders[:r % len(contenders)])
        for name, run in order:
            runs[name].append(run())
    return runs


def _least(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def report(title: str, runs: dict[str, list[Run | None]], base: str,
           targets: dict[str, float]) -> list[str]:
    """The table of medians, minimums and their ratios to ``base``; the RESULT lines of the targeted
    contenders."""
    print(f"\n{title}   ({max(len(v) for v in runs.values())} runs each; ms; ratios to {base})")
    print(f"  {'':<26} {'median':>7} {'ratio':>6}  {'min':>6} {'ratio':>6}  {'CPU min':>7} {'ratio':>6}")

    def figures(name: str) -> tuple[float | None, float | None, float | None]:
        done = [run for run in runs[name] if run is not None]
        walls, cpus = [w for w, _ in done], [c for _, c in done]
        return median(walls), _least(walls), _least(cpus)

    base_median, base_min, base_cpu = figures(base)
    results = []
    for name in runs:
        m, least, cpu = figures(name)
        r, r_min, r_cpu = ratio(m, base_median), ratio(least, base_min), ratio(cpu, base_cpu)
        print(f"  {name:<26} {fmt(None if m is None else m * 1e3, '7.0f')} ×{fmt(r, '5.2f')}  "
              f"{fmt(None if least is None else least * 1e3, '6.0f')} ×{fmt(r_min, '5.2f')}  "
              f"{fmt(None if cpu is None else cpu * 1e3, '7.0f')} ×{fmt(r_cpu, '5.2f')}")
        if name in targets:
            verdict = "n/a" if r is None else ("met" if r <= targets[name] else "MISSED")
            cpu_part = f" cpu={fmt(r_cpu)}" if r_cpu is not None else ""
            results.append(f"RESULT name={title}:{name.replace(' ', '_')} ratio={fmt(r)} min={fmt(r_min)}{cpu_part} "
                           f"target<={targets[name]:g} {verdict}")
    return results


def bench_version(rounds: int) -> list[str]:
    runs = alternate([
        ("python -c pass", lambda: timed([PY, "-c", "pass"])),
        ("mptop --version", lambda: timed(mptop_argv("--version"))),
        ("mptop --help", lambda: timed(mptop_argv("--help"))),
    ], rounds)
    return report("version", runs, "python -c pass", {"mptop --version": 3.0})


def bench_get(lab: Lab, rounds: int, size: int, workdir: Path) -> list[str]:
    url = lab.url(size)
    out = str(workdir / "small.bin")
    runs = alternate([
        ("curl", lambda: timed(["curl", "-s", "-S", "-o", out, url], lab.client)),
        ("aiohttp client", lambda: timed([PY, "-c", MINIMAL_CLIENT, url, out], lab.client)),
        ("mptop get --json", lambda: timed(mptop_argv("get", "--json", "-f", "-o", out, url), lab.client)),
    ], rounds)
    return report("get", runs, "aiohttp client", {"mptop get --json": 1.3})


def bench_tui(lab: Lab, rounds: int, size: int, workdir: Path) -> list[str]:
    out = str(workdir / "tui.bin")
    runs = alternate([
        ("textual hello", lambda: first_frame([PY, "-c", HELLO_APP], b"hello from textual")),
        ("mptop watch", lambda: first_frame(mptop_argv("watch"), b"mptop")),
        ("mptop URL", lambda: first_frame(mptop_argv(lab.url(size), "-f", "-o", out), b"mptop", lab.client)),
        ("mptop demo", lambda: first_frame(mptop_argv("demo"), b"mptop")),
    ], rounds)
    return report("tui", runs, "textual hello", {"mptop watch": 1.2, "mptop URL": 1.2, "mptop demo": 1.2})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="runs of each contender (default 7)")
    parser.add_argument("--size", type=int, default=1000, help="bytes of the small file (default 1000)")
    parser.add_argument("--only", default="version,get,tui", help="comma-separated: version, get, tui")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    ensure_debian_tools({"curl": "curl"})
    # Bytecode as `pip install` leaves it (an editable install under PYTHONDONTWRITEBYTECODE has none,
    # and compiling ~50 modules at every start would be measured instead).
    compileall.compile_dir(Path(mptop.__file__).parent, quiet=1)
    print(f"load average before: {load_average()}   python: {PY}")
    results: list[str] = []
    try:
        with exit_on_signals(), ExitStack() as stack:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mptop-bench-startup-")))
            if "version" in only:
                results += bench_version(args.rounds)
            if only & {"get", "tui"}:
                lab = stack.enter_context(Lab(LabConfig()))
                # One warm-up of each, not counted: page cache and bytecode for every contender.
                timed(mptop_argv("get", "--json", "-f", "-o", str(workdir / "warm"), lab.url(args.size)), lab.client)
                timed([PY, "-c", MINIMAL_CLIENT, lab.url(args.size), str(workdir / "warm")], lab.client)
                if "get" in only:
                    results += bench_get(lab, args.rounds, args.size, workdir)
                if "tui" in only:
                    results += bench_tui(lab, args.rounds, args.size, workdir)
    except LabError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(f"\nload average after: {load_average()}")
    for line in results:
        print(line)
    return 0


if __name__ == "__main__":
    if shutil.which("ip") is None:
        raise SystemExit("bench: the lab needs iproute2 (ip, tc)")
    with own_settings():
        raise SystemExit(main())
