"""Link types from synthetic sysfs trees shaped like real devices' (mptop.kernel.linktype)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mptop.kernel.linktype import LINK_LABELS, by_name, classify, local_identity


def device(root: Path, iface: str, *, devtype: str | None = None, arphrd: int = 1, driver: str | None = None,
           bus: str = "usb", phy80211: bool = False, wireless: bool = False, ifindex: int = 5,
           mac: str = "00:1e:10:1f:00:00", parent: bool | None = None) -> Path:
    """``root/class/net/IFACE`` as the kernel lays it out: uevent, type, ifindex, address, and a
    ``device`` link to the parent (with its ``driver`` link when one is bound)."""
    net = root / "class" / "net" / iface
    net.mkdir(parents=True)
    uevent = (f"DEVTYPE={devtype}\n" if devtype else "") + f"INTERFACE={iface}\nIFINDEX={ifindex}\n"
    (net / "uevent").write_text(uevent)
    (net / "type").write_text(f"{arphrd}\n")
    (net / "ifindex").write_text(f"{ifindex}\n")
    (net / "address").write_text(f"{mac}\n")
    if driver is not None or parent:
        dev = root / "devices" / f"parent-{iface}"
        dev.mkdir(parents=True)
        (net / "device").symlink_to(dev)
        if driver is not None:
            drv = root / "bus" / bus / "drivers" / driver
            drv.mkdir(parents=True, exist_ok=True)
            (dev / "driver").symlink_to(drv)
    if phy80211:
        phy = root / "class" / "ieee80211" / "phy0"
        phy.mkdir(parents=True)
        (net / "phy80211").symlink_to(phy)
    if wireless:
        (net / "wireless").mkdir()
    return net


# (name, device kwargs, expected type): the devices named in issue 11, laid out as the kernel does.
REAL_DEVICES = [
    ("wwp0s20f0u3i12", dict(devtype="wwan", driver="cdc_mbim"), "cellular"),          # udev-named MBIM modem
    ("wwx0c5b8f279a64", dict(devtype="wwan", driver="qmi_wwan", arphrd=519), "cellular"),  # QMI, raw-IP mode
    ("enp0s20f0u1", dict(driver="rndis_host", mac="02:5e:3a:11:22:33"), "tether"),      # Android RNDIS tether
    ("enx0a1b2c3d4e5f", dict(driver="ipheth", mac="0a:1b:2c:3d:4e:5f"), "tether"),      # iPhone tether
    ("ppp0", dict(arphrd=512), "ppp"),                                                  # pppd: virtual, type 512
    ("bnep0", dict(devtype="bluetooth", parent=True), "bluetooth"),                    # PAN: parent hci0, no driver
    ("wlp0s20f3", dict(devtype="wlan", driver="iwlwifi", bus="pci", phy80211=True), "wifi"),   # Intel AX201
    ("wwan0", dict(devtype="wwan", arphrd=65534, parent=True), "cellular"),            # MHI (WWAN framework)
    ("eth0", dict(driver="virtio_net", bus="virtio"), "ethernet"),
    ("enp3s0", dict(driver="r8169", bus="pci"), "ethernet"),
]


@pytest.mark.parametrize(("iface", "kwargs", "expected"), REAL_DEVICES, ids=[d[0] for d in REAL_DEVICES])
def test_real_devices(tmp_path: Path, iface: str, kwargs: dict, expected: str) -> None:
    device(tmp_path, iface, **kwargs)
    kind = classify(iface, tmp_path, identity=None)
    assert kind.type == expected, kind.evidence


@pytest.mark.parametrize(("kwargs", "expected", "evidence"), [
    (dict(wireless=True), "wifi", "phy80211"),                          # WEXT only: a wireless/ directory
    (dict(phy80211=True, driver="mt7921e", bus="pci"), "wifi", "phy80211"),
    (dict(driver="cdc_mbim"), "cellular", "modem driver cdc_mbim"),     # no DEVTYPE: the driver alone says modem
    (dict(driver="mhi_net", bus="mhi"), "cellular", "modem driver mhi_net"),
    (dict(driver="iosm", bus="pci"), "cellular", "modem driver iosm"),
    (dict(driver="t7xx", bus="pci"), "cellular", "modem driver t7xx"),
    (dict(arphrd=519), "cellular", "raw IP"),                           # rmnet: virtual, raw IP
    (dict(driver="cdc_ncm", mac="ae:3f:00:11:22:33"), "tether", "locally administered"),   # Android NCM
    (dict(driver="cdc_ether", mac="ae:3f:00:11:22:33"), "tether", "locally administered"),
    (dict(driver="cdc_ncm", mac="00:e0:4c:68:00:01"), "ethernet", "vendor MAC"),           # a Realtek dock
    (dict(driver="mlx5_core", bus="pci", arphrd=32), "other", "type 32"),                  # InfiniBand
])
def test_each_rule(tmp_path: Path, kwargs: dict, expected: str, evidence: str) -> None:
    device(tmp_path, "enx0", **kwargs)
    kind = classify("enx0", tmp_path, identity=None)
    assert (kind.type, evidence in kind.evidence) == (expected, True), kind.evidence


def test_wifi_outranks_a_modem_and_a_tether_driver(tmp_path: Path) -> None:
    """The order of evidence: Wi-Fi before cellular before Bluetooth before PPP before tether."""
    device(tmp_path, "a", devtype="wlan", driver="cdc_mbim")
    device(tmp_path, "b", devtype="bluetooth", arphrd=512, parent=True)
    device(tmp_path, "c", arphrd=512, driver="rndis_host")
    assert [classify(i, tmp_path, identity=None).type for i in "abc"] == ["wifi", "bluetooth", "ppp"]


@pytest.mark.parametrize(("iface", "expected"), [
    ("wlan0", "wifi"), ("wwan0", "cellular"), ("wwp0s20f0u3i12", "cellular"), ("eth1", "ethernet"),
    ("usb0", "tether"), ("veth7", "other"), ("wg0", "other"), ("tun0", "other"),
])
def test_virtual_devices_fall_back_to_the_name(tmp_path: Path, iface: str, expected: str) -> None:
    """veth, tun, wireguard: no bound driver, no DEVTYPE, type 1 or 65534 — only the name is left."""
    device(tmp_path, iface, arphrd=65534 if iface[:2] in ("wg", "tu") else 1)
    kind = classify(iface, tmp_path, identity=None)
    assert kind.type == expected and "no hardware evidence" in kind.evidence
    assert by_name(iface).type == expected


def test_sysfs_of_another_namespace_is_not_trusted(tmp_path: Path) -> None:
    """A sysfs mounted in another netns shows that netns's devices: a same-named one whose ifindex or
    MAC differ from ours is someone else's, and only our interface's name is left."""
    device(tmp_path, "eth1", devtype="wlan", ifindex=3, mac="02:00:00:00:00:01")
    assert classify("eth1", tmp_path, identity=lambda _: (3, "02:00:00:00:00:01")).type == "wifi"
    for other in ((4, "02:00:00:00:00:01"), (3, "02:00:00:00:00:02"), None):
        kind = classify("eth1", tmp_path, identity=lambda _, o=other: o)   # type: ignore[misc]
        assert kind.type == "ethernet" and "another network namespace" in kind.evidence


def test_absent_interface_and_labels(tmp_path: Path) -> None:
    assert classify("wlan9", tmp_path, identity=None).type == "wifi"     # not in sysfs at all: its name
    assert LINK_LABELS["tether"] == "Tether" and by_name("veth0").label is None


def test_local_identity_reads_this_namespace() -> None:
    """Loopback: ifindex 1 and an all-zero MAC, as the kernel's sysfs spells it."""
    assert local_identity("lo") == (1, "00:00:00:00:00:00")
    assert local_identity("no-such-if0") is None
    assert classify("lo").type == "other"
