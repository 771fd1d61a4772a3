"""Rate history charts drawn with Rich: a time axis (the last minute, now at the right edge) and a
scale shared by every path, so bars compare across rows.  Textual's Sparkline scales each series
to its own min..max and spreads samples by count, which would make a stalled path look busy."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style

BARS = " ▁▂▃▄▅▆▇█"          # index = eighths of a cell filled from the bottom
BASELINE = "▁"


# Column widths in seconds.  A column is a fixed slice of time (k·step .. (k+1)·step since the run
# began) that scrolls left as time passes, so a drawn column never changes once its slice is over;
# the step only changes when the chart's window outgrows ``width`` columns of the current step.
STEPS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0)
TOP_QUANTILE = 0.95           # the scale: this quantile of the columns, so one outlier does not set it
TOP_HEADROOM = 1.1


def bin_step(window: float, width: int) -> float:
    """The column width: the smallest of :data:`STEPS` that fits ``window`` into ``width`` columns."""
    need = window / max(width, 1)
    return next((step for step in STEPS if step >= need - 1e-9), need)


def buckets(points: Sequence[tuple[float, float]], now: float, window: float, width: int) -> list[float | None]:
    """The mean value per column, the rightmost being the slice holding ``now``; None before the
    first point.  Columns without a point of their own (charts wider than the sample rate) carry
    the previous column's value, so the line has no holes.
    """
    if width <= 0:
        return []
    step = bin_step(window, width)
    first = math.floor(now / step + 1e-9) - width + 1
    sums = [0.0] * width
    counts = [0] * width
    for t, value in points:
        index = math.floor(t / step + 1e-9) - first
        if 0 <= index < width:
            sums[index] += value
            counts[index] += 1
    out: list[float | None] = []
    last: float | None = None
    for total, count in zip(sums, counts, strict=True):
        if count:
            last = total / count
        out.append(last)
    return out


def robust_top(values: Sequence[float]) -> float:
    """A chart's top: the :data:`TOP_QUANTILE` of ``values`` with some headroom (0 when empty).
    A single spike is drawn clipped at the top instead of flattening everything else for a minute."""
    ordered = sorted(v for v in values if v > 0)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, math.ceil(TOP_QUANTILE * len(ordered)) - 1)
    return ordered[index] * TOP_HEADROOM


class RateChart:
    """One series as bars of ``height`` lines; zero draws a dim baseline, no data draws nothing."""

    def __init__(
        self,
        points: Sequence[tuple[float, float]],
        *,
        now: float,
        window: float,
        scale: float,
        style: Style,
        baseline: Style,
        height: int = 1,
    ) -> None:
        self.points = points
        self.now, self.window, self.scale = now, window, scale
        self.style, self.baseline = style, baseline
        self.height = max(1, height)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(8, options.max_width)     # as wide as it is allowed: more columns, finer time

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        values = buckets(self.points, self.now, self.window, width)
        eighths = self.height * 8
        levels: list[int | None] = []
        for value in values:
            if value is None:
                levels.append(None)
                continue
            filled = round(value / self.scale * eighths) if self.scale > 0 else 0
            levels.append(max(1 if value > 0 else 0, min(eighths, filled)))
        for row in reversed(range(self.height)):
            line: list[Segment] = []
            for level in levels:
                if level is None:
                    line.append(Segment(" "))
                elif level == 0:
                    line.append(Segment(BASELINE if row == 0 else " ", self.baseline))
                else:
                    line.append(Segment(BARS[max(0, min(8, level - row * 8))], self.style))
            yield from Segment.simplify(line)
            yield Segment.line()
