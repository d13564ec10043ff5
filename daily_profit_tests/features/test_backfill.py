"""Backfills: a range in one pass equals the same range in pieces, each given only its lookback."""

from __future__ import annotations

import datetime as dt

import polars as pl
from polars.testing import assert_frame_equal

from daily_profit.features.pipeline import (
    FEATURE_INPUTS,
    LABEL_INPUTS,
    STAGING_INPUTS,
    build_features,
    build_labels,
    build_staging,
    label_horizon_end,
    required_history_start,
)

DATED = {
    "metrics_daily": "date",
    "metrics_hourly": "date",
    "trades_closed": "trade_date",
    "trades_open": "trade_date",
    "regimes_daily": "date",
}


def _window(raw: dict[str, pl.DataFrame], first: dt.date, last: dt.date) -> dict[str, pl.DataFrame]:
    """What a caller reads for [first, last]: each dated table's partitions in that range."""
    return {
        source: raw[source].filter(pl.col(column).is_between(first, last))
        for source, column in DATED.items()
    }


def test_pieces_with_their_lookback_equal_one_pass(firm, built) -> None:
    cuts = [firm.start, firm.start + dt.timedelta(days=23), firm.start + dt.timedelta(days=50)]
    ends = [cuts[1] - dt.timedelta(days=1), cuts[2] - dt.timedelta(days=1), firm.end]
    pieces = []
    for start, end in zip(cuts, ends, strict=True):
        raw = _window(firm.raw, required_history_start(start), end)
        staging = built.staging.filter(pl.col("date").is_between(start, end))
        pieces.append(
            build_features(
                staging,
                raw["metrics_daily"],
                raw["metrics_hourly"],
                raw["trades_closed"],
                raw["trades_open"],
                raw["regimes_daily"],
                start=start,
                end=end,
            )
        )
    assert_frame_equal(pl.concat(pieces), built.features)


def test_one_day_with_its_lookback_equals_one_pass(firm, built) -> None:
    day = firm.start + dt.timedelta(days=60)
    raw = _window(firm.raw, required_history_start(day), day)
    one = build_features(
        built.staging.filter(pl.col("date") == day),
        raw["metrics_daily"],
        raw["metrics_hourly"],
        raw["trades_closed"],
        raw["trades_open"],
        raw["regimes_daily"],
        start=day,
        end=day,
    )
    assert one.height > 0
    assert_frame_equal(one, built.features.filter(pl.col("date") == day))


def test_labels_need_only_their_horizon(firm, built) -> None:
    start, end = firm.start + dt.timedelta(days=10), firm.start + dt.timedelta(days=30)
    metrics = firm.raw["metrics_daily"].filter(
        pl.col("date").is_between(start + dt.timedelta(days=1), label_horizon_end(end))
    )
    labels = build_labels(built.staging, metrics, start=start, end=end)
    expected = built.labels.filter(pl.col("date").is_between(start, end))
    assert_frame_equal(labels, expected)


def test_a_range_without_live_accounts_or_without_feeds(firm, built) -> None:
    raw = firm.raw
    empty = build_features(
        built.staging.head(0),
        raw["metrics_daily"],
        raw["metrics_hourly"],
        raw["trades_closed"],
        raw["trades_open"],
        raw["regimes_daily"],
        start=firm.start,
        end=firm.end,
    )
    assert empty.height == 0 and empty.columns == built.features.columns
    # No trades, hourly rows or regimes at all: counts are 0, the market of D is unknown.
    bare = build_features(
        built.staging,
        raw["metrics_daily"],
        raw["metrics_hourly"].head(0),
        raw["trades_closed"].head(0),
        raw["trades_open"].head(0),
        raw["regimes_daily"].head(0),
        start=firm.start,
        end=firm.end,
    )
    assert bare.height == built.features.height
    assert bare["trade_count_20d"].sum() == 0 and bare["open_positions"].sum() == 0
    assert bare["regime_vol_balanced"].null_count() == bare.height
    assert bare["pnl_sum_20d"].equals(built.features["pnl_sum_20d"])


def test_declared_input_columns_are_enough(firm, built) -> None:
    """A caller that reads only the declared columns gets the same tables."""
    raw = {
        **{s: firm.raw[s].select(c) for s, c in STAGING_INPUTS.items()},
        **{s: firm.raw[s].select(c) for s, c in FEATURE_INPUTS.items()},
    }
    staging = build_staging(
        firm.raw["metrics_daily"].select(STAGING_INPUTS["metrics_daily"]),
        raw["plans"],
        raw["metrics_alltime"],
        start=firm.start,
        end=firm.end,
    )
    assert_frame_equal(staging, built.staging)
    features = build_features(
        staging,
        raw["metrics_daily"],
        raw["metrics_hourly"],
        raw["trades_closed"],
        raw["trades_open"],
        raw["regimes_daily"],
        start=firm.start,
        end=firm.end,
    )
    assert_frame_equal(features, built.features)
    metrics = firm.raw["metrics_daily"].select(LABEL_INPUTS["metrics_daily"])
    labels = build_labels(staging, metrics, start=firm.start, end=firm.end)
    assert_frame_equal(labels, built.labels)
