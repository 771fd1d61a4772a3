"""The addresses of this thread's netns's interfaces: libc's getifaddrs(3), through ctypes.

What ``psutil.net_if_addrs`` returns for IPv4 and IPv6 (its only use here), without importing psutil
on every ``get``: psutil and its C module cost about 7 ms of each start-up (bench/startup.py), and
ctypes is loaded at start anyway (``cli._tune_malloc``).  getifaddrs asks netlink in the calling
thread's netns, as psutil's does.  A link-local IPv6 address carries ``%IFNAME``, as getnameinfo (and
so psutil) writes its scope.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys


class _SockAddr(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_ubyte * 26)]   # large enough for sockaddr_in6


class _IfAddrs(ctypes.Structure):
    pass


_IfAddrs._fields_ = [
    ("next", ctypes.POINTER(_IfAddrs)),
    ("name", ctypes.c_char_p),
    ("flags", ctypes.c_uint),
    ("addr", ctypes.POINTER(_SockAddr)),
    ("netmask", ctypes.POINTER(_SockAddr)),
    ("ifu", ctypes.POINTER(_SockAddr)),
    ("data", ctypes.c_void_p),
]


def _address(family: int, data: bytes, name: str) -> str:
    """``data``: a sockaddr's bytes after its family (port first)."""
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, data[2:6])
    ip = socket.inet_ntop(socket.AF_INET6, data[6:22])
    scope = int.from_bytes(data[22:26], sys.byteorder)
    return f"{ip}%{name}" if scope and ip.lower().startswith("fe80:") else ip


def interface_addresses() -> dict[str, list[str]]:
    """Interface name -> its IPv4 and IPv6 addresses, in the kernel's order; interfaces without an
    address are listed too (with none).  OSError when getifaddrs fails."""
    libc = ctypes.CDLL(None, use_errno=True)
    head = ctypes.POINTER(_IfAddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"getifaddrs: {os.strerror(code)}")
    found: dict[str, list[str]] = {}
    try:
        node = head
        while node:
            entry = node.contents
            name = (entry.name or b"").decode(errors="surrogateescape")
            addresses = found.setdefault(name, [])
            if entry.addr and entry.addr.contents.family in (socket.AF_INET, socket.AF_INET6):
                sockaddr = entry.addr.contents
                addresses.append(_address(sockaddr.family, bytes(sockaddr.data), name))
            node = entry.next
    finally:
        libc.freeifaddrs(head)
    return found
