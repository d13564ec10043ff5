"""Conformal offsets: valid coverage on exchangeable rows, monotone quantiles always."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from daily_profit.modeling.conformal import (
    OVERALL_AIM,
    MondrianOffsets,
    active_level,
    apply_mondrian,
    apply_offsets,
    conditional_coverage,
    fit_mondrian,
    fit_offsets,
    pool_small_cells,
    regime_of,
    weekday_of,
)
from daily_profit.modeling.evaluate import binomial_tolerance


def _heavy_tailed(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    scale = np.exp(rng.normal(5.0, 1.0, n))  # quiet and wild accounts, 3 orders of magnitude
    active = rng.random(n) < 0.7
    y = np.where(active, scale * rng.standard_t(3, n), 0.0)
    return y, scale


def test_badly_miscalibrated_quantiles_become_calibrated() -> None:
    rng = np.random.default_rng(0)
    y_cal, s_cal = _heavy_tailed(rng, 5_000)
    y_test, s_test = _heavy_tailed(rng, 20_000)
    # A proposal far too narrow and off-centre: conformal has to fix both tails.
    proposal = np.array([-0.3, 0.2, 0.4])
    offsets = fit_offsets(proposal * s_cal[:, None], y_cal, s_cal)
    q = apply_offsets(proposal * s_test[:, None], s_test, offsets)
    inside = (y_test >= q[:, 0]) & (y_test <= q[:, 2])
    tol = binomial_tolerance(y_test.size) + binomial_tolerance(y_cal.size)
    assert abs(inside.mean() - 0.90) <= tol
    assert abs(np.mean(y_test < q[:, 0]) - 0.05) <= tol
    assert abs(np.mean(y_test > q[:, 2]) - 0.05) <= tol
    # Locally adaptive: the interval scales with the account, not one dollar width for all.
    width = q[:, 2] - q[:, 0]
    np.testing.assert_allclose(width / s_test, width[0] / s_test[0], rtol=1e-9)


@settings(max_examples=50, deadline=None)
@given(
    raw=arrays(np.float64, (30, 3), elements=st.floats(-1e6, 1e6)),
    scale=arrays(np.float64, 30, elements=st.floats(1.0, 1e5)),
    offsets=st.tuples(*[st.floats(-50, 50)] * 3),
)
def test_applied_quantiles_are_monotone(raw: np.ndarray, scale: np.ndarray, offsets: tuple) -> None:
    from daily_profit.modeling.conformal import ConformalOffsets

    q = apply_offsets(raw, scale, ConformalOffsets(*offsets, n_calibration=100))
    assert np.all(q[:, 0] <= q[:, 1]) and np.all(q[:, 1] <= q[:, 2])


# -- Mondrian (conditional) coverage --------------------------------------------------------------


def _heteroscedastic(
    rng: np.random.Generator, n_days: int
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Rows whose true scale depends on what the proposal ignores: Fridays span a weekend
    (x1.7), a dispersed regime doubles moves; a fifth of account-days do not trade (zero)."""
    accounts = 120
    days = [dt.date(2025, 1, 6) + dt.timedelta(days=i) for i in range(n_days)]
    days = [d for d in days if d.weekday() < 5]
    regime_of_day = {
        d: rng.choice(["compressed", "balanced", "dispersed"], p=[0.3, 0.5, 0.2]) for d in days
    }
    date = np.repeat(days, accounts)
    regime = np.array([regime_of_day[d] for d in date])
    model_scale = np.exp(rng.normal(5.0, 0.8, date.size))  # what the scale model sees
    true = model_scale * np.where(np.array([d.weekday() == 4 for d in date]), 1.7, 1.0)
    true = true * np.select([regime == "dispersed", regime == "compressed"], [2.0, 0.7], 1.0)
    true = true * np.exp(rng.normal(0.0, 0.3, date.size))  # what nobody sees
    y = np.where(rng.random(date.size) < 0.2, 0.0, true * rng.standard_t(4, date.size))
    frame = pl.DataFrame(
        {
            "date": pl.Series(date.tolist(), dtype=pl.Date),
            "regime_vol_compressed": (regime == "compressed").astype(np.int8),
            "regime_vol_balanced": (regime == "balanced").astype(np.int8),
            "regime_vol_dispersed": (regime == "dispersed").astype(np.int8),
            "net_profit_next_session": y,
        }
    )
    return frame, y, model_scale


