"""Paths: labels, the --label option, local address → interface, per-path totals and shares."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mptop.core.paths import (
    InterfaceMap,
    PathBook,
    default_label,
    label_for,
    parse_label,
    parse_labels,
)
from mptop.kernel.linktype import LinkKind


@dataclass
class Itf:
    name: str
    addresses: list[str]
    up: bool = True
    running: bool = True
    ifindex: int = 0


@pytest.mark.parametrize(
    ("iface", "label"),
    [("wlan0", "Wi-Fi"), ("wlp2s0", "Wi-Fi"), ("wwan0", "Cellular"), ("rmnet_data0", "Cellular"),
     ("ccmni1", "Cellular"), ("wwp0s20f0u3i12", "Cellular"), ("usb0", "Tether"),
     ("eth0", "Ethernet"), ("enp3s0", "Ethernet"),
     ("veth7", "veth7"), ("lo", "lo")],
)
def test_default_labels(iface: str, label: str) -> None:
    assert default_label(iface) == label


def test_label_overrides_and_parsing() -> None:
    labels = parse_labels(["wwan0=Phone", "eth1 = Office LAN", "wwan0=Hotspot"])
    assert labels == {"wwan0": "Hotspot", "eth1": "Office LAN"}
    assert label_for("wwan0", labels) == "Hotspot"
    assert label_for("wlan0", labels) == "Wi-Fi"
    assert parse_label("wlan0=Home=5G") == ("wlan0", "Home=5G")
    for bad in ("wlan0", "=Wi-Fi", "wlan0=", ""):
        with pytest.raises(ValueError, match="IFACE=NAME"):
            parse_label(bad)


def test_interface_map_by_local_address() -> None:
    m = InterfaceMap.from_interfaces([
        Itf("wlan0", ["192.0.2.2/24", "2001:db8::2"]), Itf("wwan0", ["198.51.100.2"], up=False),
        Itf("eth0", ["203.0.113.2"], up=True, running=False),
    ])
    assert m.iface_for("192.0.2.2") == "wlan0"
    assert m.iface_for("::ffff:192.0.2.2") == "wlan0"
    assert m.iface_for("2001:0db8:0::2") == "wlan0"
    assert m.iface_for("198.51.100.2") == "wwan0"
    assert m.iface_for("203.0.113.9") == "203.0.113.9"      # unknown: the address is the key
    assert m.link_up == {"wlan0": True, "wwan0": False, "eth0": False}   # no carrier is down too


def test_path_book_shares_and_closed_subflow_bytes_stay() -> None:
    book = PathBook({"wwan0": "Phone"})
    book.begin_poll({"wlan0": True, "wwan0": True})
    book.add_bytes("wlan0", 4_000)
    book.add_live_subflow("wlan0", 32_000.0)
    book.add_bytes("wwan0", 1_000)
    book.add_live_subflow("wwan0", 8_000.0)
    first = book.samples()
    assert first["wlan0"].share == pytest.approx(0.8)
    assert first["wwan0"].share == pytest.approx(0.2)
    assert first["wwan0"].label == "Phone" and first["wlan0"].label == "Wi-Fi"
    # Next poll: the cellular subflow closed (its last bytes still arrive), Wi-Fi link went down.
    book.begin_poll({"wlan0": False, "wwan0": True})
    book.add_bytes("wwan0", 500)
    book.add_bytes("wlan0", 2_000)
    book.add_live_subflow("wlan0", 16_000.0)
    second = book.samples()
    assert second["wwan0"].bytes == 1_500 and second["wwan0"].subflows == 0
    assert second["wwan0"].rate_bps == 0.0 and second["wwan0"].share == 0.0
    assert second["wlan0"].bytes == 6_000 and second["wlan0"].share == 1.0
    assert second["wlan0"].link_up is False


def test_path_book_no_rate_no_share() -> None:
    book = PathBook()
    book.begin_poll({})
    book.add_live_subflow("192.0.2.2", 0.0)
    sample = book.samples()["192.0.2.2"]
    assert sample.share == 0.0 and sample.link_up is None and sample.label == "192.0.2.2"


def test_path_book_names_paths_from_the_kernels_evidence() -> None:
    """A tether named like Ethernet (enp0s20f0u1) and a modem with an udev name are labelled by
    their type; a path first seen before its interface was classified is renamed; --label wins."""
    kinds = {"enp0s20f0u1": LinkKind("tether", "driver rndis_host"), "wwx0c5b8f279a64": LinkKind("cellular", "x"),
             "eth1": LinkKind("wifi", "DEVTYPE=wlan"), "bnep0": LinkKind("bluetooth", "x")}
    book = PathBook({"bnep0": "Phone BT"})
    book.begin_poll({})
    book.add_bytes("eth1", 10)
    assert book.samples()["eth1"].link_type == "ethernet"        # from its name until the kernel said
    itfs = InterfaceMap.from_interfaces([Itf(name, [], ifindex=i) for i, name in enumerate(kinds)],
                                        lambda name, ifindex: kinds[name])
    book.begin_poll(itfs.link_up, itfs.kinds)
    for name in kinds:
        book.add_bytes(name, 10)
    got = {name: (s.label, s.link_type) for name, s in book.samples().items()}
    assert got == {"enp0s20f0u1": ("Tether", "tether"), "wwx0c5b8f279a64": ("Cellular", "cellular"),
                   "eth1": ("Wi-Fi", "wifi"), "bnep0": ("Phone BT", "bluetooth")}
    assert book.label("wwx0c5b8f279a64") == "Cellular" and book.label("veth3") == "veth3"
