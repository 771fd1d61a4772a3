"""``mptop run``'s cgroup on this host (root, cgroup v2 mounted: as in CI): a command moves in
before exec, the group goes on removal even with a process still in it, and a killed mptop's
leftover is removed at the next start."""

from __future__ import annotations

import os
import subprocess

from mptop.kernel.cgroups import PREFIX, RunCgroup


def test_a_command_moves_in_and_the_group_goes_with_a_process_left_in_it() -> None:
    group = RunCgroup.create()
    assert group is not None, "cgroup v2 not writable here"
    left = subprocess.Popen(["sleep", "60"], preexec_fn=group.join)
    try:
        assert group.holds(left.pid) and not group.holds(os.getpid())
        with open(os.path.join(group.path, "cgroup.procs")) as f:
            assert f.read().split() == [str(left.pid)]
        group.remove()
        assert not os.path.exists(group.path)
        assert left.poll() is None and not group.holds(left.pid)   # still running, back in ours
        group.remove()                                                # again: nothing
    finally:
        left.kill()
        left.wait()


def test_a_killed_mptops_group_is_removed_at_the_next_start() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    group = RunCgroup.create()
    assert group is not None
    try:
        stale = os.path.join(group.parent, f"{PREFIX}{dead.pid}")
        os.mkdir(stale)
        again = RunCgroup.create()            # this process's own group is kept (its pid lives)
        assert again is not None and again.path == group.path
        again.remove()
        assert not os.path.exists(stale)
    finally:
        group.remove()
