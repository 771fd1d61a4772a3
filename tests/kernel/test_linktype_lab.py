"""Link types in the lab: sysfs evidence bind-mounted over a veth's files, read by `mptop get --json`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mptop.kernel.linktype import LINK_LABELS
from tests.kernel.test_linktype import REAL_DEVICES, device

pytestmark = pytest.mark.lab

SIZE = 2_000_000


def get_paths(lab, script_before: str) -> tuple[dict[str, dict], dict]:
    """Run ``mptop get --json`` in the client netns inside a private mount namespace (a fresh sysfs:
    it shows the netns of whoever mounts it), after ``script_before``; the last sample's paths and
    the host record."""
    script = (f"set -e; mount --make-rprivate /; mount -t sysfs sysfs /sys; {script_before}"
              f'exec "$0" -m mptop get --json -o /dev/null {lab.url(SIZE)}')
    with lab.client.entered():
        result = subprocess.run(["unshare", "-m", "sh", "-c", script, sys.executable],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    samples = [r for r in records if r["type"] == "sample" and r["paths"]]
    return samples[-1]["paths"], records[0]


def test_a_veth_named_eth1_with_wlan_evidence_is_wifi(lab, tmp_path: Path) -> None:
    lab.ip_batch(lab.client, ["link set wlan0 down", "link set wlan0 name eth1", "link set eth1 up"])
    ifindex = json.loads(lab.run(lab.client, ["ip", "-j", "link", "show", "eth1"]).stdout)[0]["ifindex"]
    # No evidence: a veth has no driver and no DEVTYPE, so its name says Ethernet.
    paths, host = get_paths(lab, "")
    assert {i: (p["link_type"], p["label"]) for i, p in paths.items()} == {
        "eth1": ("ethernet", "Ethernet"), "wwan0": ("cellular", "Cellular")}
    assert host["link_types"]["eth1"] == "ethernet"
    # The kernel's word for a Wi-Fi device (uevent DEVTYPE=wlan) wins over the name.
    uevent = tmp_path / "uevent"
    uevent.write_text(f"DEVTYPE=wlan\nINTERFACE=eth1\nIFINDEX={ifindex}\n")
    paths, host = get_paths(lab, f"mount --bind {uevent} /sys/class/net/eth1/uevent; ")
    assert {i: (p["link_type"], p["label"]) for i, p in paths.items()} == {
        "eth1": ("wifi", "Wi-Fi"), "wwan0": ("cellular", "Cellular")}
    assert host["labels"]["eth1"] == "Wi-Fi" and host["link_types"]["eth1"] == "wifi"
    assert sum(p["bytes"] for p in paths.values()) >= SIZE


def test_the_hosts_sysfs_is_not_read_for_a_namespaces_device(lab) -> None:
    """Without its own sysfs the client netns sees the host's /sys/class/net: a host device with the
    name of a lab interface (here: lo, ifindex 1 in both) is read only when it is the same device."""
    from mptop.kernel.linktype import classify

    with lab.client.entered():
        kind = classify("lo")
    assert kind.type == "other"
    host_devices = {p.name for p in Path("/sys/class/net").iterdir()}
    with lab.client.entered():
        for name in host_devices - {"lo"}:
            assert "another network namespace" in classify(name).evidence


DEVICES = {name: (kwargs, expected) for name, kwargs, expected in REAL_DEVICES}
PAIRS = [("wwp0s20f0u3i12", "enp0s20f0u1"), ("wwx0c5b8f279a64", "enx0a1b2c3d4e5f"), ("ppp0", "bnep0"),
         ("wlp0s20f3", "wwan0"), ("eth0", "enp3s0")]


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=["-".join(p) for p in PAIRS])
def test_get_json_names_real_devices_from_their_sysfs(lab, tmp_path: Path, first: str, second: str) -> None:
    """The lab's two veths renamed as real devices, a synthetic sysfs of those devices (with the veths'
    own ifindex and MAC) bind-mounted over /sys: `mptop get --json` gives each path its type and label."""
    commands = []
    for old, new in (("wlan0", first), ("wwan0", second)):
        if old != new:
            commands += [f"link set {old} down", f"link set {old} name {new}", f"link set {new} up"]
    lab.ip_batch(lab.client, commands)
    links = {link["ifname"]: link for link in json.loads(lab.run(lab.client, ["ip", "-j", "link", "show"]).stdout)}
    sysfs = tmp_path / "sys"
    for name in (first, second):
        kwargs, _ = DEVICES[name]
        device(sysfs, name, **{**kwargs, "ifindex": links[name]["ifindex"], "mac": links[name]["address"]})
    paths, host = get_paths(lab, f"mount --bind {sysfs} /sys; ")
    expected = {name: (DEVICES[name][1], LINK_LABELS[DEVICES[name][1]]) for name in (first, second)}
    assert {i: (p["link_type"], p["label"]) for i, p in paths.items()} == expected
    assert {i: host["link_types"][i] for i in (first, second)} == {i: t for i, (t, _) in expected.items()}
