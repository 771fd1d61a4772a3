"""Counters into rates: synthetic counters (arithmetic only)."""

from __future__ import annotations

import pytest

from mptop.core.rates import CounterRate, Ewma, counter_delta, eta_seconds


def test_monotonic_counter_gives_delta_over_dt() -> None:
    c = CounterRate()
    assert c.update(10.0, 1_000) == 1_000          # bytes before the first look still count
    assert c.rate == 0.0                            # but give no rate (no interval yet)
    assert c.update(10.5, 6_000) == 5_000
    assert c.rate == pytest.approx(10_000.0)
    c.update(11.0, 6_000)
    assert c.rate == pytest.approx(5_000.0)        # the last second: 10.0 .. 11.0
    c.update(11.5, 6_000)
    assert c.rate == 0.0                            # 10.5 .. 11.5: nothing
    assert c.total == 6_000


def test_rate_is_the_last_second_whatever_the_poll_interval() -> None:
    # 0.25 s polls with a burst (a loss repaired: in-order bytes arrive at once) vs 1 s polls.
    fine, coarse = CounterRate(), CounterRate()
    counts = [0, 25_000, 50_000, 50_000, 150_000, 175_000, 200_000, 225_000, 250_000]
    for i, n in enumerate(counts):
        fine.update(i * 0.25, n)
        if i % 4 == 0:
            coarse.update(i * 0.25, n)
    assert fine.rate == coarse.rate == pytest.approx(100_000.0)
    fine = CounterRate()
    for i, n in enumerate(counts[:5]):
        fine.update(i * 0.25 + (0.01 if i % 2 else -0.01), n)     # jittery polls: nearest a second back
    assert fine.rate == pytest.approx(150_000 / 1.0)


def test_zero_length_interval_keeps_last_rate_and_counts_bytes_later() -> None:
    c = CounterRate()
    c.update(0.0, 0)
    c.update(1.0, 1_000)
    assert c.update(1.0, 3_000) == 0                # same clock value: no division
    assert c.rate == pytest.approx(1_000.0)
    assert c.update(0.9, 3_500) == 0                # clock never goes back, but be safe
    assert c.update(2.0, 4_000) == 3_000            # the bytes arrive with the next interval
    assert c.rate == pytest.approx(3_000.0)
    assert c.total == 4_000


def test_counter_going_backwards_is_a_reset_not_a_negative_rate() -> None:
    # A subflow id reused by a new subflow: its counter starts again from zero.
    c = CounterRate()
    c.update(0.0, 50_000)
    c.update(1.0, 80_000)
    assert c.update(2.0, 4_000) == 4_000
    assert c.rate == pytest.approx(4_000.0)         # the last second counted 4 000, not -76 000
    assert c.total == 84_000
    assert counter_delta(80_000, 4_000) == 4_000
    assert counter_delta(4_000, 80_000) == 76_000


def test_subflow_churn_totals_survive_idle() -> None:
    old, new = CounterRate(), CounterRate()
    old.update(0.0, 0)
    old.update(1.0, 10_000)
    old.idle()                                      # the subflow closed
    new.update(1.0, 0)
    new.update(2.0, 7_000)
    assert old.rate == 0.0 and old.total == 10_000
    assert old.total + new.total == 17_000


def test_a_reading_after_the_last_one_starts_a_new_window() -> None:
    # watch: a subflow's destroy broadcast gives its last value (final), and a poll's dump taken just
    # before it may still list the subflow: an update after final() divided by zero (mptop run crashed
    # with ZeroDivisionError in a loaded CI run).
    r = CounterRate()
    r.update(0.0, 0)
    r.update(1.0, 10_000)
    assert r.final(15_000) == 5_000 and r.rate == 0.0
    assert r.update(1.1, 15_000) == 0 and r.rate == 0.0         # one reading since: no interval yet
    assert r.update(2.1, 16_000) == 1_000 and r.rate == pytest.approx(1_000)
    assert r.total == 16_000


def test_ewma_is_separate_and_independent_of_interval() -> None:
    fine, coarse = Ewma(tau_s=1.0), Ewma(tau_s=1.0)
    fine.update(0.0, 0.0)
    coarse.update(0.0, 0.0)
    for i in range(1, 5):
        fine.update(i * 0.25, 100.0)
    coarse.update(1.0, 100.0)
    assert fine.value == pytest.approx(coarse.value)
    assert 0 < coarse.value < 100
    assert fine.update(1.0, 1e9) == fine.value == pytest.approx(coarse.value)  # dt = 0: unchanged


def test_eta() -> None:
    assert eta_seconds(250, 1_000, 250.0) == pytest.approx(3.0)
    assert eta_seconds(250, None, 250.0) is None
    assert eta_seconds(250, 1_000, 0.0) is None
    assert eta_seconds(2_000, 1_000, 10.0) == 0.0


def test_a_counter_read_again_after_idle_counts_and_divides_by_no_zero() -> None:
    """A subflow a poll missed (idle) that the next poll lists again: its bytes count, its rate is
    0 until a second reading gives an interval (was a ZeroDivisionError that ended `mptop run`)."""
    rate = CounterRate()
    rate.update(1.0, 1000)
    rate.update(2.0, 3000)
    rate.idle()
    assert rate.update(3.0, 5000) == 2000 and rate.rate == 0.0
    assert rate.update(4.0, 6000) == 1000 and rate.rate == 1000.0


def test_a_reading_older_than_the_final_count_is_not_a_reset() -> None:
    """A destroyed subflow's final count, then a reading taken before it (a probe listed in the
    next poll, one byte short: the FIN): counted once (it was counted twice, as a reset)."""
    rate = CounterRate()
    rate.update(1.0, 10_000)
    assert rate.final(16_671) == 6_671
    assert rate.update(2.0, 16_670) == 0 and rate.total == 16_671
