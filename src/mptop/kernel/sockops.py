"""Each subflow's counters at the moment it closes, kept by the kernel until read: a ``sock_ops`` BPF
program attached to ``mptop run``'s cgroup.

Why: the destroy broadcasts (:mod:`mptop.kernel.diag_destroy`) carry every subflow's final counters
except the initial subflow's — MPTCP ``tcp_disconnect()``s it before freeing it, which zeroes them —
and any reading taken at the connection's CLOSED event races the kernel freeing the connection: in
the lab the whole close can complete inside the program's ``close()`` call, before any reader runs
(docs/kernel-interfaces.md §3).  ``tcp_set_state()`` calls the cgroup's ``sock_ops`` program
synchronously on every state change of a socket that asked for it (``BPF_SOCK_OPS_STATE_CB_FLAG``),
*before* ``tcp_disconnect()`` resets anything, so the counters recorded at the change to TCP_CLOSE
are final by construction; the map keeps them until :meth:`SubflowCloses.take` reads them.

The program (54 instructions, assembled here: no compiler, no libbpf): at TCP_CONNECT / ACTIVE / PASSIVE
ESTABLISHED it sets the socket's STATE_CB flag; at a STATE_CB whose new state is TCP_CLOSE it stores
``bytes_received`` / ``bytes_acked`` under the socket's address pair in an LRU hash map.  MPTCP
subflows, the kernel's own MP_JOIN ones included, carry the creating task's cgroup
(docs/kernel-interfaces.md §3), so the program sees every subflow of CMD's connections and nothing
else.  Needs CAP_BPF + CAP_NET_ADMIN (root) and Linux >= 5.7 (cgroup bpf links); without them
:class:`SubflowCloses` raises OSError and the broadcasts alone count.  The link goes with its fd
(closing it, or mptop's exit, detaches the program).  ::

    closes = SubflowCloses("/sys/fs/cgroup/.../mptop-run-123")   # OSError: not permitted / no BPF
    closes.take()        # [SubflowEnd(local, remote, 0, TcpInfo(..., bytes_acked, bytes_received)), ...]
    closes.close()
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct

from mptop.kernel.diag_destroy import SubflowEnd
from mptop.kernel.types import TCP_CLOSE, TcpInfo

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
BPF_MAP_CREATE, BPF_MAP_LOOKUP_AND_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY, BPF_PROG_LOAD, BPF_LINK_CREATE = 0, 21, 4, 5, 28
BPF_MAP_TYPE_LRU_HASH, BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS = 9, 13, 3
# struct bpf_sock_ops (uapi/linux/bpf.h) offsets; ops and flags
OP, NEW_STATE, ADDRS, ADDRS_END, CB_FLAGS, BYTES_RECEIVED, BYTES_ACKED = 0, 8, 20, 72, 84, 168, 176
CONNECT_CB, ACTIVE_ESTABLISHED_CB, PASSIVE_ESTABLISHED_CB, STATE_CB, STATE_CB_FLAG = 3, 4, 5, 10, 4
KEY_SIZE, VALUE_SIZE, MAP_SLOTS = ADDRS_END - ADDRS, 16, 4096
# family, remote_ip4, local_ip4, remote_ip6[4], local_ip6[4], remote_port (network order, << 16), local_port
_KEY = struct.Struct("=I4s4s16s16sII")
_VALUE = struct.Struct("=QQ")


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(map_fd: int) -> bytes:
    """The sock_ops program's instructions (see the module docstring)."""
    ldxw, ldxdw, stxw, stxdw, jeq, jne, ja = 0x61, 0x79, 0x63, 0x7B, 0x15, 0x55, 0x05
    key_at, value_at = -(KEY_SIZE + 4), -(KEY_SIZE + 4 + VALUE_SIZE)
    state = [_insn(ldxw, 2, 6, NEW_STATE)]
    copy = [b for i in range(0, KEY_SIZE, 4) for b in (_insn(ldxw, 3, 6, ADDRS + i), _insn(stxw, 10, 3, key_at + i))]
    store = [*copy,
             _insn(ldxdw, 3, 6, BYTES_RECEIVED), _insn(stxdw, 10, 3, value_at),
             _insn(ldxdw, 3, 6, BYTES_ACKED), _insn(stxdw, 10, 3, value_at + 8),
             _insn(0x18, 1, 1, 0, map_fd), _insn(0),                 # r1 = the map (BPF_PSEUDO_MAP_FD)
             _insn(0xBF, 2, 10), _insn(0x07, 2, 0, 0, key_at),       # r2 = &key
             _insn(0xBF, 3, 10), _insn(0x07, 3, 0, 0, value_at),     # r3 = &value
             _insn(0xB7, 4, 0, 0, 0), _insn(0x85, 0, 0, 0, 2)]       # BPF_ANY; map_update_elem
    flag = [_insn(ldxw, 2, 6, CB_FLAGS), _insn(0x47, 2, 0, 0, STATE_CB_FLAG), _insn(0xBF, 1, 6),
            _insn(0x85, 0, 0, 0, 59)]                               # bpf_sock_ops_cb_flags_set
    out = [_insn(0xB7, 0, 0, 0, 1), _insn(0x95)]                   # return 1
    # layout: head, flag (then jump to out), state + store, out
    flag_block = [*flag, _insn(ja, off=len(state) + 1 + len(store))]
    state_block = [*state, _insn(jne, 2, 0, len(store), TCP_CLOSE), *store]
    head = [_insn(0xBF, 6, 1), _insn(ldxw, 2, 6, OP)]
    dispatch_len = 5
    to_state = len(flag_block)                                      # from the insn after the dispatch
    dispatch = [_insn(jeq, 2, 0, dispatch_len - 1 + to_state, STATE_CB),
                _insn(jeq, 2, 0, dispatch_len - 2, CONNECT_CB),
                _insn(jeq, 2, 0, dispatch_len - 3, ACTIVE_ESTABLISHED_CB),
                _insn(jeq, 2, 0, dispatch_len - 4, PASSIVE_ESTABLISHED_CB),
                _insn(ja, off=len(flag_block) + len(state_block))]
    return b"".join([*head, *dispatch, *flag_block, *state_block, *out])


