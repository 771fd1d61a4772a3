"""`mptop export` against the real thing: a Prometheus scraping it in the lab's client namespace.

The exporter and Prometheus both run inside the client namespace (Prometheus scrapes on its
loopback, the test queries Prometheus' HTTP API from a thread that entered it), so nothing listens
or connects outside the lab.  Ground truth for the bytes: the client interfaces' rx counters,
payload ≈ rx_bytes − 94 × rx_packets.
"""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mptop.lab import Lab
from mptop.lab.netns import Namespace, kill_quietly
from tests.support import payload_bytes

pytestmark = pytest.mark.lab

EXPORT_PORT, PROMETHEUS_PORT, LISTENER_PORT = 9464, 9090, 8443   # inside the client netns: all free there
DASHBOARD = Path(__file__).parents[2] / "assets" / "grafana" / "mptop.json"
WINDOW_S = 8    # s of 1 s scrapes compared with the interfaces: 8 samples; Grafana's rate interval is >= 4 scrapes
PATHS = ("wlan0", "wwan0")
LISTENER = (f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262); "
            f"s.bind(('127.0.0.1', {LISTENER_PORT})); s.listen(); print('ok', flush=True); input()")


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def http_get(ns: Namespace, url: str) -> bytes | None:
    """GET from inside ``ns``; None when nothing answers (yet)."""
    with ns.entered():
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bytes(response.read())
        except OSError:
            return None


def prom_query(ns: Namespace, expr: str, at: float) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    body = http_get(ns, f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query?{query}")
    assert body is not None, f"Prometheus did not answer {expr}"
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


class PayloadMeter:
    """The client interfaces' payload bytes (rx_bytes − 94 × rx_packets), sampled every 50 ms
    with wall-clock times (Prometheus timestamps are wall clock)."""

    def __init__(self, lab: Lab) -> None:
        self.dev = f"/proc/{lab.client.pid}/net/dev"
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _read(self) -> dict[str, int]:
        return payload_bytes(self.dev, PATHS)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append((time.time(), self._read()))

    def at(self, t: float, iface: str) -> float:
        """Payload counter at wall time ``t``, interpolated between the samples around it."""
        for (t0, c0), (t1, c1) in itertools.pairwise(self.samples):
            if t0 <= t <= t1:
                return c0[iface] + (c1[iface] - c0[iface]) * (t - t0) / (t1 - t0)
        raise AssertionError(f"no meter samples around {t}")

    def __enter__(self) -> PayloadMeter:
        self.samples.append((time.time(), self._read()))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def prometheus_dir() -> Iterator[Path]:
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} missing: apt-get install prometheus (.ci/run installs it)", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="mptop-prometheus-") as tmp:
        yield Path(tmp)


