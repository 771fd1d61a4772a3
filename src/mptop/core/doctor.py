"""`mptop doctor`: is MPTCP really usable here, and the exact fix where it is not.

Each check reads the kernel through :mod:`mptop.kernel` (in the calling thread's network namespace) and gives
one :class:`Check`: ✓ ok; ✗ something that stops MPTCP (a disabled sysctl, no socket, limits of 0 with
endpoints, strict rp_filter on a second path, a fallback seen with ``--url``), with the command that fixes
it; ! advice — MPTCP works, but a path is left unused — with its command; – a note.  Only ✗ fails the run.
Every ``fix`` is one shell command that runs as printed, in the namespace the doctor looked at.
"""

from __future__ import annotations

import ipaddress
import shutil
from dataclasses import asdict, dataclass
from typing import Literal

from mptop.core.doctor_fix import NM_MPTCP_SINCE, EndpointOwner, readd_command
from mptop.kernel import host, pm
from mptop.kernel.linktype import link_kind
from mptop.kernel.types import Endpoint, EndpointFlag, NeedsNetAdmin

Verdict = Literal["ok", "fail", "advice", "info"]
MARKS = {"ok": "✓", "fail": "✗", "advice": "!", "info": "–"}


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
        return Check("enabled", "fail", "net.mptcp.enabled = 0: MPTCP is switched off (to persist the fix: "
                     "net.mptcp.enabled=1 in /etc/sysctl.d/90-mptcp.conf)", "sysctl -w net.mptcp.enabled=1")
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
        fix = ("systemctl start mptcpd" if shutil.which("mptcpd") else "sysctl -w net.mptcp.path_manager=kernel"
               if "path_manager" in sysctls else "sysctl -w net.mptcp.pm_type=0")
        return Check("path manager", "fail", "userspace path manager selected but no mptcpd is running: "
                     "no extra subflow will ever be created", fix)
    return Check("path manager", "ok", f"{manager} path manager, scheduler {scheduler}")


def check_limits(subflow_endpoints: int) -> Check:
    """✗ only when the limits stop subflows that endpoints ask for; low limits otherwise are advice."""
    try:
        limits = pm.get_limits()
    except (OSError, pm.PathManagerUnavailable) as exc:
        return Check("limits", "info", f"cannot read limits: {exc}")
    subflows, accepted = limits.subflows, limits.add_addr_accepted
    text = f"subflows {subflows}, add_addr_accepted {accepted}"
    fix = (f"ip mptcp limits set subflows {max(2, subflow_endpoints, subflows)} "
           f"add_addr_accepted {max(2, accepted)}")
    if subflows == 0 and subflow_endpoints:
        return Check("limits", "fail", f"{text}: no additional subflow is allowed, whatever the "
                     f"{subflow_endpoints} subflow endpoint(s) ask for", fix)
    if subflows == 0:
        return Check("limits", "advice", f"{text}: no additional subflow is allowed — every connection "
                     "stays on one path", fix)
    if accepted == 0 and not subflow_endpoints:
        return Check("limits", "advice", f"{text}: addresses servers announce (ADD_ADDR) are ignored and "
                     "there are no subflow endpoints — every connection stays on one path", fix)
    if subflows < subflow_endpoints:
        return Check("limits", "advice", f"{text}: fewer subflows allowed than subflow endpoints "
                     f"({subflow_endpoints})", fix)
    return Check("limits", "ok", text)


def _usable(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast)


def _flag_names(flags: EndpointFlag) -> str:
    return ", ".join(f.name.lower() for f in EndpointFlag if f in flags and f.name)


