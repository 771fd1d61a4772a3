"""A cgroup v2 of its own for ``mptop run``'s command, and the MPTCP connections whose sockets were
created in it: a key that outlives ``close()`` (docs/kernel-interfaces.md §3, "The socket's cgroup").

::

    group = RunCgroup.create()          # None where cgroup v2 is not mounted or not writable
    Popen(argv, preexec_fn=group.join)  # the child moves itself in before exec; its children inherit it
    with CgroupConnections(group.id) as conns:
        conns.cgroup_of(token) == conns.cgroup_id   # the connection was created in the group
    group.remove()                      # processes still in it go back to the parent; rmdir

Every socket records the cgroup v2 of the task that created it (``sk_cgrp_data``); MPTCP's subflows,
even the ones the kernel opens itself (MP_JOIN), are attached to their connection's.  sock_diag
gives it (``INET_DIAG_CGROUP_ID``, Linux >= 5.10) for as long as the socket exists — after the
process closed it (inode 0) too.  A cgroup's id is its directory's inode number.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct

from mptop.kernel.diag import _REQ, _REQ_PROTO, INET_DIAG_REQ_PROTOCOL, NETLINK_SOCK_DIAG
from mptop.kernel.diag_shapes import SOCK_DIAG_BY_FAMILY
from mptop.kernel.structs import NLM_F_REQUEST

INET_DIAG_CGROUP_ID = 21
_COOKIE_AT = 16 + 8 + 40                # idiag_cookie[0] in a request (mptcp_diag looks the token up there)
_NLA = struct.Struct("=HH")
_DIAG_MSG_LEN = 72                      # sizeof(struct inet_diag_msg)
PREFIX = "mptop-run-"


def _cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split()
                if "-" in fields and fields[fields.index("-") + 1] == "cgroup2":
                    return fields[4].replace("\\040", " ")
    except OSError:
        pass
    return None


def _own_path(proc_cgroup: str = "/proc/self/cgroup") -> str | None:
    try:
        with open(proc_cgroup) as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None


class RunCgroup:
    """A child cgroup of this process's own (cgroup v2), made for one command."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.parent = os.path.dirname(path)
        self.id = os.stat(path).st_ino
        self._procs = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)

    @classmethod
    def create(cls) -> RunCgroup | None:
        """A new ``mptop-run-PID`` under this process's cgroup; None where that cannot be (no cgroup v2
        mounted, no write access).  Ones left by a mptop that was killed (its pid gone) are removed."""
        mount, own = _cgroup2_mount(), _own_path()
        if mount is None or own is None:
            return None
        parent = os.path.join(mount, own.lstrip("/"))
        _remove_stale(parent)
        path = os.path.join(parent, f"{PREFIX}{os.getpid()}")
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        except OSError:
            return None
        try:
            return cls(path)
        except OSError:
            with contextlib.suppress(OSError):
                os.rmdir(path)
            return None

    def join(self) -> None:
        """Move the calling process in (a ``preexec_fn``: runs in the child between fork and exec).
        A failure leaves it where it was: attribution then falls back to the process tree's fds."""
        with contextlib.suppress(OSError):
            os.write(self._procs, b"0")

    def holds(self, pid: int) -> bool:
        """Whether ``pid`` is in the group (its ``/proc/PID/cgroup`` names it)."""
        own = _own_path(f"/proc/{pid}/cgroup")
        return own is not None and own.rstrip("/").endswith("/" + os.path.basename(self.path))

    def remove(self) -> None:
        """Processes still in the group (a daemon CMD left) go back to the parent; the group goes."""
        if self._procs >= 0:
            os.close(self._procs)
            self._procs = -1
        _empty_and_remove(self.path, self.parent)


def _empty_and_remove(path: str, parent: str) -> None:
    for _ in range(100):            # a process forking while it is moved: move the newcomers too
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                return
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = f.read().split()
            with open(os.path.join(parent, "cgroup.procs"), "w") as out:
                for pid in pids:
                    with contextlib.suppress(OSError):
                        out.write(pid)
                        out.flush()
        except OSError:
            return


def _remove_stale(parent: str) -> None:
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        pid = name[len(PREFIX):]
        if name.startswith(PREFIX) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            _empty_and_remove(os.path.join(parent, name), parent)


class CgroupConnections:
    """Which MPTCP connections were created in one cgroup, asked of sock_diag one token at a time
    (for the netns of the thread that creates it).  Not a dump filtered by cgroup
    (``INET_DIAG_BC_CGROUP_COND``): that walks the kernel's whole token table, ~3.5 ms a family."""

    def __init__(self, cgroup_id: int, timeout: float = 5.0) -> None:
        self.cgroup_id = cgroup_id
        self._timeout = timeout
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
        self._sock.bind((0, 0))
        self._seq = 0

    def __enter__(self) -> CgroupConnections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def cgroup_of(self, token: int) -> int | None:
        """The cgroup id of the connection with this token, asked for alone (a hash lookup in the
        kernel, ~8 us); None if it is gone."""
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
        attr = _REQ_PROTO.pack(_REQ_PROTO.size, INET_DIAG_REQ_PROTOCOL, socket.IPPROTO_MPTCP)
        request = bytearray(_REQ.pack(_REQ.size + len(attr), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, 0,
                                      socket.AF_INET, 0, 0, 0xFFFFFFFF) + attr)
        struct.pack_into("=I", request, _COOKIE_AT, token)
        self._sock.send(bytes(request))
        while True:
            if not select.select([self._sock], [], [], self._timeout)[0]:
                raise TimeoutError(errno.ETIMEDOUT, "sock_diag: no answer")
            buf = self._sock.recv(1 << 16)
            length, kind, _, rseq = struct.unpack_from("=IHHI", buf, 0)
            if rseq != seq:
                continue
            if kind != SOCK_DIAG_BY_FAMILY:
                return None
            value = _attribute(buf, 16 + _DIAG_MSG_LEN, min(length, len(buf)), INET_DIAG_CGROUP_ID)
            return struct.unpack_from("=Q", value)[0] if value is not None and len(value) >= 8 else None


def _attribute(buf: bytes, at: int, end: int, wanted: int) -> bytes | None:
    """The payload of the first attribute of type ``wanted`` between ``at`` and ``end``."""
    while at + 4 <= end:
        length, kind = _NLA.unpack_from(buf, at)
        if length < 4:
            return None
        if kind & 0x7FFF == wanted:
            return buf[at + 4:at + length]
        at += (length + 3) & ~3
    return None
