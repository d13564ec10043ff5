"""Recent recalibration: after a regime change the intervals catch up within days, from
outcomes known at the time, and in a steady regime they are left alone."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from daily_profit.modeling.conformal import needed_stretch
from daily_profit.modeling.recalibration import (
    MIN_RECENT_ROWS,
    NO_STRETCH,
    RECENT_SESSIONS,
    STRETCH_BOUNDS,
    apply_stretch,
    recent_stretches,
    stretch_for,
)

Z95 = 1.6449
LEVEL = 0.875


def _predicted_days(
    n_days: int, sd_by_day: list[float], rows: int = 300, seed: int = 0
) -> pl.DataFrame:
    """Intervals calibrated for a move of standard deviation 1; the outcomes of each day move
    with ``sd_by_day``; a quarter of the accounts do not trade (outcome 0)."""
    rng = np.random.default_rng(seed)
    start = dt.date(2025, 3, 3)
    frames = []
    for i in range(n_days):
        y = rng.normal(0.0, sd_by_day[i], rows)
        y[rng.random(rows) < 0.25] = 0.0
        day = start + dt.timedelta(days=i)
        frames.append(
            pl.DataFrame(
                {
                    "date": [day] * rows,
                    "target_end": [day + dt.timedelta(days=1)] * rows,
                    "net_profit_next_session": y,
                    "p05": np.full(rows, -Z95),
                    "p50": np.zeros(rows),
                    "p95": np.full(rows, Z95),
                }
            )
        )
    return pl.concat(frames)


def test_needed_stretch_is_the_factor_that_just_covers_the_outcome() -> None:
    q = np.array([[-2.0, 0.0, 4.0], [-2.0, 0.0, 4.0], [-2.0, 1.0, 4.0]])
    y = np.array([8.0, -1.0, 1.0])
    np.testing.assert_allclose(needed_stretch(y, q), [2.0, 0.5, 0.0])


def test_a_steady_regime_leaves_the_interval_alone() -> None:
    frame = _predicted_days(5, [1.0] * 5)
    y = frame["net_profit_next_session"].to_numpy()
    stretch = stretch_for(y, frame.select("p05", "p50", "p95").to_numpy(), LEVEL)
    # The intervals cover 90% of moves of sd 1; the level asked is 87.5%: a little narrower.
    assert 0.85 < stretch < 1.05


def test_too_few_moving_rows_say_nothing_and_the_stretch_is_bounded() -> None:
    q = np.tile([-1.0, 0.0, 1.0], (50, 1))
    assert stretch_for(np.full(50, 10.0), q, LEVEL) == NO_STRETCH
    q = np.tile([-1.0, 0.0, 1.0], (500, 1))
    assert stretch_for(np.full(500, 100.0), q, LEVEL) == STRETCH_BOUNDS[1]
    assert stretch_for(np.full(500, 0.01), q, LEVEL) == STRETCH_BOUNDS[0]


def test_after_a_regime_change_the_intervals_catch_up_within_a_week() -> None:
    # Ten calm days, then moves three times as wide as the intervals were calibrated for.
    frame = _predicted_days(25, [1.0] * 10 + [3.0] * 15)
    days = frame["date"].unique().sort().to_list()
    stretches = recent_stretches(frame, days, LEVEL, sessions=5)
    assert stretches[days[0]] == NO_STRETCH  # nothing known yet
    assert all(0.85 < stretches[d] < 1.1 for d in days[2:11])
    # Five sessions into the new regime the window holds only it.
    late = days[16:]
    assert all(2.6 < stretches[d] < 3.4 for d in late)
    rows = frame.filter(pl.col("date").is_in(late))
    s = rows["date"].replace_strict(stretches, return_dtype=pl.Float64).to_numpy()
    q = apply_stretch(rows.select("p05", "p50", "p95").to_numpy(), s)
    y = rows["net_profit_next_session"].to_numpy()
    moved = y != 0
    inside = (y >= q[:, 0]) & (y <= q[:, 2])
    unstretched = (y >= rows["p05"].to_numpy()) & (y <= rows["p95"].to_numpy())
    assert inside[moved].mean() == pytest.approx(LEVEL, abs=0.03)
    assert unstretched[moved].mean() < 0.45


def test_a_day_never_reads_an_outcome_realised_after_it() -> None:
    frame = _predicted_days(12, [1.0] * 12)
    days = frame["date"].unique().sort().to_list()
    before = recent_stretches(frame, days, LEVEL)
    # Outcomes of the last two days turn wild: every earlier day's stretch is unchanged (their
    # outcomes are realised after those days), and only the last day reads the first of them.
    wild = frame.with_columns(
        pl.when(pl.col("date") >= days[-2])
        .then(pl.col("net_profit_next_session") * 50)
        .otherwise(pl.col("net_profit_next_session"))
        .alias("net_profit_next_session")
    )
    after = recent_stretches(wild, days, LEVEL)
    assert all(after[d] == before[d] for d in days[:-1])
    assert after[days[-1]] > before[days[-1]]
    # A feature day whose outcome is realised later than D is not read on D, even if earlier.
    late = frame.with_columns(
        pl.when(pl.col("date") == days[5])
        .then(pl.col("target_end") + dt.timedelta(days=3))
        .otherwise(pl.col("target_end"))
        .alias("target_end")
    )
    assert recent_stretches(late.filter(pl.col("date") == days[5]), [days[6]], LEVEL) == {
        days[6]: NO_STRETCH
    }


def test_a_small_firm_reads_back_until_it_has_enough_moving_rows() -> None:
    """30 moving accounts a day: a week of sessions holds fewer than ``MIN_RECENT_ROWS`` moving
    rows, so the window reaches back until it has them (up to ``MAX_RECENT_SESSIONS``), rather
    than leaving the interval unstretched right after a wide regime. A firm whose week holds
    enough reads only that week."""
    # Moves twice as wide as calibrated for, 40 accounts a day (about 30 of them trade).
    small = _predicted_days(30, [2.0] * 30, rows=40)
    days = small["date"].unique().sort().to_list()
    moving = small.group_by("date").agg((pl.col("net_profit_next_session") != 0).sum())
    assert moving["net_profit_next_session"].max() * RECENT_SESSIONS < MIN_RECENT_ROWS
    stretches = recent_stretches(small, days, LEVEL)
    # A week back is not enough, seven or eight sessions are: the interval is stretched.
    assert all(1.5 < stretches[d] < 2.5 for d in days[10:])
    # With the window held to a week, the same days say nothing.
    fixed = recent_stretches(small, days, LEVEL, max_sessions=RECENT_SESSIONS)
    assert all(fixed[d] == NO_STRETCH for d in days[10:])
    # Never beyond MAX_RECENT_SESSIONS: ten sessions of 10 accounts are still too few.
    tiny = _predicted_days(30, [2.0] * 30, rows=10)
    assert set(recent_stretches(tiny, days, LEVEL).values()) == {NO_STRETCH}
    # A firm whose week suffices reads that week alone: the calm days before it do not count.
    large = _predicted_days(25, [1.0] * 10 + [3.0] * 15)
    late = large["date"].unique().sort().to_list()[16:]
    assert recent_stretches(large, late, LEVEL) == recent_stretches(
        large, late, LEVEL, max_sessions=RECENT_SESSIONS
    )
