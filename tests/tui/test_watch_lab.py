"""`mptop watch` in the TUI with the real WatchSampler, in a lab."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from mptop.core.model import ConnectionSample
from mptop.core.watch import WatchSampler
from mptop.lab import Lab
from mptop.tui.app import MptopApp
from mptop.tui.subflows import SubflowsTable
from mptop.tui.toplist import TopList
from tests.tui.pilot import screen_text, select, wait_for, widget_text

pytestmark = pytest.mark.lab


# -- live, in the lab ----------------------------------------------------------------------------
@pytest.mark.lab
async def test_the_real_sampler_in_the_app_shows_a_curl_download_with_its_two_subflows(make_lab: Any) -> None:
    lab: Lab = make_lab(rate_mbit={"wlan0": 40, "wwan0": 10})
    download = lab.popen(lab.client, ["mptcpize", "run", "curl", "-s", "-o", "/dev/null", lab.url(200_000_000)],
                         stdout=subprocess.DEVNULL)
    sampler = WatchSampler(interval=0.5)
    try:
        with lab.client.entered():
            app = MptopApp(sampler.records(), mode="watch", clock=False)
            async with app.run_test(size=(120, 36)) as pilot:
                def two_paths() -> ConnectionSample | None:
                    return next((c for c in app.state.connections if c.pid == download.pid
                                 and {s.iface for s in c.subflows if not s.closed} == {"wlan0", "wwan0"}
                                 and c.rate_bps > 0), None)

                await wait_for(pilot, lambda: two_paths() is not None)
                conn = two_paths()
                assert conn is not None and conn.process == "curl" and conn.status == "mptcp"
                await pilot.pause()
                text = widget_text(app.query_one(TopList))
                assert f"curl [{download.pid}]  {conn.local} → {conn.remote}" in text
                assert "MPTCP · 2 subflows" in text
                await select(pilot, app, conn.token)
                table = app.query_one(SubflowsTable)
                await wait_for(pilot, lambda: len(table.rows) == 2)
                paths = {table.get_cell(key, "path").plain for key in table.rows}
                assert paths == {"● Wi-Fi", "● Cellular"}
                assert "events netlink" in screen_text(app)        # root in the lab: PM events subscribed
        assert download.poll() is None                             # still downloading: seen live
    finally:
        sampler.close()
        download.kill()