def test_mondrian_coverage_holds_in_every_cell_on_heteroscedastic_data() -> None:
    rng = np.random.default_rng(11)
    cal, y_cal, s_cal = _heteroscedastic(rng, 60)
    test, _, s_test = _heteroscedastic(rng, 120)
    proposal = np.array([-1.3, 0.0, 1.3])  # symmetric, blind to weekday and regime
    offsets = fit_mondrian(
        proposal * s_cal[:, None],
        y_cal,
        s_cal,
        weekday_of(cal).to_numpy(),
        regime_of(cal).to_numpy(),
    )
    q = apply_mondrian(
        proposal * s_test[:, None],
        s_test,
        offsets,
        weekday_of(test).to_numpy(),
        regime_of(test).to_numpy(),
    )
    table = conditional_coverage(
        test.with_columns(pl.Series("p05", q[:, 0]), pl.Series("p95", q[:, 2])), s_test
    )
    overall = table.filter(pl.col("dimension") == "all")["coverage"][0]
    assert 0.88 <= overall <= 0.92, table
    cells = table.filter(~pl.col("dimension").is_in(["all"]))
    assert set(cells["dimension"]) == {"non_zero", "weekday", "regime", "scale_decile"}
    assert (cells["rows"] >= 300).all()
    assert cells["coverage"].is_between(0.85, 0.95).all(), cells
    # The same proposal with one offset for every row misses where the moves are wild.
    flat = apply_offsets(
        proposal * s_test[:, None], s_test, fit_offsets(proposal * s_cal[:, None], y_cal, s_cal)
    )
    naive = conditional_coverage(
        test.with_columns(pl.Series("p05", flat[:, 0]), pl.Series("p95", flat[:, 2])), s_test
    )
    assert not naive.filter(pl.col("dimension") != "all")["coverage"].is_between(0.85, 0.95).all()


def test_small_cells_are_pooled_with_their_neighbours() -> None:
    keys = np.array(["Mon"] * 400 + ["Tue"] * 100 + ["Wed"] * 250 + ["Thu"] * 50)
    pooled = pool_small_cells(keys, ["Mon", "Tue", "Wed", "Thu"], 300)
    assert set(pooled.tolist()) == {"Mon", "Tue+Wed+Thu"}


def test_active_level_keeps_the_moving_rows_covered() -> None:
    assert active_level(0.0) == 0.90  # no untraded spans: 90% everywhere
    # A quarter untraded (the sandbox): 91% overall, 88% of the rows that moved.
    level = active_level(0.25)
    assert level == pytest.approx(0.88, abs=1e-4)
    assert 0.25 + 0.75 * level == pytest.approx(OVERALL_AIM)
    assert active_level(0.5) == 0.865  # never below the floor where it matters


def _band_with_heavy_tails(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Moves in units of the scale: the same median everywhere, but the middle fifth of the
    scales moves with Student-t(2) tails (a 95% quantile twice the normal's)."""
    scale = np.exp(rng.uniform(0.0, 5.0, n))
    middle = (scale > np.exp(2.0)) & (scale <= np.exp(3.0))
    t = rng.standard_t(2, n) * (0.6745 / 0.8165)  # t(2) scaled to the normal's median |x|
    y = scale * np.where(middle, t, rng.normal(0.0, 1.0, n))
    return y, scale


def test_a_scale_band_with_heavier_tails_is_covered_at_the_level() -> None:
    rng = np.random.default_rng(5)
    y_cal, s_cal = _band_with_heavy_tails(rng, 20_000)
    y, s = _band_with_heavy_tails(rng, 40_000)
    proposal = np.array([-1.645, 0.0, 1.645])
    offsets = fit_mondrian(proposal * s_cal[:, None], y_cal, s_cal, None)
    q = apply_mondrian(proposal * s[:, None], s, offsets, None)
    middle = offsets.bands(s) == 2
    inside = (y >= q[:, 0]) & (y <= q[:, 2])
    # Every band at the calibrated level, the heavy-tailed one too.
    for band in range(len(offsets.scale_edges) + 1):
        rows = offsets.bands(s) == band
        assert abs(inside[rows].mean() - offsets.level) < 0.015, (band, inside[rows].mean())
    assert offsets.band_stretch[2] > 1.2 > max(offsets.band_stretch[:2] + offsets.band_stretch[3:])
    # Without its band stretch (factors level medians, not tails) the band falls short.
    unstretched = replace(offsets, band_stretch=())
    q0 = apply_mondrian(proposal * s[:, None], s, unstretched, None)
    inside0 = (y >= q0[:, 0]) & (y <= q0[:, 2])
    assert inside0[middle].mean() < offsets.level - 0.03
    # Saved with the bundle and read back; a bundle saved before band stretches reads as none.
    assert MondrianOffsets.from_dict(offsets.as_dict()) == offsets
    old = {k: v for k, v in offsets.as_dict().items() if k != "band_stretch"}
    np.testing.assert_array_equal(MondrianOffsets.from_dict(old).row_band_stretch(s), 1.0)