def _endpoint_check(iface: str, endpoint: Endpoint) -> Check:
    name = f"endpoint {iface}"
    flags = endpoint.flags
    if flags & EndpointFlag.IMPLICIT and not flags & (EndpointFlag.SUBFLOW | EndpointFlag.SIGNAL):
        return Check(name, "ok", f"{endpoint.address} id {endpoint.id} is implicit: the kernel made it for a "
                     "subflow towards an address the server announced (server-driven, nothing to fix)")
    readd = readd_command(endpoint, iface)
    if not flags & (EndpointFlag.SUBFLOW | EndpointFlag.SIGNAL):
        return Check(name, "advice", f"endpoint {endpoint.id} ({endpoint.address}: {_flag_names(flags) or 'no flags'})"
                     " is neither `subflow` nor `signal`: no subflow leaves from it (`ip mptcp endpoint "
                     "change` only sets backup/fullmesh, so it is re-added)", readd)
    if flags & EndpointFlag.SUBFLOW and not endpoint.ifindex:
        return Check(name, "advice", f"endpoint {endpoint.id} ({endpoint.address}) has no `dev`: its subflows "
                     "follow the main routing table, out of another interface, unless source routing is set up",
                     readd)
    return Check(name, "ok", f"{endpoint.address} id {endpoint.id} ({_flag_names(flags)})")


def check_endpoints(manager: EndpointOwner) -> tuple[list[Check], int | None]:
    """One line per interface that is up with a usable address, and the number of `subflow` endpoints
    (None when they cannot be listed).

    Advice only where a path would be left unused: an interface with a default route, besides the
    preferred one, and without an endpoint.  Interfaces without a default route (a dock's LAN, a
    VPN, the lab's links) are reached through the server's announcements or not at all: a note.
    """
    try:
        endpoints = pm.list_endpoints()
    except (OSError, pm.PathManagerUnavailable) as exc:
        return [Check("endpoints", "info", f"cannot list endpoints: {exc}")], None
    by_address = {e.address: e for e in endpoints}
    routes = host.default_routes()
    primary = host.default_route_interface()
    up = [i for i in host.interfaces() if i.up and i.running and any(_usable(a) for a in i.addresses)]
    checks: list[Check] = []
    for iface in up:
        addrs = [a for a in iface.addresses if _usable(a)]
        endpoint = next((by_address[a] for a in addrs if a in by_address), None)
        name = f"endpoint {iface.name}"
        if endpoint is not None:
            checks.append(_endpoint_check(iface.name, endpoint))
        elif iface.name == primary:
            checks.append(Check(name, "ok", f"{iface.name} carries the preferred default route (metric "
                                f"{routes[iface.name]}): initial subflows leave from it, no endpoint needed"))
        elif iface.name in routes:
            how, fix = manager.add_subflow_fix(iface.name, addrs[0])
            checks.append(Check(name, "advice", f"{iface.name} ({addrs[0]}) has a default route but no `subflow` "
                                f"endpoint: no subflow leaves from it unless a server announces an address; "
                                f"{how}", fix))
        else:
            checks.append(Check(name, "info", f"{iface.name} ({addrs[0]}): no endpoint and no default route — "
                                "subflows leave from it only where its own routes lead"))
    if not up:
        checks.append(Check("endpoints", "info", "no interface with a usable address is up"))
    subflow_endpoints = sum(1 for e in endpoints if e.flags & EndpointFlag.SUBFLOW)
    return checks, subflow_endpoints


def check_server_driven(subflow_endpoints: int | None) -> Check | None:
    """No `subflow` endpoint of its own: a client that relies on the server's ADD_ADDR (the kernel
    then adds implicit endpoints) — a working setup, said as a note.  Not when the limits ignore the
    announcements: the limits check says so, with its fix."""
    if subflow_endpoints != 0:
        return None
    try:
        limits = pm.get_limits()
    except (OSError, pm.PathManagerUnavailable):
        return None
    if limits.subflows == 0 or limits.add_addr_accepted == 0:
        return None
    announced = host.mptcp_counters().get("AddAddr", 0)
    seen = f"; {announced} announcement(s) received so far" if announced else ""
    return Check("server-driven", "info", "no `subflow` endpoints: extra subflows only towards addresses the "
                 f"server announces (ADD_ADDR){seen}")


