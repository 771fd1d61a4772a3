"""Helpers the lab tests of several packages share: bounded waits and running code as an unprivileged user.

:func:`run_as_nobody`: after the uid drop a forked child may be unable to import anything more: root's
interpreter can live under a directory only root may read (pyenv under /root, mode 0700).  Then an
import on any path the child takes — Textual's error report (``rich.traceback``), a widget Textual
loads lazily, a module some function imports only when it runs — fails with ModuleNotFoundError and
hides the child's real failure.  So before the first fork the parent imports every module of the
packages the children run and every module those import inside functions; a forked child inherits
them all.  Whatever the child raises comes back to the parent as :class:`ChildFailed` with the
child's whole traceback.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from mptop.lab import Lab, Namespace
from mptop.lab.netns import setns


def kill_subflow(lab: Lab, proc: subprocess.Popen[str], server: str, received: int) -> int:
    """Once the client's subflow to ``server``:80 has received ``received`` bytes (as ``ss`` counts them),
    destroy it (``ss -K``, as a middlebox's reset would) while ``proc`` still runs; the bytes ss saw."""
    seen = [0]
    where = ["dst", server, "dport", "=", "80"]

    def enough() -> bool:
        out = lab.run(lab.client, ["ss", "-tinH", *where]).stdout
        seen[:] = [int(word.split(":")[1]) for word in out.split() if word.startswith("bytes_received:")] or [0]
        return seen[0] >= received or proc.poll() is not None

    wait_for(enough, timeout=60)
    assert proc.poll() is None, proc.communicate()
    lab.run(lab.client, ["ss", "-K", "-tn", *where])
    return seen[0]


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> float:
    """Poll ``cond`` until true; return seconds waited (fails after timeout: generous, as it costs
    nothing when the condition comes true, and a loaded machine can take many times the usual)."""
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        time.sleep(0.02)
    return time.monotonic() - start


NOBODY = 65534
PACKAGES = ("textual", "rich", "mptop")          # every module of these...
LAZY_FROM = (*PACKAGES, "aiohttp")    # ...and what these import inside functions
NOT_IMPORTED = {"textual._sleep"}                 # runs a timing benchmark when imported


class ChildFailed(AssertionError):
    """The child raised ``kind``; ``str()`` is its traceback."""

    def __init__(self, kind: str, report: str) -> None:
        super().__init__(report)
        self.kind = kind


def _try_import(name: str) -> None:
    with contextlib.suppress(Exception):     # Windows-only modules, optional extras: nothing to preload
        importlib.import_module(name)


# An import indented in the source: inside a function, a try, an if (a docstring's example may
# match too; importing it is harmless).
LAZY_IMPORT = re.compile(rb"^[ \t]+(?:from[ \t]+([\w.]+)[ \t]+import|import[ \t]+([\w.]+))", re.MULTILINE)


def _lazy_imports(module: Any) -> Iterator[str]:
    """Modules that ``module``'s source imports anywhere but at its top level."""
    path = getattr(module, "__file__", None) or ""
    if path.endswith(".py"):
        with contextlib.suppress(OSError), open(path, "rb") as f:
            for match in LAZY_IMPORT.finditer(f.read()):
                yield (match[1] or match[2]).decode()


@functools.cache
def preload() -> None:
    """Import, once, everything a child could import after the uid drop (see the module doc)."""
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}.", onerror=lambda _: None):
            if info.name not in NOT_IMPORTED and not info.name.endswith(".__main__"):
                _try_import(info.name)
    scanned: set[str] = set()
    while todo := [name for name in list(sys.modules) if name not in scanned and name.split(".")[0] in LAZY_FROM]:
        for name in todo:
            scanned.add(name)
            for lazy in _lazy_imports(sys.modules.get(name)):
                if lazy not in sys.modules and lazy not in NOT_IMPORTED:
                    _try_import(lazy)


def run_as_nobody(ns: Namespace | None, body: Callable[[], Any], close_fds: bool = False) -> Any:
    """Fork; the child enters ``ns`` (if any) while still root, drops to uid/gid 65534 and returns
    ``body()`` (JSON-able) to the parent, or raises :class:`ChildFailed`.

    ``close_fds``: the child closes every fd it inherited (the parent's sockets stay root's alone).
    """
    preload()
    target = ns.open_fd() if ns is not None else None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # child: never returns into pytest (and cannot leave the netns once unprivileged)
        report: dict[str, Any] = {"kind": "ChildFailed", "traceback": "the child did not report"}
        try:
            os.close(read_end)
            if target is not None:
                setns(target)
            if close_fds:
                os.closerange(3, write_end)
                os.closerange(write_end + 1, os.sysconf("SC_OPEN_MAX"))
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            report = {"value": body()}
        except BaseException as e:  # noqa: B036  (everything goes back to the parent)
            report = {"kind": type(e).__name__, "traceback": traceback.format_exc()}
        finally:
            try:
                data = json.dumps(report).encode()
            except (TypeError, ValueError) as e:
                data = json.dumps({"kind": type(e).__name__, "traceback": f"cannot report {report!r}: {e}"}).encode()
            while data:
                data = data[os.write(write_end, data):]
            os._exit(0 if "value" in report else 1)
    if target is not None:
        os.close(target)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read()
    os.waitpid(pid, 0)
    try:
        result = json.loads(output)
    except ValueError:
        raise ChildFailed("ChildFailed", f"the child's report is not JSON: {output[-2000:]!r}") from None
    if "value" not in result:
        raise ChildFailed(result["kind"], result["traceback"])
    return result["value"]


PAYLOAD_HEADER_BYTES = 94   # per received packet on the lab veths: Ethernet, IPv4, TCP with timestamps and DSS


def payload_bytes(net_dev: str, ifaces: tuple[str, ...] = ("wlan0", "wwan0")) -> dict[str, int]:
    """Payload received so far per interface from a ``/proc/PID/net/dev``: rx_bytes − 94 × rx_packets,
    the ground truth docs/measured.md ("Ground truth: interface counters") measured."""
    out = {}
    with open(net_dev) as f:
        for line in f:
            name, sep, rest = line.partition(":")
            if sep and name.strip() in ifaces:
                fields = rest.split()
                out[name.strip()] = int(fields[0]) - PAYLOAD_HEADER_BYTES * int(fields[1])
    return out


def open_fds() -> int:
    """This process's open file descriptors, counted once the garbage earlier tests left has been
    collected: an unclosed event loop's selector and self-pipe freed during a test took 3 from a
    count taken before it (CI, 2026-12-05)."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))
