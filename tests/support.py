"""Helpers the lab tests of several packages share: bounded waits and running code as an unprivileged user."""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable

from mptop.lab import Namespace
from mptop.lab.netns import setns


def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> float:
    """Poll ``cond`` until true; return seconds waited (fails after timeout)."""
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        time.sleep(0.02)
    return time.monotonic() - start


def run_as_nobody(ns: Namespace, body: Callable[[], dict[str, str]]) -> dict[str, str]:
    """Fork; the child enters ``ns``, drops to uid/gid 65534 and reports ``body()`` as JSON."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # child: never return into pytest (and it cannot leave the netns once unprivileged)
        status, report = 1, "child did not report"
        try:
            os.close(read_end)
            fd = ns.open_fd()
            setns(fd)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            report, status = json.dumps(body()), 0
        except BaseException:
            report = traceback.format_exc()
        finally:
            os.write(write_end, report.encode())
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        output = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    return json.loads(output)
