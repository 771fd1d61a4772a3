"""core.history: the one time series of the charts and sparklines keeps its window and no more."""

from __future__ import annotations

from mptop.core.history import MARGIN_S, History


def test_points_older_than_the_window_and_its_margin_leave() -> None:
    history = History(window_s=2.0)
    for i in range(100):
        history.add(i * 0.5, float(i))
    assert history.points[-1] == (49.5, 99.0)
    assert history.points[0] == (49.5 - 2.0 - MARGIN_S, 93.0)      # the oldest point still kept
    assert len(history.points) == 7


def test_a_gap_empties_the_series_but_the_newest_point() -> None:
    history = History(window_s=30.0)
    history.add(0.0, 1.0)
    history.add(10.0, 2.0)
    history.add(100.0, 3.0)
    assert list(history.points) == [(100.0, 3.0)]
