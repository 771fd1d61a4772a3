"""TLS servers in tests: a throwaway self-signed certificate (one day), and the lab server's routes
served over HTTPS from a listening socket of the test's choosing (loopback, or an MPTCP socket made
in the lab's server namespace)."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from mptop.lab.server import make_app


def self_signed_server_context(directory: Path) -> ssl.SSLContext:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


@asynccontextmanager
async def https_lab_routes(sock: socket.socket, directory: Path) -> AsyncIterator[int]:
    """The lab server's routes over HTTPS on ``sock`` (bound and listening) in this event loop: its port."""
    runner = web.AppRunner(make_app(), handle_signals=False)
    await runner.setup()
    try:
        await web.SockSite(runner, sock, ssl_context=self_signed_server_context(directory)).start()
        yield sock.getsockname()[1]
    finally:
        await runner.cleanup()
