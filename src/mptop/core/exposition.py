"""The Prometheus text exposition format (version 0.0.4), written by hand.

::

    out = Exposition()
    fam = out.family("mptcp_path_received_bytes_total", "counter", "Payload bytes received per path.")
    fam.add(1234, interface="wlan0", link_type="wifi")
    text = out.render()                          # "# HELP …\\n# TYPE …\\nmptcp_path_…{…} 1234\\n"

Why not ``prometheus-client``: the exporter's metric set is fixed and rebuilt from the kernel at
every scrape, so the library would only be used for its custom-collector API and this writer (≈60
lines); it would be the project's first new runtime dependency for that.  ``promtool check
metrics`` validates what this writes (tests/core/test_export_lab.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["counter", "gauge", "histogram"]


def escape_label(value: str) -> str:
    """A label value as the format wants it: backslash, double quote and newline escaped; any other
    control character (from the network: interface names are the only free text) as ``\\xNN``-free
    ``?`` — the format has no escape for them."""
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "".join(c if c >= " " and c != "\x7f" else "?" for c in out)


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


@dataclass(slots=True)
class Family:
    """One metric family: its samples in insertion order.  ``name`` is the full sample name (a
    counter's ends in ``_total``: in the 0.0.4 format TYPE names the samples exactly); histograms
    add ``_bucket``/``_sum``/``_count`` themselves."""

    name: str
    type: MetricType
    help: str
    lines: list[str] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        self.lines.append(f"{self.name}{_labels(labels.items())} {_number(value)}")

    def add_histogram(self, bounds: Sequence[float], buckets: Sequence[int], total: float, **labels: str) -> None:
        """``buckets``: cumulative counts, one per bound, then the +Inf count (= the count)."""
        base = list(labels.items())
        for bound, count in zip([*bounds, math.inf], buckets, strict=True):
            self.lines.append(f"{self.name}_bucket{_labels([*base, ('le', _number(float(bound)))])} {count}")
        self.lines.append(f"{self.name}_sum{_labels(base)} {_number(float(total))}")
        self.lines.append(f"{self.name}_count{_labels(base)} {buckets[-1]}")


class Exposition:
    """Families in the order they were created; :meth:`render` writes every one (empty ones too,
    so a scrape always names every metric it can emit)."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}

    def family(self, name: str, type: MetricType, help: str) -> Family:
        if name in self.families:
            raise ValueError(f"metric {name} defined twice")
        fam = self.families[name] = Family(name, type, help)
        return fam

    def series(self) -> int:
        """How many samples a scrape carries (histogram buckets, sums and counts included)."""
        return sum(len(f.lines) for f in self.families.values())

    def render(self) -> str:
        out: list[str] = []
        for fam in self.families.values():
            out.append(f"# HELP {fam.name} {fam.help.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
            out.append(f"# TYPE {fam.name} {fam.type}")
            out.extend(fam.lines)
        return "\n".join(out) + "\n"
