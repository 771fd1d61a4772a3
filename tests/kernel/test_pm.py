"""The path manager's client without the kernel family: a typed error."""

from __future__ import annotations

import pytest

from mptop.kernel import pm
from mptop.kernel.pm import PathManagerUnavailable
from mptop.kernel.pm_events import PmEvents


def test_missing_family_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel answers ENOENT for an unknown family exactly as it would for mptcp_pm without MPTCP.
    monkeypatch.setattr(pm, "PM_FAMILY", "mptop_nofamily")   # shorter than GENL_NAMSIZ (16)
    monkeypatch.setattr(pm, "_family", None)
    with pytest.raises(PathManagerUnavailable, match="no MPTCP path manager"):
        pm.list_endpoints()
    with pytest.raises(PathManagerUnavailable):
        PmEvents()
