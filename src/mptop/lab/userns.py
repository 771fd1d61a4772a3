"""Run the lab as an ordinary user: become root of a fresh user (and network) namespace.

Call :func:`enter_user_namespace` first thing, while the process is single-threaded
(unshare(CLONE_NEWUSER) refuses a multithreaded caller); afterwards the lab's root code path
works unchanged: ``setns``, veth, tc, ``ip mptcp`` all act on namespaces this user namespace owns.
"""

from __future__ import annotations

import os
import threading

from mptop.lab.errors import LabUnavailable
from mptop.lab.netns import CLONE_NEWNET, CLONE_NEWUSER, libc_call

PR_SET_DUMPABLE = 4
HINT = ("unprivileged user namespaces are disabled: run as root, or enable them "
        "(sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=15000)")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def enter_user_namespace() -> None:
    """unshare(CLONE_NEWUSER | CLONE_NEWNET) and map our uid/gid to 0 inside.

    Raises :class:`LabUnavailable` (one line saying what to do) when that is not possible.
    """
    if threading.active_count() > 1:
        raise LabUnavailable("enter_user_namespace() must run before any thread is started")
    uid, gid = os.geteuid(), os.getegid()
    # After a uid change (root -> nobody) the process is non-dumpable and its /proc/self files
    # belong to root, so the id maps could not be written: become dumpable again first.
    libc_call("prctl", PR_SET_DUMPABLE, 1, 0, 0, 0)
    try:
        libc_call("unshare", CLONE_NEWUSER | CLONE_NEWNET)
    except OSError as e:
        if e.errno == 22:  # EINVAL: threads exist that Python does not know about
            raise LabUnavailable("enter_user_namespace() needs a single-threaded process") from None
        raise LabUnavailable(HINT) from None
    try:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
    except OSError as e:
        raise LabUnavailable(f"cannot map ids in the new user namespace: {e.strerror}") from None
