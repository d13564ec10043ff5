"""Hourly and alltime rows that carry only what the contract requires build the same features."""

from __future__ import annotations

import dataclasses

import polars as pl
from polars.testing import assert_frame_equal

from daily_profit.warehouse.records import SOURCES
from daily_profit_tests.features.conftest import Firm, build_all


def _only_required(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """The frame as a contract-minimal API would land it: every optional column null."""
    spec = SOURCES[source]
    optional = [
        f.column for f in spec.fields if not f.required and f.column not in spec.natural_key
    ]
    return frame.with_columns(pl.lit(None, frame.schema[c]).alias(c) for c in optional)


def test_features_do_not_need_the_optional_fields_of_hourly_and_alltime_rows(
    small_firm: Firm,
) -> None:
    sparse_raw = dict(small_firm.raw)
    for source in ("metrics_hourly", "metrics_alltime"):
        sparse_raw[source] = _only_required(small_firm.raw[source], source)
    assert sparse_raw["metrics_hourly"]["current_balance"].null_count() > 0
    full = build_all(small_firm)
    sparse = build_all(dataclasses.replace(small_firm, raw=sparse_raw))
    assert_frame_equal(sparse.features, full.features)
    assert_frame_equal(sparse.labels, full.labels)
    assert_frame_equal(sparse.staging, full.staging)