def start_prometheus(lab: Lab, directory: Path) -> subprocess.Popen[bytes]:
    config = directory / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        f"scrape_configs: [{{job_name: mptop, static_configs: [{{targets: ['127.0.0.1:{EXPORT_PORT}']}}]}}]\n")
    log = (directory / "prometheus.log").open("wb")
    try:
        return lab.popen(lab.client, ["prometheus", f"--config.file={config}",
                                      f"--storage.tsdb.path={directory / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"],
                         stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_prometheus_scraping_export_sees_each_paths_bytes_and_every_dashboard_query(
        make_lab: Any, prometheus_dir: Path) -> None:
    lab: Lab = make_lab(rate_mbit={"wlan0": 80, "wwan0": 20})
    procs: list[subprocess.Popen[Any]] = []
    try:
        listener = lab.popen(lab.client, [sys.executable, "-c", LISTENER], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
        procs.append(listener)
        assert listener.stdout is not None and listener.stdout.readline() == b"ok\n"
        procs.append(lab.popen(lab.client, [sys.executable, "-m", "mptop", "export",
                                            "--listen", f"127.0.0.1:{EXPORT_PORT}"]))
        metrics_url = f"http://127.0.0.1:{EXPORT_PORT}/metrics"
        wait_for("the exporter", lambda: http_get(lab.client, metrics_url))
        procs.append(start_prometheus(lab, prometheus_dir))
        wait_for("Prometheus", lambda: http_get(lab.client, f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready"))
        wait_for("Prometheus scraping the exporter",
                 lambda: prom_query(lab.client, 'up{job="mptop"} == 1', time.time()))
        with PayloadMeter(lab) as meter:
            download = lab.popen(lab.client, ["mptcpize", "run", "curl", "-s", "-o", "/dev/null",
                                              lab.url(400_000_000)])
            procs.append(download)
            both = wait_for("data on both paths", lambda: next(
                (t for t, c in meter.samples if all(c[i] - meter.samples[0][1][i] > 1_000_000 for i in PATHS)), None))
            wait_for("a full window of both paths", lambda: time.time() > both + WINDOW_S + 3, WINDOW_S + 30)
            at = time.time() - 1.5
            took = {t: float(v) for t, v in prom_query(
                lab.client, f'scrape_duration_seconds{{job="mptop"}}[{WINDOW_S}s]', at)[0]["values"]}
            series = prom_query(lab.client, f"mptcp_path_received_bytes_total[{WINDOW_S}s]", at)
            counters = {r["metric"]["interface"]: [(t, float(v)) for t, v in r["values"]] for r in series}
            assert sorted(r["metric"]["interface"] for r in series) == sorted(PATHS), (series, took)  # one each
            # rate() over exactly the window's scrapes (a range 1 ms longer, ending at the last one):
            # Prometheus' slope of the samples compared below, with no extrapolation past them.
            first, last = counters[PATHS[0]][0][0], counters[PATHS[0]][-1][0]
            rates = {r["metric"]["interface"]: float(r["value"][1]) for r in prom_query(
                lab.client, f"rate(mptcp_path_received_bytes_total[{round((last - first) * 1000) + 1}ms])", last)}
            wait_for("the meter past the last scrape", lambda: meter.samples[-1][0] > last + took[last])
            scrape = http_get(lab.client, metrics_url)
            assert download.poll() is None, "the download ended before the window did: make it larger"
        for iface in PATHS:
            (t0, v0), (t1, v1) = counters[iface][0], counters[iface][-1]
            values = [v for _, v in counters[iface]]
            assert values == sorted(values) and t1 - t0 > WINDOW_S - 3, counters[iface]
            # Compared over the scrapes' own span, not the window's (the rate of a shaped transfer moves
            # second to second).  Prometheus stamps a sample when its scrape starts; the exporter read the
            # kernel some moment within the scrape: the interfaces' payload between those bounds.
            low = meter.at(t1, iface) - meter.at(t0 + took[t0], iface)
            high = meter.at(t1 + took[t1], iface) - meter.at(t0, iface)
            assert low > 500_000 * (t1 - t0), (iface, low)
            assert iface in rates, (rates, scrape)
            print(f"{iface}: counter +{v1 - v0:,.0f} B, Prometheus rate {rates[iface]:,.0f} B/s over {t1 - t0:.3f} s;"
                  f" interface payload +{low:,.0f} to +{high:,.0f} B "
                  f"({(v1 - v0) / low - 1:+.2%}, {(v1 - v0) / high - 1:+.2%})")
            assert low * 0.98 <= v1 - v0 <= high * 1.02, (iface, v1 - v0, low, high)
            assert low * 0.98 <= rates[iface] * (t1 - t0) <= high * 1.02, (iface, rates, t1 - t0, low, high)
        for expr in dashboard_queries():
            query = expr.replace("$__rate_interval", f"{WINDOW_S}s").replace("$instance", ".*")
            assert prom_query(lab.client, query, at), f"no data for the dashboard's {expr}"
        assert scrape is not None
        check = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True, timeout=30)
        assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check
        series = [line for line in scrape.decode().splitlines() if line and not line.startswith("#")]
        assert len(series) < 100, len(series)                  # a two-path client: under ~100 series
        assert 'mptcp_subflows{interface="wwan0",link_type="cellular",backup="false"} 1' in series
        assert "mptcp_exporter_pm_events_subscribed 1" in series  # root in the lab: events counted
        joined = [line for line in series if line.startswith('mptcp_pm_events_total{kind="sub_established"}')]
        assert joined and int(joined[0].rsplit(" ", 1)[1]) >= 1, joined
    finally:
        for proc in reversed(procs):
            kill_quietly(proc, timeout=10)


def mptop(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    with lab.client.entered():
        return subprocess.run([sys.executable, "-m", "mptop", "export", *args], capture_output=True, text=True,
                              timeout=60)


def test_textfile_is_written_whole_for_the_textfile_collector(lab: Lab, tmp_path: Path) -> None:
    result = mptop(lab, "--textfile", str(tmp_path))
    assert result.returncode == 0 and not result.stderr, result
    assert [p.name for p in tmp_path.iterdir()] == ["mptop.prom"]      # no temporary file left
    text = (tmp_path / "mptop.prom").read_text()
    assert "mptcp_exporter_scrape_success 1\n" in text and "mptcp_enabled 1\n" in text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check


def test_textfile_every_interval_until_sigterm(lab: Lab, tmp_path: Path) -> None:
    proc = lab.popen(lab.client, [sys.executable, "-m", "mptop", "export", "--textfile", str(tmp_path),
                                  "--interval", "0.2"], stderr=subprocess.PIPE, text=True)
    try:
        target = tmp_path / "mptop.prom"
        wait_for("the first write", target.exists)
        first = target.stat().st_mtime_ns
        wait_for("a rewrite", lambda: target.stat().st_mtime_ns != first)
    finally:
        proc.terminate()
        code, err = proc.wait(30), proc.stderr.read() if proc.stderr else ""
        kill_quietly(proc)
    assert code == 0 and err == "", (code, err)         # SIGTERM: a clean stop
    assert [p.name for p in tmp_path.iterdir()] == ["mptop.prom"]


def test_mistakes_end_in_one_line_and_a_non_zero_exit(lab: Lab, tmp_path: Path) -> None:
    cases = [
        (["--interval", "5"], 2, "mptop export: --interval needs --textfile"),
        (["--textfile", str(tmp_path / "missing")], 2, "is not a directory"),
        (["--per-connection", "51"], 2, "want 0 to 50"),
        (["--listen", "nowhere"], 2, "want HOST:PORT"),
    ]
    with lab.client.entered(), socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        cases.append((["--listen", f"127.0.0.1:{port}"], 1, f"mptop export: cannot listen on 127.0.0.1:{port}"))
        results = [(mptop(lab, *args), code, text) for args, code, text in cases]
    for result, code, text in results:
        assert result.returncode == code and text in result.stderr, result
        assert "Traceback" not in result.stderr and result.stderr.strip().splitlines()[-1].count("\n") == 0
    assert list(tmp_path.iterdir()) == []

