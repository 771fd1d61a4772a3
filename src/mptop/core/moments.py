"""Named moments of a recording — both paths sharing, a path stalled, a transfer fallen back, TCP given up
beside MPTCP.

Found from what happens in the records (never from fixed times), so the screenshots and the snapshot tests
show the same moments of any real recording.
"""

from __future__ import annotations

from collections.abc import Sequence

from mptop.core.model import Event, Record, Sample


def samples(records: Sequence[Record]) -> list[Sample]:
    return [r for r in records if isinstance(r, Sample)]


def first_event(records: Sequence[Record], *kinds: str) -> Event:
    return next(r for r in records if isinstance(r, Event) and r.kind in kinds)


def sharing(records: Sequence[Record], min_share: float = 0.15) -> float:
    """The last sample before the first outage in which every path carries at least ``min_share``."""
    outage = first_event(records, "link_down", "path_stalled").t
    return max(s.t for s in samples(records)
               if s.t < outage and len(s.paths) >= 2 and all(p.share >= min_share for p in s.paths.values()))


def stalled(records: Sequence[Record], settle_s: float = 1.5) -> float:
    """A sample ``settle_s`` after the first path stalled: the other path has taken over by then."""
    stall = first_event(records, "path_stalled").t
    return next(s.t for s in samples(records) if s.t >= stall + settle_s)


def fallback(records: Sequence[Record]) -> float:
    """The first sample in which a fallen-back transfer is moving data."""
    return next(s.t for s in samples(records)
                if any(t.status == "fallback" and t.state == "running" and t.rate_bps > 0 for t in s.transfers))


def compared(records: Sequence[Record], settle_s: float = 1.0) -> float:
    """A sample ``settle_s`` after a --compare-tcp run first told its comparison (the TCP side failed)."""
    told = first_event(records, "comparison").t
    return next(s.t for s in samples(records) if s.t >= told + settle_s)


def until(records: Sequence[Record], t: float) -> list[Record]:
    """The records up to and including time ``t`` (untimed records follow the one before them)."""
    out: list[Record] = []
    for record in records:
        if getattr(record, "t", 0.0) > t:
            break
        out.append(record)
    return out
