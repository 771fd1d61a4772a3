"""The watch view and a connection's last listing (``closed``, with its final bytes): pure."""

from __future__ import annotations

from mptop.core.model import ConnectionSample, Sample
from mptop.tui.watch_query import WatchQuery
from mptop.tui.watch_state import WatchState


def test_the_watch_view_fades_a_closed_listing_with_its_final_bytes() -> None:
    state = WatchState()
    live = ConnectionSample(7, "192.0.2.2:40007", "192.0.2.1:80", "curl", "mptcp", 8e6, bytes=1_000)
    state.ingest(Sample(t=1.0, connections=[live]))
    state.ingest(Sample(t=2.0, connections=[ConnectionSample(7, live.local, live.remote, "curl", "mptcp", 0.0,
                                                             bytes=16_667, closed=True)]))
    assert state.connections == []                          # not live
    listing = state.rows(WatchQuery.parse(""), "rate")
    assert (listing.total, [(r.conn.bytes, r.closed_for) for r in listing.rows]) == (0, [(16_667, 0.0)])
