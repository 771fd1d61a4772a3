"""The CI's leak check: what a run leaves behind on the host, compared with what was there before.

    python3 .ci/leaks.py snapshot STATE     # before the run
    python3 .ci/leaks.py check STATE        # after it: exit 1, naming each, if anything new is left

It compares the host's named network namespaces (``ip netns list``) and veth links
(``ip -o link show type veth``) with the snapshot, and looks for processes that this run started
and that are still alive: the lab's namespace holders (``sleep infinity`` under ``setpriv`` and
``unshare``), its HTTP servers, anything else.  A process is this run's when it carries the run's
mark — ``MPTOP_CI_RUN=<token>`` in its environment, or the run's session id (``.ci/run`` starts in
a session of its own, which survives a child that clears its environment).  Whatever existed before
the run, or belongs to someone else on the host, is never reported.

Killed processes and their namespaces take a moment to go: ``check`` waits up to ``--wait``
seconds for new leaks to disappear before it reports them (and returns at once when there are none).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

MARK = "MPTOP_CI_RUN"


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def veth_names() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip()}


def stat_fields(pid: str) -> list[str]:
    """/proc/PID/stat from field 3 on (state, ppid, pgrp, session, ...): the comm may hold spaces."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def processes() -> dict[str, dict[str, str]]:
    """Every live process by "pid:starttime" (a pid alone can be reused): session, mark, cmdline, netns."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = stat_fields(pid)
            if fields[0] == "Z":
                continue                              # exited, waiting to be reaped: holds nothing
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            netns = os.readlink(f"/proc/{pid}/ns/net")
        except OSError:
            continue                                  # gone meanwhile (or a kernel thread)
        mark = next((e.split(b"=", 1)[1].decode(errors="replace") for e in environ
                     if e.startswith(MARK.encode() + b"=")), "")
        found[f"{pid}:{fields[19]}"] = {"session": fields[3], "mark": mark, "cmdline": cmdline.strip(),
                                        "netns": netns}
    return found


def snapshot() -> dict[str, list[str]]:
    return {"netns": sorted(netns_names()), "veth": sorted(veth_names()), "processes": sorted(processes())}


def ours(before: dict[str, list[str]], token: str, session: str) -> list[str]:
    """What is new since ``before`` and this run's, one line each."""
    leaks = [f"network namespace {n} (ip netns)" for n in sorted(netns_names() - set(before["netns"]))]
    leaks += [f"veth {v} (host namespace)" for v in sorted(veth_names() - set(before["veth"]))]
    mine = {str(os.getpid()), str(os.getppid())}          # this check and the .ci/run shell that runs it
    host_netns = os.readlink("/proc/self/ns/net")
    for key, p in sorted(processes().items()):
        pid = key.split(":")[0]
        if key in before["processes"] or pid in mine or not (p["mark"] == token or p["session"] == session):
            continue
        where = "" if p["netns"] == host_netns else f", in its own network namespace {p['netns']}"
        leaks.append(f"process {pid}: {p['cmdline'] or '?'}{where}")
    return leaks


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["snapshot", "check"])
    parser.add_argument("state", type=Path, help="the snapshot file")
    parser.add_argument("--wait", type=float, default=10.0, help="seconds new leaks may take to go (check)")
    args = parser.parse_args(argv)
    if args.action == "snapshot":
        args.state.write_text(json.dumps(snapshot()))
        return 0
    before = json.loads(args.state.read_text())
    token, session = os.environ.get(MARK, ""), stat_fields(str(os.getpid()))[3]
    if not token:
        print(f"leak check: {MARK} is not set (.ci/run sets it)", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.wait
    while (leaks := ours(before, token, session)) and time.monotonic() < deadline:
        time.sleep(0.1)                               # wait for dying processes and namespaces to go
    if leaks:
        print(f"leak check: the run left {len(leaks)} thing(s) behind:", *leaks, sep="\n  ")
        return 1
    print(f"leak check: nothing left behind ({len(before['netns'])} namespaces, {len(before['veth'])} veths "
          "that were there before are not counted)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
