"""Chunked range runs: staging, features and labels in bounded chunks of days equal one pass."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from daily_profit.features.pipeline import (
    Reader,
    chunk_ranges,
    features_in_chunks,
    labels_in_chunks,
    staging_in_chunks,
)
from daily_profit_tests.features.conftest import Built, Firm

TABLES = {
    "raw_metrics_daily": ("metrics_daily", "date"),
    "raw_metrics_hourly": ("metrics_hourly", "date"),
    "raw_trades_closed": ("trades_closed", "trade_date"),
    "raw_trades_open": ("trades_open", "trade_date"),
    "raw_regimes_daily": ("regimes_daily", "date"),
}


class WindowReader:
    """Reads as the warehouse does (a table's rows dated in a range) and records what it read."""

    def __init__(self, firm: Firm, staging: pl.DataFrame) -> None:
        self.firm, self.staging = firm, staging
        self.reads: list[tuple[str, dt.date, dt.date]] = []

    def __call__(
        self, table: str, first: dt.date, last: dt.date, columns: Sequence[str]
    ) -> pl.DataFrame:
        self.reads.append((table, first, last))
        if table == "stg_accounts_daily":
            frame, column = self.staging, "date"
        else:
            source, column = TABLES[table]
            frame = self.firm.raw[source]
        rows = frame.filter(pl.col(column).is_between(first, last))
        return rows.select(columns) if columns else rows


def _rows_per_day(firm: Firm) -> dict[dt.date, int]:
    counts = firm.raw["metrics_daily"].group_by("date").len()
    return dict(zip(counts["date"], counts["len"], strict=True))


def _edge_chunks(firm: Firm, built: Built) -> list[tuple[dt.date, dt.date]]:
    """Chunks cut exactly where a live account first shows up and where another last shows up."""
    spans = built.staging.group_by("account_id").agg(
        pl.col("date").min().alias("first"), pl.col("date").max().alias("last")
    )
    middle = firm.start + dt.timedelta(days=25)
    arrives = spans.filter(pl.col("first") > middle)["first"].min()
    leaves = spans.filter(pl.col("last") > arrives, pl.col("last") < firm.end)["last"].min()
    assert arrives is not None and leaves is not None, "the firm has no account to cut at"
    one = dt.timedelta(days=1)
    return [(firm.start, arrives - one), (arrives, leaves), (leaves + one, firm.end)]


@pytest.fixture(scope="module", params=["day", "3 days", "about 10 days", "edges", "one chunk"])
def chunks(request, firm: Firm, built: Built) -> list[tuple[dt.date, dt.date]]:
    per_day = _rows_per_day(firm)
    busiest = max(per_day.values())
    sizes = {"day": 1, "3 days": 3 * busiest, "about 10 days": 10 * busiest, "one chunk": 10**9}
    if request.param == "edges":
        return _edge_chunks(firm, built)
    return chunk_ranges(per_day, firm.start, firm.end, sizes[request.param])


def test_chunk_ranges_cover_the_range_in_whole_days() -> None:
    day = dt.date(2025, 3, 1)
    per_day = {day + dt.timedelta(days=i): n for i, n in enumerate([5, 5, 20, 1, 1, 1])}
    assert chunk_ranges(per_day, day, day + dt.timedelta(days=6), 10) == [
        (day, day + dt.timedelta(days=1)),
        (day + dt.timedelta(days=2), day + dt.timedelta(days=2)),  # bigger than a chunk: alone
        (day + dt.timedelta(days=3), day + dt.timedelta(days=6)),  # day 6 has no rows
    ]
    assert chunk_ranges(per_day, day, day - dt.timedelta(days=1), 10) == []
    with pytest.raises(ValueError, match="max_rows"):
        chunk_ranges(per_day, day, day, 0)


def test_staging_in_chunks_equals_one_pass(firm: Firm, built: Built, chunks) -> None:
    read = WindowReader(firm, built.staging)
    pieces = list(staging_in_chunks(read, firm.raw["plans"], firm.raw["metrics_alltime"], chunks))
    assert [(a, b) for a, b, _ in pieces] == chunks
    assert_frame_equal(pl.concat([frame for *_, frame in pieces]), built.staging)
    # Each chunk read its own days of the raw table, nothing before them.
    assert read.reads == [("raw_metrics_daily", a, b) for a, b in chunks]


def test_staging_from_a_later_day_folds_the_history_in_chunks(firm: Firm, built: Built) -> None:
    """A nightly tick: the days before it only feed the cumulative state, a range at a time."""
    day = firm.end - dt.timedelta(days=2)
    per_day = _rows_per_day(firm)
    history = chunk_ranges(
        per_day, firm.start, day - dt.timedelta(days=1), 7 * max(per_day.values())
    )
    assert len(history) > 3
    read = WindowReader(firm, built.staging)
    pieces = list(
        staging_in_chunks(
            read,
            firm.raw["plans"],
            firm.raw["metrics_alltime"],
            [(day, day), (day + dt.timedelta(days=1), firm.end)],
            history=history,
        )
    )
    expected = built.staging.filter(pl.col("date") >= day)
    assert_frame_equal(pl.concat([frame for *_, frame in pieces]), expected)
    assert max(last - first for _, first, last in read.reads) < dt.timedelta(days=14)


def test_features_in_chunks_equal_one_pass(firm: Firm, built: Built, chunks) -> None:
    read = WindowReader(firm, built.staging)
    pieces = list(features_in_chunks(read, chunks))
    assert_frame_equal(pl.concat([features for *_, features in pieces]), built.features)
    for first, last, stg, _ in pieces:
        assert stg["date"].is_between(first, last).all()
    # The lookback and no more: 20 days before a chunk of one day, never the whole history.
    longest = max(last - first for _, first, last in read.reads)
    assert longest <= max(b - a for a, b in chunks) + dt.timedelta(days=21)


def test_labels_in_chunks_equal_one_pass(firm: Firm, built: Built, chunks) -> None:
    read: Reader = WindowReader(firm, built.staging)
    pieces = labels_in_chunks(read, chunks, available_through=firm.end)
    assert_frame_equal(pl.concat([labels for *_, labels in pieces]), built.labels)
