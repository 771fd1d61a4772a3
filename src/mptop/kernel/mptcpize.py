"""Where mptcpize's LD_PRELOAD library is: the one that turns a program's TCP sockets into MPTCP ones.

mptcpd's ``mptcpize run CMD`` does nothing but set ``LD_PRELOAD`` to a path compiled into it
(``PKGLIBDIR/libmptcpwrap.so.0.0.REVISION``, the string ``LD_PRELOAD=…`` in the executable) and exec
CMD; the library's ``socket()`` asks for IPPROTO_MPTCP instead of TCP.  So the library is found the
way the tool finds it: that string in the ``mptcpize`` on PATH, else the places distributions install
it (Debian: ``/usr/lib/<triplet>/mptcpize/``, package ``libmptcpwrap0``, pulled in by ``mptcpize``).
"""

from __future__ import annotations

import glob
import os
import re
import shutil

PACKAGE = "mptcpize"          # the Debian/Ubuntu package that installs the tool and its library
_IN_TOOL = re.compile(rb"LD_PRELOAD=(/[\x21-\x7e]+?\.so(?:\.[0-9]+)*)\x00")
_PLACES = ("/usr/lib/*/mptcpize/libmptcpwrap.so*", "/usr/lib*/mptcpize/libmptcpwrap.so*",
           "/usr/local/lib*/mptcpize/libmptcpwrap.so*")
_MAX_TOOL = 4 << 20           # the tool is ~20 KiB; never read a huge file someone named mptcpize


def preload_library(tool: str | None = None) -> str | None:
    """The path of mptcpize's library (a file that exists), or None when it is not installed."""
    tool = tool or shutil.which("mptcpize")
    if tool is not None:
        found = _from_tool(tool)
        if found is not None:
            return found
    for pattern in _PLACES:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                return path
    return None


def _from_tool(tool: str) -> str | None:
    try:
        if os.path.getsize(tool) > _MAX_TOOL:
            return None
        with open(tool, "rb") as f:
            data = f.read()
    except OSError:
        return None
    for match in _IN_TOOL.finditer(data):
        path = match[1].decode("ascii")
        if os.path.isfile(path):
            return path
    return None
