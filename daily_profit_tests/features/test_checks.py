"""The feature checks pass on a clean build and catch each fault they are for."""

from __future__ import annotations

import datetime as dt

import polars as pl

from daily_profit.features.checks import (
    check_breach_agreement,
    check_coverage,
    check_label_coverage,
    check_null_share_drift,
    check_ranges,
    check_required_complete,
    check_unique_keys,
    null_shares,
    run_feature_checks,
)


def test_a_clean_build_passes_every_check(built) -> None:
    results = run_feature_checks(built.features, built.staging, built.labels)
    assert [r.name for r in results if not r.passed] == []
    coverage = next(r for r in results if r.name == "labels_cover_features")
    assert coverage.metadata["by_status"]["observed"] > 0


def test_duplicate_rows_fail_key_uniqueness(built) -> None:
    doubled = pl.concat([built.features, built.features.head(3)])
    result = check_unique_keys(doubled)
    assert not result.passed and result.metadata["duplicated_rows"] == 6


def test_nulls_and_infinities_in_required_features_fail(built) -> None:
    broken = built.features.with_columns(
        pl.when(pl.int_range(pl.len()) < 4).then(None).otherwise(pl.col("pnl_1d")).alias("pnl_1d"),
        pl.when(pl.int_range(pl.len()) == 0)
        .then(float("inf"))
        .otherwise(pl.col("open_notional_to_equity"))
        .alias("open_notional_to_equity"),
    )
    result = check_required_complete(broken)
    assert not result.passed
    assert result.metadata["required_null_counts"] == {"pnl_1d": 4}
    assert result.metadata["non_finite_counts"] == {"open_notional_to_equity": 1}


def test_out_of_range_values_fail(built) -> None:
    broken = built.features.with_columns(
        (pl.col("trade_count_5d") - 1_000).alias("trade_count_5d"),
        pl.lit(1.01).alias("buy_share_5d"),
    )
    result = check_ranges(broken)
    assert not result.passed
    assert set(result.metadata["out_of_range_counts"]) == {"trade_count_5d", "buy_share_5d"}


def test_coverage_against_staging(built) -> None:
    result = check_coverage(built.features.slice(1), built.staging)
    assert not result.passed and result.metadata["missing_rows"] == 1
    labels = check_label_coverage(built.labels.slice(2), built.features)
    assert not labels.passed and labels.metadata["missing_label_rows"] == 2


def test_breach_disagreement_is_reported(built) -> None:
    flipped = built.labels.with_columns(
        pl.when(pl.col("label_status") == "observed")
        .then(pl.lit(True))
        .otherwise(pl.col("breach_by_rules"))
        .alias("breach_by_rules")
    )
    result = check_breach_agreement(flipped)
    assert not result.passed and result.severity == "warn"
    assert result.metadata["rules_breach_not_by_api"] > 0


def test_a_feed_gone_missing_raises_null_share_drift(built) -> None:
    f = built.features
    last = built.firm.end
    trailing = null_shares(
        f.filter(pl.col("date").is_between(last - dt.timedelta(days=20), last, closed="left"))
    )
    today = f.filter(pl.col("date") == last)
    assert check_null_share_drift(today, trailing).passed
    # The regime feed did not arrive for the last day: every regime feature is null.
    regime = [c for c in f.columns if c.startswith("regime_")]
    result = check_null_share_drift(
        today.with_columns(pl.lit(None).cast(f.schema[c]).alias(c) for c in regime), trailing
    )
    assert not result.passed
    assert set(result.metadata["drifted"]) <= set(regime)
    assert len(result.metadata["drifted"]) >= 5
