"""The words every view puts on a transfer's status (the TUI's cards, the console's lines)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mptop.core.model import SubflowSample, TransferSample


def _active_subflows(subflows: list[SubflowSample]) -> int:
    return sum(not s.closed for s in subflows)


def badge(transfer: TransferSample, short: bool = False) -> tuple[str, str]:
    """The status badge of a transfer and its kind (``mptcp``/``fallback``/``tcp``/``connecting``).

    ``short`` leaves out why a transfer is not MPTCP (for narrow cards; the subflows title has it).
    """
    if transfer.status == "mptcp":
        finished = transfer.state in ("done", "failed")       # its subflows are closed by now
        n = len(transfer.subflows) if finished else _active_subflows(transfer.subflows)
        return f"MPTCP · {n} subflow{'s' if n != 1 else ''}", "mptcp"
    if transfer.status == "fallback":
        reason = transfer.reason or "server does not speak MPTCP"
        return ("TCP fallback" if short else f"TCP fallback — {reason}"), "fallback"
    if transfer.status == "tcp":
        reason = transfer.reason or "MPTCP disabled on this host"
        return ("TCP only" if short else f"TCP — {reason}"), "tcp"
    if transfer.state == "failed":         # refused before (or while) connecting: it never will
        return "not connected", "connecting"
    if transfer.state == "done":           # too quick for a socket reading (e.g. a complete .part)
        return "done", "connecting"
    return "connecting…", "connecting"
