"""describe(): one plain line per failure.  Network failures are covered for real in the lab
(tests/core/test_transfer.py); here the file-system ones (real errors from real files) and the wording
rules that need no network."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from mptop.core.failures import FailureContext, TransferError, describe
from mptop.core.output import OutputTarget
from mptop.core.writer import FileWriter
from mptop.kernel.types import MptcpUnavailable


def raised(action: object) -> BaseException:
    try:
        action()  # type: ignore[operator]
    except BaseException as exc:  # noqa: BLE001 - the point is to capture it
        return exc
    raise AssertionError("nothing was raised")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    missing = tmp_path / "missing" / "f"
    assert describe(raised(lambda: open(missing, "wb"))) == f"no such file or directory: {missing}"
    assert describe(raised(lambda: open(tmp_path / "dir", "wb"))) == f"{tmp_path}/dir is a directory"
    under_file = tmp_path / "file" / "f"
    assert describe(raised(lambda: open(under_file, "wb"))) == f"not a directory: {under_file}"
    exists = raised(lambda: os.mkdir(tmp_path / "dir"))
    assert describe(exists) == f"{tmp_path}/dir exists — use --force"


def test_disk_full_from_a_real_device() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    writer = FileWriter(OutputTarget("direct", "/dev/full"), force=False)
    writer.open(0)

    def write_all() -> None:
        writer.write(b"x" * (1 << 20))     # larger than the buffer: reaches the device at once
        writer.commit()

    assert describe(raised(write_all)) == "disk full writing /dev/full"
    assert describe(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) == "disk full"


def test_own_errors_and_mptcp_unavailable_pass_through() -> None:
    assert describe(TransferError("out.bin exists — use --force")) == "out.bin exists — use --force"
    reason = "MPTCP disabled on this host (net.mptcp.enabled=0)"
    assert describe(MptcpUnavailable(errno.ENOPROTOOPT, reason)) == reason


def test_http_status_and_redirect_wording() -> None:
    url = URL("http://h/x")
    info = aiohttp.RequestInfo(url=url, method="GET", headers=CIMultiDictProxy(CIMultiDict()), real_url=url)
    status = aiohttp.ClientResponseError(info, (), status=503, message="Service Unavailable")
    assert describe(status) == "HTTP 503 Service Unavailable"
    loop = aiohttp.TooManyRedirects(info, (), status=302, message="Found")
    assert describe(loop, FailureContext(max_redirects=5)) == "too many redirects (more than 5)"


def test_redirect_to_a_non_http_url_names_it() -> None:
    # aiohttp raises these with the URL as their only argument (client.py: NonHttpUrlRedirectClientError(r_url));
    # unlike InvalidURL they have no .url attribute, so reading one raised AttributeError.
    redirect = aiohttp.NonHttpUrlRedirectClientError(URL("ftp://h/f"))
    assert describe(redirect) == "redirected to an unsupported URL: ftp://h/f (http and https only)"
    scheme = aiohttp.NonHttpUrlClientError(URL("gopher://h/f"))
    assert describe(scheme) == "unsupported URL scheme: gopher://h/f (http and https only)"


def test_progress_is_part_of_cut_body_lines() -> None:
    ctx = FailureContext(received=1234, total=5000, idle_timeout=7)
    cut = aiohttp.ClientPayloadError("Response payload is not completed: <ContentLengthError: 400>")
    assert describe(cut, ctx) == "connection closed after 1234 of 5000 bytes"
    reset = aiohttp.ClientPayloadError("Response payload is not completed: <ContentLengthError>. "
                                       "ConnectionResetError(104, 'Connection reset by peer')")
    assert describe(reset, ctx) == "connection reset by the server after 1234 of 5000 bytes"
    assert describe(TimeoutError(), ctx) == "no data from the server for 7 s (idle timeout) after 1234 of 5000 bytes"
    assert describe(aiohttp.ClientPayloadError("x"), FailureContext(received=10)) == \
        "connection closed after 10 of ? bytes"


def test_anything_unforeseen_is_still_one_line() -> None:
    assert describe(ValueError("first line\nsecond   line")) == "ValueError: first line second line"
    assert "\n" not in describe(RuntimeError("a\r\nb"))


def exception_classes() -> list[type[BaseException]]:
    """Every exception class a transfer could meet: the builtins', aiohttp's, asyncio's, ssl's, ours."""
    import builtins
    import ssl

    pool = [v for v in vars(builtins).values() if isinstance(v, type) and issubclass(v, BaseException)]
    pool += [getattr(aiohttp, name) for name in aiohttp.__all__
             if isinstance(getattr(aiohttp, name), type) and issubclass(getattr(aiohttp, name), BaseException)]
    pool += [asyncio.CancelledError, asyncio.TimeoutError, ssl.SSLError, ssl.SSLCertVerificationError,
             TransferError, MptcpUnavailable]
    buildable = {c for c in pool if not issubclass(c, BaseExceptionGroup)}   # a group needs a list of exceptions
    return sorted(buildable, key=lambda c: (c.__module__, c.__qualname__))


@given(cls=st.sampled_from(exception_classes()),
       args=st.lists(st.one_of(st.text(), st.integers(), st.none()), max_size=3),
       initialised=st.booleans())
@settings(max_examples=400, deadline=None)
def test_describe_never_raises_and_is_one_line_for_any_exception(
        cls: type[BaseException], args: list[object], initialised: bool) -> None:
    """Whatever a library raises — even an object its own __init__ never set up (aiohttp's
    NonHttpUrlRedirectClientError lacks the .url its base class promises) — is one line."""
    try:
        exc = cls(*args) if initialised else cls.__new__(cls, *args)
    except Exception:
        exc = cls.__new__(cls)
    line = describe(exc, FailureContext(host="h", received=1, total=2, max_redirects=3))
    assert isinstance(line, str) and line and "\n" not in line


def test_redirect_to_another_scheme_names_the_url() -> None:
    line = describe(aiohttp.NonHttpUrlRedirectClientError("ftp://example.net/x"))
    assert line == "redirected to an unsupported URL: ftp://example.net/x (http and https only)"
