"""`mptop doctor`: is MPTCP really usable here, and the exact fix where it is not.

Each check reads the kernel through :mod:`mptop.kernel` (in the calling thread's network namespace) and gives
one :class:`Check`: ✓ ok, ✗ a problem with the command that fixes it, – not applicable / for information.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Literal

from mptop.kernel import host, pm
from mptop.kernel.types import EndpointFlag, NeedsNetAdmin

Verdict = Literal["ok", "fail", "info"]
MARKS = {"ok": "✓", "fail": "✗", "info": "–"}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)


def check_kernel() -> Check:
    features = host.kernel_features()
    version = ".".join(map(str, features.version))
    if not features.mptcp:
        return Check("kernel", "fail", f"Linux {version} has no MPTCP (needs ≥ 5.6; mptop needs ≥ 5.16)",
                     "upgrade the kernel to 5.16 or newer (6.5+ for full per-subflow data)")
    got = [name for name, on in (("per-subflow sockopts", features.sockopt_info), ("MPTCP_FULL_INFO",
           features.full_info), ("TCP_IS_MPTCP", features.tcp_is_mptcp), ("path-manager events",
           features.pm_events)) if on]
    missing = "" if features.full_info else " — per-subflow detail is limited below 6.5"
    return Check("kernel", "ok", f"Linux {version}: {', '.join(got) or 'basic MPTCP'}{missing}")


def check_enabled(sysctls: dict[str, str]) -> Check:
    if not sysctls:
        return Check("enabled", "fail", "no net.mptcp sysctls: this kernel is built without MPTCP",
                     "use a kernel with CONFIG_MPTCP=y (and CONFIG_MPTCP_IPV6=y)")
    if sysctls.get("enabled") != "1":
        return Check("enabled", "fail", "net.mptcp.enabled = 0: MPTCP is switched off",
                     "sysctl -w net.mptcp.enabled=1  (persist: echo net.mptcp.enabled=1 > /etc/sysctl.d/90-mptcp.conf)")
    return Check("enabled", "ok", "net.mptcp.enabled = 1")


def check_socket() -> Check:
    ok, reason = host.mptcp_socket_available()
    if ok:
        return Check("socket", "ok", "an MPTCP socket can be created")
    return Check("socket", "fail", reason, "sysctl -w net.mptcp.enabled=1" if "enabled" in reason else None)


def check_path_manager(sysctls: dict[str, str]) -> Check:
    manager = host.path_manager(sysctls) or "?"
    scheduler = sysctls.get("scheduler", "default")
    if manager == "userspace" and not host.process_running("mptcpd"):
        return Check("path manager", "fail", "userspace path manager selected but no mptcpd is running: "
                     "no extra subflow will ever be created", "systemctl start mptcpd  (or: sysctl -w "
                     "net.mptcp.path_manager=kernel)")
    return Check("path manager", "ok", f"{manager} path manager, scheduler {scheduler}")


def check_limits(endpoint_count: int) -> Check:
    try:
        limits = pm.get_limits()
    except (OSError, pm.PathManagerUnavailable) as exc:
        return Check("limits", "info", f"cannot read limits: {exc}")
    fix = "ip mptcp limits set subflows 2 add_addr_accepted 2"
    text = f"subflows {limits.subflows}, add_addr_accepted {limits.add_addr_accepted}"
    if limits.subflows == 0:
        return Check("limits", "fail", f"{text}: no additional subflow is allowed", fix)
    if limits.add_addr_accepted == 0:
        return Check("limits", "fail", f"{text}: addresses the server announces (ADD_ADDR) are ignored — "
                     "a client needs add_addr_accepted ≥ 1 to use them", fix)
    if limits.subflows < endpoint_count:
        return Check("limits", "fail", f"{text}: fewer subflows allowed than subflow endpoints ({endpoint_count})",
                     f"ip mptcp limits set subflows {endpoint_count} "
                     f"add_addr_accepted {max(2, limits.add_addr_accepted)}")
    return Check("limits", "ok", text)


def _usable(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast)


def check_endpoints() -> tuple[list[Check], int]:
    """One line per interface that is up and has an address: does it have a `subflow` endpoint with `dev`?"""
    try:
        endpoints = pm.list_endpoints()
    except (OSError, pm.PathManagerUnavailable) as exc:
        return [Check("endpoints", "info", f"cannot list endpoints: {exc}")], 0
    by_address = {e.address: e for e in endpoints}
    checks: list[Check] = []
    up = [i for i in host.interfaces() if i.up and i.running and any(_usable(a) for a in i.addresses)]
    primary = host.default_route_interface()
    for iface in up:
        addrs = [a for a in iface.addresses if _usable(a)]
        endpoint = next((by_address[a] for a in addrs if a in by_address), None)
        if endpoint is None and iface.name == primary:
            checks.append(Check(f"endpoint {iface.name}", "ok", f"{iface.name} carries the default route: "
                                "initial subflows leave from it, no endpoint needed"))
        elif endpoint is None:
            checks.append(Check(f"endpoint {iface.name}", "fail" if len(up) > 1 else "info",
                                f"{iface.name} ({addrs[0]}) has no MPTCP endpoint: no subflow will leave from it",
                                f"ip mptcp endpoint add {addrs[0]} dev {iface.name} subflow"))
        elif not endpoint.flags & (EndpointFlag.SUBFLOW | EndpointFlag.SIGNAL):
            checks.append(Check(f"endpoint {iface.name}", "fail", f"endpoint {endpoint.id} on {iface.name} has "
                                "neither `subflow` nor `signal`", f"ip mptcp endpoint change id {endpoint.id} subflow"))
        elif endpoint.flags & EndpointFlag.SUBFLOW and not endpoint.ifindex:
            checks.append(Check(f"endpoint {iface.name}", "fail", f"endpoint {endpoint.id} ({endpoint.address}) "
                                "has no `dev`: its subflows need source routing", f"ip mptcp endpoint delete id "
                                f"{endpoint.id} && ip mptcp endpoint add {endpoint.address} dev {iface.name} subflow"))
        else:
            flags = ", ".join(f.name.lower() for f in EndpointFlag if f in endpoint.flags and f.name)
            checks.append(Check(f"endpoint {iface.name}", "ok", f"{endpoint.address} id {endpoint.id} ({flags})"))
    if not up:
        checks.append(Check("endpoints", "info", "no interface with a usable address is up"))
    subflow_endpoints = sum(1 for e in endpoints if e.flags & EndpointFlag.SUBFLOW)
    return checks, subflow_endpoints


def check_rp_filter() -> Check:
    strict = []
    default_all = host.sysctl("net.ipv4.conf.all.rp_filter") or "0"
    for iface in host.interfaces():
        value = max(int(default_all), int(host.sysctl(f"net.ipv4.conf.{iface.name}.rp_filter") or 0))
        if value == 1 and iface.name != "lo":
            strict.append(iface.name)
    if strict:
        return Check("rp_filter", "fail", f"strict reverse-path filtering on {', '.join(strict)} drops "
                     "subflows that arrive on another interface", "sysctl -w net.ipv4.conf.all.rp_filter=2 "
                     + " ".join(f"net.ipv4.conf.{i}.rp_filter=2" for i in strict))
    return Check("rp_filter", "ok", "no strict rp_filter")


def check_endpoint_managers() -> Check:
    managers = [name for name in ("mptcpd", "NetworkManager") if host.process_running(name)]
    if len(managers) > 1:
        return Check("endpoint managers", "fail", "mptcpd and NetworkManager both manage MPTCP endpoints and "
                     "fight over them", "disable one: nmcli connection modify ID connection.mptcp-flags disabled, "
                     "or systemctl stop mptcpd")
    return Check("endpoint managers", "ok" if managers else "info",
                 f"{managers[0]} manages endpoints" if managers else "no endpoint manager running (mptcpd, "
                 "NetworkManager): endpoints are set by hand")


def check_diag() -> Check:
    from mptop.kernel import diag

    try:
        diag.dump_connections()
    except OSError as exc:
        return Check("sock_diag", "fail", f"MPTCP sock_diag unavailable ({exc.strerror or exc}): `mptop watch` "
                     "and `ss -M` cannot list connections", "load the module: modprobe mptcp_diag "
                     "(CONFIG_INET_MPTCP_DIAG)")
    return Check("sock_diag", "ok", "MPTCP sock_diag works (mptop watch, ss -M)")


def check_events() -> Check:
    from mptop.kernel.pm_events import PmEvents

    try:
        PmEvents().close()
    except NeedsNetAdmin:
        return Check("events", "info", "path-manager events need CAP_NET_ADMIN: mptop infers them from polls "
                     "(run as root to see them live)")
    except (OSError, pm.PathManagerUnavailable) as exc:
        return Check("events", "info", f"path-manager events unavailable: {exc}")
    return Check("events", "ok", "path-manager events can be subscribed to")


def run_checks() -> list[Check]:
    """The whole checklist, in the order a person would fix things."""
    sysctls = host.mptcp_sysctls()
    checks = [check_kernel(), check_enabled(sysctls), check_socket()]
    if not sysctls:
        return checks
    endpoint_checks, subflow_endpoints = check_endpoints()
    checks += [check_path_manager(sysctls), check_limits(subflow_endpoints), *endpoint_checks]
    checks += [check_rp_filter(), check_endpoint_managers(), check_diag(), check_events()]
    return checks