def check_route_metrics() -> Check | None:
    """A phone tether or modem with a lower default-route metric than Wi-Fi/Ethernet (NetworkManager
    gives USB tethers Ethernet's 100, below Wi-Fi's 600): new connections start on the metered path."""
    routes = host.default_routes()
    if len(routes) < 2:
        return None
    ifindex = {i.name: i.ifindex for i in host.interfaces()}
    kinds = {name: link_kind(name, ifindex.get(name, 0)) for name in routes}
    primary = min(routes, key=lambda name: (routes[name], name))
    fixed = [name for name in routes if kinds[name].type in ("wifi", "ethernet")]
    if kinds[primary].type not in ("tether", "cellular") or not fixed:
        return None
    other = min(fixed, key=lambda name: routes[name])
    return Check("route metrics", "info", f"{primary} ({kinds[primary].label}, metric {routes[primary]}) is preferred "
                 f"over {other} ({kinds[other].label}, metric {routes[other]}): new connections start on it; give "
                 f"{other} the lower metric (NetworkManager: ipv4.route-metric) to start them there")


def check_rp_filter() -> Check:
    """Strict reverse-path filtering drops the packets of a subflow on a second path.  Only interfaces
    that are paths count — up with a usable address, and a default route or an MPTCP endpoint (of
    any kind, implicit ones included) — when there are at least two: a dock's LAN, a container
    bridge or a VPN with strict filtering carries no subflow."""
    try:
        listed = pm.list_endpoints()
    except (OSError, pm.PathManagerUnavailable):
        listed = []
    with_endpoint = {e.ifname for e in listed if e.ifname} | {e.address for e in listed}
    routes = host.default_routes()
    paths = [i.name for i in host.interfaces() if i.up and i.running and any(_usable(a) for a in i.addresses)
             and (i.name in routes or with_endpoint & {i.name, *(a.split("%")[0] for a in i.addresses)})]
    if len(paths) < 2:
        return Check("rp_filter", "ok", "fewer than two paths: reverse-path filtering cannot drop a second one")
    default_all = int(host.sysctl("net.ipv4.conf.all.rp_filter") or 0)
    strict = [name for name in paths
              if max(default_all, int(host.sysctl(f"net.ipv4.conf.{name}.rp_filter") or 0)) == 1]
    if strict:
        return Check("rp_filter", "fail", f"strict reverse-path filtering on {', '.join(strict)} drops "
                     "subflows that arrive on another interface", "sysctl -w net.ipv4.conf.all.rp_filter=2 "
                     + " ".join(f"net.ipv4.conf.{i}.rp_filter=2" for i in strict))
    return Check("rp_filter", "ok", f"no strict rp_filter on the paths ({', '.join(paths)})")


def check_endpoint_managers(manager: EndpointOwner) -> Check:
    both = manager.nm is not None and manager.nm >= NM_MPTCP_SINCE and host.process_running("mptcpd")
    if both:
        return Check("endpoint managers", "advice", "mptcpd and NetworkManager both manage MPTCP endpoints and "
                     "fight over them", "systemctl disable --now mptcpd")
    if manager.name == "ip":
        old = (f" (NetworkManager {manager.nm[0]}.{manager.nm[1]} runs, but manages MPTCP endpoints only from "
               "1.40)") if manager.nm else ""
        return Check("endpoint managers", "info", f"no endpoint manager running: endpoints are set by hand{old}")
    return Check("endpoint managers", "ok", f"{manager.name} manages endpoints")


def check_diag() -> Check:
    from mptop.kernel import diag

    try:
        diag.dump_connections()
    except OSError as exc:
        return Check("sock_diag", "advice", f"MPTCP sock_diag unavailable ({exc.strerror or exc}): `mptop "
                     "watch` and `ss -M` cannot list connections (needs CONFIG_INET_MPTCP_DIAG)", "modprobe mptcp_diag")
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
    manager = EndpointOwner.detect()
    endpoint_checks, subflow_endpoints = check_endpoints(manager)
    checks += [check_path_manager(sysctls), check_limits(subflow_endpoints or 0), *endpoint_checks]
    checks += [c for c in (check_server_driven(subflow_endpoints), check_route_metrics()) if c is not None]
    checks += [check_rp_filter(), check_endpoint_managers(manager), check_diag(), check_events()]
    return checks
