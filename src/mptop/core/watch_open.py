"""Can this process list the namespace's MPTCP connections?  `mptop watch` asks before its TUI starts.

A kernel without MPTCP sock_diag, or a process that may not dump, ends ``watch`` in one line and no
screen.  The question needs only the kernel's diag reader, not the watch sampler (its records, its
trackers, its arithmetic), so the TUI's first frame does not wait for those (bench/startup.py): the
reader opened here is handed to :class:`mptop.core.watch.WatchSampler` once the frame is drawn.
"""

from __future__ import annotations

from mptop.kernel.diag import DiagReader as DiagReader  # what open_listing() returns, for views
from mptop.kernel.types import MptcpUnavailable as MptcpUnavailable  # what open_listing() raises, for views


def open_listing() -> DiagReader:
    """A sock_diag reader of the calling thread's netns that has dumped once.  Raises
    :class:`MptcpUnavailable` (or another OSError) when MPTCP connections cannot be listed here."""
    reader = DiagReader()
    try:
        reader.connections()
    except BaseException:
        reader.close()
        raise
    return reader
