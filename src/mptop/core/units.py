"""Human-readable numbers shared by every view (TUI, console, doctor): sizes, rates, durations."""

from __future__ import annotations

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_BIT_UNITS = ("bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s")
_BYTE_RATE_UNITS = ("B/s", "kB/s", "MB/s", "GB/s", "TB/s")


def _scaled(value: float, units: tuple[str, ...], base: float) -> str:
    i = 0
    while abs(value) >= base and i < len(units) - 1:
        value /= base
        i += 1
    if i == 0:
        return f"{value:.0f} {units[0]}"
    return f"{value:.1f} {units[i]}" if abs(value) < 100 else f"{value:.0f} {units[i]}"


def format_bytes(n: int | float | None) -> str:
    """1536 -> '1.5 KiB' (binary units, as file sizes are shown)."""
    return "–" if n is None else _scaled(float(n), _BYTE_UNITS, 1024.0)


def format_rate(bps: float | None, unit: str = "bits") -> str:
    """A rate given in bits per second, shown as bit/s (decimal, like links) or bytes/s."""
    if bps is None:
        return "–"
    if unit == "bytes":
        return _scaled(bps / 8.0, _BYTE_RATE_UNITS, 1000.0)
    return _scaled(bps, _BIT_UNITS, 1000.0)


def format_duration(seconds: float | None) -> str:
    """62 -> '1m02s', 5.24 -> '5.2 s', None -> '–'."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
