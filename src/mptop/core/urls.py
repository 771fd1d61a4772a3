"""The URLs mptop accepts: http:// and https:// with a host, and a hint when the scheme is missing."""

from __future__ import annotations

from yarl import URL

from mptop.core.failures import TransferError


def parse_url(url: str) -> URL:
    """``url`` as yarl parses it, or :class:`TransferError` with the line to show."""
    if url and _lacks_scheme(url):
        raise TransferError(f"no scheme: did you mean http://{url}?")
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise TransferError(f"malformed URL: {url} ({str(exc).lower()})") from None
    if not parsed.scheme:
        raise TransferError(f"malformed URL: {url or '(empty)'} (no http:// or https://)")
    if parsed.scheme not in ("http", "https"):
        raise TransferError(f"unsupported URL scheme '{parsed.scheme}' in {url} (http and https only)")
    if not parsed.host:
        raise TransferError(f"malformed URL: {url} (no host)")
    return parsed


def _lacks_scheme(url: str) -> bool:
    """``example.com/x``, ``10.78.1.2:8080/x``, ``localhost:8080``: a host where the scheme should be
    (yarl would read ``10.78.1.2`` as a scheme).  ``mailto:a@b.c`` names a scheme, just not ours."""
    if "://" in url:
        return False
    head, colon, rest = url.partition(":")
    if not colon:
        return True
    port = rest.split("/", 1)[0]
    return "." in head or head.startswith("[") or port.isdigit()
