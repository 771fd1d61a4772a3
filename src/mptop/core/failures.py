"""Turn whatever a download raised into one plain line that names the cause.

:func:`describe` knows aiohttp's exception tree, the socket and file errnos, and mptop's own
:class:`TransferError` (raised with its final wording already).  It never returns more than one
line and never a traceback: anything unforeseen becomes ``"<ExceptionType>: <message>"``.  What the
server said (a reason phrase, a Location) has its control characters escaped.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import TYPE_CHECKING, NamedTuple

from mptop.core.safe_text import escape_controls

if TYPE_CHECKING:
    import aiohttp

# aiohttp and ssl are imported where a failure is described, not with TransferError: the checks made
# before the TUI's first frame (-o) raise it, and must not wait for aiohttp (bench/startup.py).


class TransferError(Exception):
    """An expected failure whose message is already the plain line to show."""


class FailureContext(NamedTuple):
    """What the transfer knew when it failed: the wording depends on it."""

    host: str = ""
    received: int = 0                  # bytes of the file received so far (incl. a resumed prefix)
    total: int | None = None           # the whole file's length, when the server said
    connect_timeout: float | None = None
    idle_timeout: float | None = None
    max_redirects: int | None = None


NOTHING_KNOWN = FailureContext()     # describe() without a transfer's context


# Errnos of file operations: (with the file's name, without it).
_FILE_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("disk full writing {}", "disk full"),
    errno.EDQUOT: ("disk quota exceeded writing {}", "disk quota exceeded"),
    errno.EACCES: ("permission denied: {}", "permission denied"),
    errno.EPERM: ("permission denied: {}", "operation not permitted"),
    errno.EROFS: ("read-only file system: {}", "read-only file system"),
    errno.EISDIR: ("{} is a directory", "is a directory"),
    errno.ENOTDIR: ("not a directory: {}", "not a directory"),
    errno.ENOENT: ("no such file or directory: {}", "no such file or directory"),
    errno.ENAMETOOLONG: ("file name too long: {}", "file name too long"),
}

# Errnos of connection attempts.
_CONNECT_ERRNOS: dict[int, str] = {
    errno.ECONNREFUSED: "connection refused",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "no route to host",
    errno.ETIMEDOUT: "timed out connecting",
    errno.ECONNRESET: "connection reset while connecting",
    errno.EADDRNOTAVAIL: "no local address to connect from",
}


def describe(exc: BaseException, ctx: FailureContext = NOTHING_KNOWN) -> str:
    """One plain line for ``exc`` (see the module docstring).  Never raises: an exception object
    that lacks what its class promises (aiohttp's ``NonHttpUrlRedirectClientError`` has no
    ``url``), or whose ``str()`` fails, still gives a line."""
    try:
        line = _describe(exc, ctx)
    except Exception:
        line = _unforeseen(exc)
    return escape_controls(" ".join(str(line).split()) or type(exc).__name__)   # one safe line, never empty


def _unforeseen(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:
        message = ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _describe(exc: BaseException, ctx: FailureContext) -> str:
    import aiohttp

    if isinstance(exc, TransferError):
        return str(exc)
    if isinstance(exc, aiohttp.ClientError):
        return _client_error(exc, ctx)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return _timeout_line(ctx)
    if isinstance(exc, OSError):
        return _os_error(exc, ctx)
    if isinstance(exc, asyncio.CancelledError):
        return "interrupted"
    return _unforeseen(exc)


def _client_error(exc: aiohttp.ClientError, ctx: FailureContext) -> str:
    import aiohttp
    from aiohttp.http_exceptions import HttpProcessingError

    # Order matters: aiohttp's classes inherit from each other and from OSError/ssl errors.
    if isinstance(exc, aiohttp.TooManyRedirects):
        return f"too many redirects (more than {ctx.max_redirects})" if ctx.max_redirects else "too many redirects"
    if isinstance(exc, aiohttp.ClientResponseError):
        if isinstance(exc.__cause__, HttpProcessingError):   # aiohttp's parser refused the answer
            return f"the server's answer is not valid HTTP ({exc.message})"
        return f"HTTP {exc.status} {exc.message}".rstrip()
    if isinstance(exc, aiohttp.NonHttpUrlRedirectClientError):   # has no .url: the URL is its only arg
        return f"redirected to an unsupported URL: {_first_arg(exc)} (http and https only)"
    if isinstance(exc, aiohttp.NonHttpUrlClientError):
        return f"unsupported URL scheme: {_first_arg(exc)} (http and https only)"
    if isinstance(exc, aiohttp.InvalidUrlRedirectClientError):
        return f"redirected to a malformed URL: {exc.url}"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"malformed URL: {exc.url}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _certificate_line(exc)
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return _tls_line(exc.host, exc.port, exc.os_error)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return _dns_line(exc.host, exc.os_error)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _connect_line(exc, ctx)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return _timeout_line(ctx, connecting=True)
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return _timeout_line(ctx)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _body_cut_line(exc, ctx)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection without answering"
    if isinstance(exc, (aiohttp.ClientConnectionResetError, ConnectionResetError)):
        return _reset_line(ctx)
    if isinstance(exc, aiohttp.ClientOSError):
        return _os_error(exc, ctx)
    return _unforeseen(exc)


def _first_arg(exc: BaseException) -> object:
    return exc.args[0] if exc.args else "?"


def _certificate_line(exc: aiohttp.ClientConnectorCertificateError) -> str:
    cert = exc.certificate_error
    why = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or str(cert)
    return f"TLS certificate of {exc.host} not accepted: {why} (--insecure skips the check)"


def _tls_line(host: str, port: int | None, error: BaseException) -> str:
    why = getattr(error, "reason", None)
    detail = f" ({why.replace('_', ' ').lower()})" if isinstance(why, str) else ""
    return f"TLS handshake with {host}:{port} failed{detail} — is this an https port?"


def _dns_line(host: str, error: OSError) -> str:
    if error.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
        return f"unknown host {host}"
    if error.errno == socket.EAI_AGAIN:
        return f"unknown host {host} (no DNS server answered)"
    return f"cannot resolve {host}: {error.strerror or error}"


def _connect_line(exc: aiohttp.ClientConnectorError, ctx: FailureContext) -> str:
    import ssl

    from mptop.kernel.types import MptcpUnavailable

    error = exc.os_error
    if isinstance(error, MptcpUnavailable):
        return f"MPTCP required but unavailable: {error.reason}"
    if isinstance(error, ssl.SSLError):
        return _tls_line(exc.host, exc.port, error)
    where = f"{exc.host}:{exc.port}"
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)) and error.errno is None:
        return _timeout_line(ctx, connecting=True)
    what = _CONNECT_ERRNOS.get(error.errno or 0)
    if what:
        return f"{what} ({where})"
    return f"cannot connect to {where}: {error.strerror or error}"


def _timeout_line(ctx: FailureContext, connecting: bool = False) -> str:
    if connecting:
        after = f" after {ctx.connect_timeout:g} s" if ctx.connect_timeout else ""
        return f"timed out connecting to {ctx.host or 'the server'}{after}"
    idle = f"{ctx.idle_timeout:g} s" if ctx.idle_timeout else "too long"
    return f"no data from the server for {idle} (idle timeout){_progress(ctx)}"


def _progress(ctx: FailureContext) -> str:
    if not ctx.received and ctx.total is None:
        return ""
    return f" after {ctx.received} of {ctx.total if ctx.total is not None else '?'} bytes"


def _body_cut_line(exc: aiohttp.ClientPayloadError, ctx: FailureContext) -> str:
    # aiohttp names the connection error only inside the message ("... ConnectionResetError(104, ...)")
    if "ConnectionResetError" in str(exc) or _caused_by(exc, ConnectionResetError):
        return _reset_line(ctx)
    return f"connection closed{_progress(ctx)}"


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reset_line(ctx: FailureContext) -> str:
    return f"connection reset by the server{_progress(ctx)}"


def _os_error(exc: OSError, ctx: FailureContext) -> str:
    if isinstance(exc, FileExistsError) and exc.filename:
        return f"{exc.filename} exists — use --force"
    if exc.errno == errno.ECONNRESET:
        return _reset_line(ctx)
    if exc.errno in _CONNECT_ERRNOS:
        return _CONNECT_ERRNOS[exc.errno]
    if exc.errno in _FILE_ERRNOS:
        named, bare = _FILE_ERRNOS[exc.errno]
        return named.format(exc.filename) if exc.filename else bare
    if exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return _unforeseen(exc)
