"""Peers for the throughput bench: nginx under MPTCP serving the lab's content over HTTP and
HTTPS, and a C reader (recv or SSL_read into one buffer, OpenSSL sha256) built at bench time.

nginx runs in the lab's server namespace under ``mptcpize`` (``tcp_nopush off``: with Debian's
``on`` it was about ten times slower over MPTCP), single process, serving ``/bytes/N`` from files
of the lab's deterministic content (:mod:`mptop.lab.content`), so every client's sha256 can be
checked, on port 80 and, with a throw-away self-signed certificate, 443.  Everything lives in a
temporary directory removed on exit; the process dies with the lab.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable

from mptop.lab import Lab, LabError, content

HERE = os.path.dirname(os.path.abspath(__file__))

_CONF = """\
daemon off; master_process off; worker_processes 1; user root;
pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off; sendfile on; tcp_nopush off; tcp_nodelay on; keepalive_timeout 5;
    client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
    types {{ }} default_type application/octet-stream;
    server {{
        listen 80; listen 443 ssl;
        ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;
        root {d}/www;
    }}
}}
"""


class NginxPeer:
    """``with NginxPeer(lab, sizes) as peer: peer.url(size, "https")``."""

    def __init__(self, lab: Lab, sizes: Iterable[int]) -> None:
        self.lab, self.sizes = lab, sorted(set(sizes))
        self.dir = tempfile.mkdtemp(prefix="mptop-bench-nginx-")
        self.host = lab.paths[0].server_addr

    def __enter__(self) -> NginxPeer:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        d = self.dir
        os.makedirs(f"{d}/www/bytes")
        os.makedirs(f"{d}/tmp")
        for size in self.sizes:
            with open(f"{d}/www/bytes/{size}", "wb") as f:
                for view in content.chunks(0, size):
                    f.write(view)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        f"/CN={self.host}", "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem"],
                       check=True, capture_output=True)
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(_CONF.format(d=d))
        self.proc = self.lab.popen(self.lab.server, ["mptcpize", "run", "nginx", "-p", d, "-c", f"{d}/nginx.conf"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not all(self._accepts(port) for port in (80, 443)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise LabError(f"nginx did not start: {err.strip()[-300:]}")
            time.sleep(0.05)

    def _accepts(self, port: int) -> bool:
        with self.lab.client.entered(), socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex((self.host, port)) == 0

    def __exit__(self, *exc: object) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def pin(self, cpu: int) -> None:
        """Keep nginx (and the softirq work its sends do in its context) on one CPU."""
        os.sched_setaffinity(self.proc.pid, {cpu})

    def mptcp_retransmissions(self) -> int:
        """The server namespace's ``MPTcpExt: MPTCPRetrans`` so far: data re-sent at the MPTCP level
        after the retransmission timer (each one ends a ~0.2 s stall when the client's data-level
        ACK did not come, see docs/measured.md "Idle time")."""
        with open(f"/proc/{self.proc.pid}/net/netstat") as f:
            lines = f.read().splitlines()
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            if names.startswith("MPTcpExt:"):
                return dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=False)).get("MPTCPRetrans", 0)
        return 0

    def cpu_s(self) -> float:
        """CPU seconds nginx (one process: no master) has used so far, user and system (the
        softirq work of the sends it makes is charged to it)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def url(self, size: int, scheme: str) -> str:
        return f"{scheme}://{self.host}/bytes/{size}"


def build_c_reader(workdir: str) -> tuple[str | None, str]:
    """Compile ``recv_sha256.c``: (path, "") or (None, why not)."""
    if shutil.which("gcc") is None:
        return None, "gcc not installed"
    out = os.path.join(workdir, "recv_sha256")
    proc = subprocess.run(["gcc", "-O2", "-o", out, os.path.join(HERE, "recv_sha256.c"), "-lssl", "-lcrypto"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return None, f"gcc failed (libssl-dev missing?): {proc.stderr.strip()[-200:]}"
    return out, ""
