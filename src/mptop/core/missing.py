"""The silent failure users hit most: a path that is up, has an endpoint, and carries no subflow any more.

The in-kernel path manager creates a subflow per endpoint when a connection starts (or an address is
announced), and never again: after a reset, or a link flap, the closed subflow stays closed while the
connection goes on over the other paths.  :class:`MissingSubflows` watches each live connection (a
transfer of ``mptop get``, a connection of ``mptop watch``): an interface on which the connection *had*
a subflow, whose link is up, and which has a ``subflow`` endpoint, but on which the connection has no subflow now
is *missing* from the moment the poll first saw it so.  After :data:`MISSING_AFTER_S` it is reported
once (an event) and flagged on the path until a subflow is back, the link goes down, the endpoint
goes, or the connection ends.  Connections that never had a subflow on an interface are not judged
there (a server that refuses joins, limits below the endpoint count: nothing to re-add).

Pure: fed each poll's live subflow interfaces per connection, the link states and the endpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from mptop.core.model import Event, PathSample
from mptop.core.paths import InterfaceMap
from mptop.kernel import pm
from mptop.kernel.types import Endpoint, EndpointFlag

MISSING_AFTER_S = 0.75    # a subflow being replaced (fullmesh, a quick re-add) is not reported
RE_ADD_KEY = "e"          # the Endpoints screen (TUI), where an endpoint is re-added


def _readd_command(endpoint: Endpoint, iface: str) -> str:
    """The command that brings the subflow back; the doctor's module is loaded only when a subflow
    went missing, not on every start (bench/startup.py)."""
    from mptop.core.doctor_fix import readd_command

    return readd_command(endpoint, iface)


def describe_missing(label: str, since_s: float, command: str | None = None) -> str:
    """``Cellular: no subflow since 1 s — re-add endpoint? (COMMAND)``; the TUI shows its key instead
    of the command (:func:`for_tui`)."""
    return f"{label}: no subflow since {since_s:.0f} s — re-add endpoint? ({command or 'the Endpoints screen'})"


def for_tui(detail: str) -> str:
    """A ``subflow_missing`` detail with the key that re-adds the endpoint in place of the command."""
    return detail.split(" (", 1)[0] + f" (press {RE_ADD_KEY}: Endpoints)"


def subflow_endpoints(endpoints: Iterable[Endpoint], iface_for: Callable[[str], str]) -> dict[str, Endpoint]:
    """Interfaces that have a ``subflow`` endpoint (by its ``dev``, else by its address).

    Implicit endpoints do not count: the kernel makes them for a join towards an address the server
    announced, and keeps them when the server removes that address (RM_ADDR) — the subflow then
    closed on purpose, and there is nothing of the user's to re-add."""
    return {e.ifname or iface_for(e.address): e for e in endpoints if e.flags & EndpointFlag.SUBFLOW}


def read_subflow_endpoints(iface_for: Callable[[str], str]) -> dict[str, Endpoint] | None:
    """This netns's ``subflow`` endpoints by interface; None when the path manager cannot be read."""
    try:
        return subflow_endpoints(pm.list_endpoints(), iface_for)
    except OSError:
        return None


@dataclass(slots=True)
class MissingSubflows:
    """See the module docstring.  ``missing`` after each :meth:`observe`: iface → time it went missing."""

    after_s: float = MISSING_AFTER_S
    _had: dict[int, set[str]] = field(default_factory=dict)
    _gone: dict[tuple[int, str], float] = field(default_factory=dict)
    missing: dict[str, float] = field(default_factory=dict)

    def candidates(self, live: Mapping[int, set[str]]) -> bool:
        """Whether some connection lost a subflow it had (only then are endpoints worth reading)."""
        return any(self._had.get(key, set()) - ifaces for key, ifaces in live.items())

    def observe(self, t: float, live: Mapping[int, set[str]], link_up: Mapping[str, bool],
                endpoints: Collection[str] | None) -> list[tuple[str, float]]:
        """One poll.  ``live``: connection → interfaces of its open subflows (live connections only).
        Returns the interfaces newly reported missing, with the time their subflow went."""
        for key in [k for k in self._had if k not in live]:
            del self._had[key]
        gone: dict[tuple[int, str], float] = {}
        for key, ifaces in live.items():
            had = self._had.setdefault(key, set())
            had |= ifaces
            for iface in had - ifaces:
                if link_up.get(iface) and endpoints is not None and iface in endpoints:
                    gone[(key, iface)] = self._gone.get((key, iface), t)
        self._gone = gone
        now: dict[str, float] = {}
        for (_, iface), since in gone.items():
            if t - since >= self.after_s:
                now[iface] = min(since, now.get(iface, since))
        new = [(iface, since) for iface, since in sorted(now.items()) if iface not in self.missing]
        self.missing = now
        return new

    def poll(self, t: float, live: Mapping[int, set[str]], interfaces: InterfaceMap,
             label: Callable[[str], str], paths: Mapping[str, PathSample]) -> list[Event]:
        """:meth:`observe` with this netns's endpoints (read only when a subflow went), the paths'
        ``no_subflow_s`` set, and a ``subflow_missing`` event per newly missing interface."""
        endpoints = read_subflow_endpoints(interfaces.iface_for) if self.candidates(live) else {}
        events = [Event(t, "subflow_missing", iface, None,
                        describe_missing(label(iface), t - since, _readd_command(endpoints[iface], iface)))
                  for iface, since in self.observe(t, live, interfaces.link_up, endpoints)
                  if endpoints is not None]
        for iface, since in self.missing.items():
            if iface in paths:
                paths[iface].no_subflow_s = round(t - since, 2)
        return events
