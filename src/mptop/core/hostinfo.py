"""The host record: MPTCP on this host (the calling thread's netns), for every view's header.

::

    started = wall_clock_now()                     # when the run's t = 0 is
    record = read_host_info({"eth1": "Starlink"}, events="netlink", started=started)

Both samplers (:mod:`mptop.core.sampler` for our transfers, :mod:`mptop.core.watch` for the
namespace) make their :class:`~mptop.core.model.HostInfo` here; ``events`` is theirs to say
("netlink" when path-manager events are subscribed, "inferred" otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Literal

from mptop import __version__
from mptop.core.model import HostInfo
from mptop.core.paths import label_for
from mptop.kernel import host
from mptop.kernel.linktype import link_kind
from mptop.kernel.pm import get_limits


def read_host_info(labels: Mapping[str, str], events: Literal["netlink", "inferred"], started: str) -> HostInfo:
    """Sysctls, path manager, limits and every interface's label and link type, read now."""
    sysctls = host.mptcp_sysctls()
    subflows: int | None
    accepted: int | None
    try:
        limits = get_limits()
        subflows, accepted = limits.subflows, limits.add_addr_accepted
    except OSError:
        subflows = accepted = None
    enabled = sysctls.get("enabled")
    kinds = {itf.name: link_kind(itf.name, itf.ifindex) for itf in host.interfaces() if itf.name != "lo"}
    return HostInfo(
        kernel=os.uname().release, enabled=None if enabled is None else enabled == "1",
        path_manager=host.path_manager(sysctls),
        scheduler=sysctls.get("scheduler"), subflows_limit=subflows, add_addr_accepted_limit=accepted,
        events=events, labels={name: label_for(name, labels, kind) for name, kind in kinds.items()},
        link_types={name: kind.type for name, kind in kinds.items()},
        started=started, version=__version__,
    )


def wall_clock_now() -> str:
    """UTC now as ISO 8601 to the millisecond (``2026-12-04T13:29:00.123+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
