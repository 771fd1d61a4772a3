"""The cardinality guard with real sockets: 1,000 MPTCP connections add no series."""

from __future__ import annotations

import pytest

from mptop.core.export import Exporter
from mptop.lab import Lab
from mptop.lab.loopback import loopback_connections

pytestmark = pytest.mark.lab


def count_series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def test_a_thousand_connections_do_not_change_the_series_count(lab: Lab) -> None:
    exporter = Exporter()
    try:
        with lab.client.entered():
            with loopback_connections(1):
                exporter.scrape()
                one = exporter.scrape()
            with loopback_connections(1000):
                thousand = exporter.scrape()
    finally:
        exporter.close()
    assert 'mptcp_connections{state="established"} 2\n' in one                 # both ends of each
    assert 'mptcp_connections{state="established"} 2000\n' in thousand
    assert 'mptcp_subflows{interface="lo",link_type="other",backup="false"} 2000\n' in thousand
    assert count_series(thousand) == count_series(one), (count_series(one), count_series(thousand))


def test_per_connection_series_are_the_top_n_by_bytes_named_by_a_token_hash(lab: Lab) -> None:
    exporter = Exporter(per_connection=3)
    try:
        with lab.client.entered(), loopback_connections(20) as pairs:
            for i, (client, server) in enumerate(pairs[:5]):
                client.sendall(b"x" * (100_000 * (i + 1)))
                got = 0
                while got < 100_000 * (i + 1):
                    got += len(server.recv(1 << 20))
                server.sendall(b"k")        # its DATA_ACK covers every byte: the client's acked count is final
                assert client.recv(1) == b"k"
            text = exporter.scrape()
    finally:
        exporter.close()
    totals: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith(("mptcp_connection_received_bytes_total{", "mptcp_connection_sent_bytes_total{")):
            label = line.split('connection="', 1)[1].split('"', 1)[0]
            totals[label] = totals.get(label, 0) + int(line.rsplit(" ", 1)[1])
    # Both ends of the 500 kB transfer, then one end of the 400 kB one (± the reply byte, maybe not yet acked).
    assert sorted(totals.values()) == pytest.approx([400_000, 500_000, 500_000], abs=2), totals
    assert all(len(label) == 8 and int(label, 16) >= 0 for label in totals)
    assert all("127.0.0.1" not in line for line in text.splitlines() if not line.startswith("#"))
