"""`mptop doctor --url URL`: fetch over MPTCP and say whether the server spoke MPTCP and how many subflows came up."""

from __future__ import annotations

import asyncio

from mptop.core.doctor import Check, Verdict
from mptop.core.model import Record, Sample, Sink
from mptop.core.session import Session
from mptop.core.transfer import TransferOptions

LOOK_S = 5.0   # long enough for the path manager to add subflows; a large file is not fetched whole


async def _probe(url: str, insecure: bool, also: Sink | None = None) -> tuple[Session, int, str | None, str | None]:
    session = Session([url], TransferOptions(output="/dev/null", insecure=insecure), interval=0.25)
    most = 0
    status: str | None = None
    reason: str | None = None

    def sink(record: Record) -> None:
        nonlocal most, status, reason
        if also is not None:
            also(record)
        if isinstance(record, Sample) and record.transfers:
            t = record.transfers[0]
            most = max(most, sum(1 for s in t.subflows if not s.closed))
            if t.status != "connecting":
                status, reason = t.status, t.reason

    asyncio.get_running_loop().call_later(LOOK_S, session.stop)
    summary = await session.run(sink)
    error = summary.transfers[0].error if summary.transfers else None
    return session, most, status, (error if error != "stopped" else None) or reason


def check_url(url: str, insecure: bool = False) -> Check:
    return asyncio.run(probe_url(url, insecure))


async def probe_url(url: str, insecure: bool = False, also: Sink | None = None) -> Check:
    """Fetch ``url`` for :data:`LOOK_S` and judge it; ``also`` gets every record of the run."""
    _, subflows, status, why = await _probe(url, insecure, also)
    name = "url"
    if status is None:
        return Check(name, "fail", f"{url}: {why or 'no answer'}")
    if status == "mptcp":
        verdict: Verdict = "ok" if subflows > 1 else "info"
        more = "" if subflows > 1 else " — only the initial subflow: check the endpoints and limits above"
        return Check(name, verdict, f"{url}: the server speaks MPTCP, {subflows} subflow"
                     f"{'s' if subflows != 1 else ''} came up{more}")
    if status == "fallback":
        return Check(name, "fail", f"{url}: fell back to TCP — {why or 'the server does not speak MPTCP'} "
                     "(nothing to fix on this host: the server, or a middlebox on the way, does not speak MPTCP)")
    return Check(name, "fail", f"{url}: plain TCP — {why or 'no MPTCP socket'}")
