"""Feature drift against the training reference: PSI, KS and the importance-weighted score."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from daily_profit.monitoring.drift import (
    DriftReference,
    build_reference,
    compare,
    drift_rows,
    psi,
)
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.migrate import upgrade


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0, regime: str = "BALANCED"):
    return pl.DataFrame(
        {
            "pnl_mean_5d": rng.normal(shift, 1.0, n),
            "trades_1d": rng.integers(0, 5, n),
            "volatility_regime": [regime] * (n // 2) + ["COMPRESSED"] * (n - n // 2),
        }
    )


FEATURES = ["pnl_mean_5d", "trades_1d", "volatility_regime"]


def test_a_day_like_training_is_stable_and_a_shifted_one_drifts() -> None:
    rng = np.random.default_rng(1)
    ref = build_reference(_frame(rng, 5_000), FEATURES, {"pnl_mean_5d": 3.0, "trades_1d": 1.0})
    same = compare(ref, _frame(rng, 800))
    assert same.max_psi < 0.05
    shifted = compare(ref, _frame(rng, 800, shift=1.0))
    drift = {f.name: f for f in shifted.features}
    assert drift["pnl_mean_5d"].psi > 0.25 and drift["pnl_mean_5d"].level == "large"
    assert drift["pnl_mean_5d"].ks is not None and drift["pnl_mean_5d"].ks > 0.3
    assert drift["trades_1d"].ks is None, "KS only where the feature is continuous"
    assert shifted.top(1)[0].name == "pnl_mean_5d"
    # Importance shares: 3/4 of the model leans on the drifting feature.
    assert shifted.weighted_psi == pytest.approx(0.75 * drift["pnl_mean_5d"].psi, rel=0.1)


def test_a_category_never_seen_in_training_shows_as_drift() -> None:
    rng = np.random.default_rng(2)
    ref = build_reference(_frame(rng, 2_000), FEATURES)
    report = compare(ref, _frame(rng, 500, regime="DISPERSED"))
    regime = next(f for f in report.features if f.name == "volatility_regime")
    assert regime.psi > 0.25


def test_nulls_appearing_are_drift() -> None:
    rng = np.random.default_rng(3)
    ref = build_reference(_frame(rng, 2_000), FEATURES)
    day = _frame(rng, 500).with_columns(
        pl.when(pl.int_range(pl.len()) % 2 == 0)
        .then(None)
        .otherwise(pl.col("pnl_mean_5d"))
        .alias("pnl_mean_5d")
    )
    assert next(f for f in compare(ref, day).features if f.name == "pnl_mean_5d").psi > 0.25


def test_reference_survives_json_and_a_missing_feature_is_an_error() -> None:
    rng = np.random.default_rng(4)
    ref = build_reference(_frame(rng, 1_000), FEATURES)
    again = DriftReference.from_json(ref.to_json())
    day = _frame(rng, 300, shift=0.5)
    assert compare(again, day).frame().equals(compare(ref, day).frame())
    with pytest.raises(ValueError, match="trades_1d"):
        compare(ref, day.drop("trades_1d"))


def test_psi_of_identical_shares_is_zero() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_features_with_one_value_per_day_are_listed_apart_not_compared() -> None:
    """A day's calendar or market regime is one value for every account: against the training
    days' spread it would always read as drift, so the reference leaves it out."""
    rng = np.random.default_rng(5)
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(10)]
    frame = pl.concat(
        _frame(rng, 200).with_columns(
            pl.lit(day).alias("date"),
            pl.lit(float(day.weekday())).alias("weekday"),
            pl.lit(0.0).alias("energy_share"),
        )
        for day in days
    )
    features = [*FEATURES, "weekday", "energy_share"]
    ref = build_reference(frame, features, {"pnl_mean_5d": 1.0, "weekday": 3.0}, day_column="date")
    assert ref.day_level == ("weekday",)
    # Constant throughout training is not day-level: if it starts to vary, that is drift.
    assert [f.name for f in ref.features] == [*FEATURES, "energy_share"]
    # Importance shares are over the compared features.
    assert next(f for f in ref.features if f.name == "pnl_mean_5d").importance == 1.0
    assert DriftReference.from_json(ref.to_json()) == ref
    one_day = frame.filter(pl.col("date") == days[-1])
    assert compare(ref, one_day).max_psi < 0.1


def test_drift_is_read_beyond_what_training_days_show_themselves() -> None:
    """A feature the day's market moves for everyone (each day has its own offset) has a large
    PSI on any single day, training days included: only a move beyond that spread is drift."""
    rng = np.random.default_rng(6)
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(20)]

    def day_rows(day: dt.date, offset: float) -> pl.DataFrame:
        return pl.DataFrame({"date": [day] * 300, "symbol_return_1d": rng.normal(offset, 0.3, 300)})

    train = pl.concat(day_rows(d, rng.normal(0.0, 1.0)) for d in days)
    ref = build_reference(train, ["symbol_return_1d"], day_column="date")
    [feature] = ref.features
    assert feature.day_psi > 0.5, "a training day alone already reads as a large PSI"
    ordinary = compare(ref, day_rows(dt.date(2025, 2, 1), 0.5)).features[0]
    assert ordinary.psi > 0.25 and ordinary.excess < ordinary.psi
    assert ordinary.level != "large"
    shocked = compare(ref, day_rows(dt.date(2025, 2, 2), 6.0)).features[0]
    assert shocked.excess > 2.0 and shocked.level == "large"


def test_a_days_drift_rows_are_kept_in_the_warehouse(warehouse_url: str) -> None:
    rng = np.random.default_rng(7)
    ref = build_reference(_frame(rng, 2_000), FEATURES, {"pnl_mean_5d": 1.0})
    day = dt.date(2025, 3, 3)
    rows = drift_rows(compare(ref, _frame(rng, 400, shift=1.0)), day, "7")
    upgrade(warehouse_url)
    store = Warehouse(warehouse_url)
    try:
        store.replace_partitions("feature_drift_daily", rows, dates=[day], run_id="test")
        kept = store.read_partitions("feature_drift_daily", day, day)
    finally:
        store.dispose()
    assert kept.sort("feature").equals(rows.sort("feature"))
    assert kept.filter(pl.col("feature") == "pnl_mean_5d")["level"].item() == "large"
