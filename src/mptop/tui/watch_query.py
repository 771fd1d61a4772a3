"""The watch list's filter, as typed after ``/``: ``process:curl port:8080 status:fallback`` or any words.

Keys mean what ``mptop watch --process/--port`` mean (:class:`~mptop.core.watch_filter.ConnectionFilter`):
``process:`` a name, a shell pattern (``fire*``) or a pid (``pid:`` too); ``port:`` a local or remote port
of the connection or of any of its subflows; ``status:`` mptcp, fallback, tcp or connecting (a unique
prefix is enough: the list filters while one types).  Any other word matches when it is part of the
process name, the pid or an address (``192.0.2``, ``:443``).  Everything given must match.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, get_args

from mptop.core.watch_filter import ConnectionFilter

if TYPE_CHECKING:
    from mptop.core.model import ConnectionSample, Status

KEYS = ("process", "pid", "port", "status")
EXAMPLE = "process:curl  port:8080  status:fallback  or any text"


class WatchQuery(NamedTuple):      # defined before watch's first frame: a named tuple, as ConnectionFilter
    text: str = ""
    only: ConnectionFilter = ConnectionFilter()
    words: tuple[str, ...] = ()
    error: str | None = None          # the first term that could not be understood (left out)

    @classmethod
    def parse(cls, text: str) -> WatchQuery:
        only, words, error = ConnectionFilter(), [], None
        for term in text.split():
            key, sep, value = term.partition(":")
            key = key.lower()
            if not sep or key not in KEYS:      # "192.0.2.1:80" is a word, not a key
                words.append(term.lower())
                continue
            try:
                only = _with(only, key, value)
            except ValueError as e:
                error = error or str(e)
        return cls(text.strip(), only, tuple(words), error)

    @property
    def empty(self) -> bool:
        return self.only.empty and not self.words

    def matches(self, conn: ConnectionSample) -> bool:
        if not self.only.empty and not self.only.matches(conn):
            return False
        if not self.words:
            return True
        haystack = " ".join([conn.process or "", str(conn.pid or ""), conn.local, conn.remote,
                             *(a for s in conn.subflows for a in (s.local, s.remote))]).lower()
        return all(word in haystack for word in self.words)


def _with(only: ConnectionFilter, key: str, value: str) -> ConnectionFilter:
    """``only`` with ``key:value`` added; ValueError says what is wrong with the value."""
    if not value:
        raise ValueError(f"{key}: needs a value, e.g. {key}:{_EXAMPLES[key]}")
    if key in ("process", "pid"):
        if key == "pid" and not value.isdigit():
            raise ValueError(f"pid: a number, not {value!r}")
        return only._replace(process=value)
    if key == "port":
        if not value.isdigit() or not 0 < int(value) <= 65535:
            raise ValueError(f"port: a number from 1 to 65535, not {value!r}")
        return only._replace(port=int(value))
    from mptop.core.model import Status  # the records' module: typed in a filter, not before the first frame

    statuses: tuple[Status, ...] = get_args(Status)
    matches = [s for s in statuses if s.startswith(value.lower())]
    if len(matches) != 1:
        raise ValueError(f"status: one of {', '.join(statuses)}, not {value!r}")
    return only._replace(status=matches[0])


_EXAMPLES = {"process": "curl", "pid": "1234", "port": "443", "status": "fallback"}