class SubflowCloses:
    """See the module docstring.  ``cgroup`` is the cgroup v2 directory whose sockets are watched."""

    def __init__(self, cgroup: str) -> None:
        number = _SYS_BPF.get(os.uname().machine)
        if number is None:
            raise OSError(errno.ENOSYS, "bpf(2): unknown system call number on this machine")
        self._nr = number
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fds: list[int] = []
        try:
            self._map = self._bpf(BPF_MAP_CREATE, struct.pack("=IIIII", BPF_MAP_TYPE_LRU_HASH, KEY_SIZE, VALUE_SIZE,
                                                              MAP_SLOTS, 0))
            insns = program(self._map)
            code = ctypes.create_string_buffer(insns, len(insns))
            license_ = ctypes.create_string_buffer(b"GPL")
            prog = self._bpf(BPF_PROG_LOAD, struct.pack("=IIQQ", BPF_PROG_TYPE_SOCK_OPS, len(insns) // 8,
                                                        ctypes.addressof(code), ctypes.addressof(license_)))
            target = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._fds.append(target)
            self._bpf(BPF_LINK_CREATE, struct.pack("=IIII", prog, target, BPF_CGROUP_SOCK_OPS, 0))
        except OSError:
            self.close()
            raise

    def _bpf(self, cmd: int, attr: bytes, keep: bool = True) -> int:
        buf = ctypes.create_string_buffer(attr.ljust(128, b"\0"), 128)
        fd = int(self._libc.syscall(self._nr, cmd, buf, 128))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"bpf({cmd}): {os.strerror(code)}")
        if keep:
            self._fds.append(fd)
        return fd

    def take(self) -> list[SubflowEnd]:
        """The subflows that reached TCP_CLOSE since the last take, each with its counters then."""
        out: list[SubflowEnd] = []
        key = ctypes.create_string_buffer(KEY_SIZE)
        value = ctypes.create_string_buffer(VALUE_SIZE)
        for _ in range(MAP_SLOTS):
            try:         # the first key (none given), then that entry read and deleted: no cursor to lose
                self._bpf(BPF_MAP_GET_NEXT_KEY, struct.pack("=IIQQ", self._map, 0, 0, ctypes.addressof(key)), False)
                self._bpf(BPF_MAP_LOOKUP_AND_DELETE_ELEM, struct.pack("=IIQQ", self._map, 0, ctypes.addressof(key),
                                                                      ctypes.addressof(value)), False)
            except OSError:
                break
            received, acked = _VALUE.unpack(value.raw)
            local, remote = addresses(key.raw)
            tcp = TcpInfo(TCP_CLOSE, 0, 0, 0, 0, 0, bytes_acked=acked, bytes_received=received)
            out.append(SubflowEnd(local, remote, 0, tcp))
        return out

    def close(self) -> None:
        for fd in reversed(self._fds):
            os.close(fd)
        self._fds = []


def addresses(key: bytes) -> tuple[tuple[str, int], tuple[str, int]]:
    """(local, remote) of a map key."""
    family, rip4, lip4, rip6, lip6, rport, lport = _KEY.unpack(key)
    if family == socket.AF_INET6:
        local, remote = socket.inet_ntop(family, lip6), socket.inet_ntop(family, rip6)
    else:
        local, remote = socket.inet_ntoa(lip4), socket.inet_ntoa(rip4)
    return (local, lport), (remote, socket.ntohs(rport >> 16))
