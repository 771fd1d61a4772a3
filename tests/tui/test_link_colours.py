"""Each link type keeps its own colour, whatever order the paths appear in (tui.state)."""

from __future__ import annotations

from mptop.core.model import HostInfo, PathSample, Sample
from mptop.tui.state import ViewState
from mptop.tui.style import PATH_COLOURS


def test_colour_per_link_type_in_any_order() -> None:
    paths = {"bnep0": PathSample("Bluetooth", 1e6, 10, link_type="bluetooth"),
             "enx0a1b2c3d4e5f": PathSample("Tether", 1e6, 10, link_type="tether"),
             "ppp0": PathSample("PPP", 1e6, 10, link_type="ppp"),
             "wwp0s20f0u3i12": PathSample("Cellular", 1e6, 10, link_type="cellular")}
    for order in (list(paths), list(reversed(paths))):
        state = ViewState()
        state.ingest(HostInfo("6.18", True, None, None, None, None, labels={"eth1": "Wi-Fi"},
                              link_types={"eth1": "wifi"}))
        state.ingest(Sample(1.0, paths={iface: paths[iface] for iface in order}))
        slots = {iface: state.slot(iface) for iface in [*paths, "eth1"]}
        assert slots == {"bnep0": 4, "enx0a1b2c3d4e5f": 3, "ppp0": 5, "wwp0s20f0u3i12": 1, "eth1": 0}
        assert len({PATH_COLOURS[s] for s in slots.values()}) == 5
        assert state.label("enx0a1b2c3d4e5f") == "Tether"
