"""Per record kind, required and optional fields follow the contract: parser, pandera and tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import polars as pl
import pytest

from daily_profit.ingestion.schemas import schema_failures
from daily_profit.warehouse import migrate
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.records import SOURCES, parse_records
from daily_profit.warehouse.tables import RAW_TABLES
from daily_profit_tests.warehouse.factories import minimal_record, records_for

DAY = dt.date(2025, 6, 2)
IDENTITY = {"login", "planId", "trader", "status", "type", "phase", "broker", "mt_version"}
# The contract's paragraph "Which record kind must carry which field".
MUST_CARRY = {
    "metrics_hourly": IDENTITY | {"date", "hour", "numTrades", "netProfit"},
    "metrics_alltime": IDENTITY
    | {"startingBalance", "currentBalance", "currentEquity", "numTrades", "netProfit"},
}


@pytest.mark.parametrize("source", sorted(MUST_CARRY))
def test_required_fields_are_the_contracts_per_kind(source: str) -> None:
    spec = SOURCES[source]
    assert {f.api for f in spec.fields if f.required} == MUST_CARRY[source]
    # Every balance, payout, day-counter and statistics column is nullable in the table.
    table = RAW_TABLES[spec.table]
    for f in spec.fields:
        assert table.c[f.column].nullable is (not f.required and f.column not in spec.natural_key)


def test_daily_rows_still_carry_every_field_without_a_question_mark() -> None:
    required = {f.api for f in SOURCES["metrics_daily"].fields if f.required}
    assert {"priorDaysBalance", "todays_payouts", "grossLoss", "numTradedSymbols"} <= required
    assert not {"accountId", "country", "days_to_next_payout", "profitFactor"} & required


def _partition(source: str) -> dt.date | None:
    return None if SOURCES[source].partition_column is None else DAY


@pytest.mark.parametrize("source", sorted(MUST_CARRY))
def test_a_record_with_only_what_its_kind_must_carry_is_valid(source: str) -> None:
    records = [minimal_record(source, DAY, i, hour=i % 24) for i in range(6)]
    parsed = parse_records(source, records, partition=_partition(source))
    assert parsed.quarantine.height == 0, parsed.quarantine["reason"].to_list()
    assert parsed.valid.height == 6
    assert parsed.valid["prior_days_balance"].null_count() == 6
    assert schema_failures(source, parsed.valid) is None


@pytest.mark.parametrize(
    ("source", "dropped"),
    [
        ("metrics_hourly", "netProfit"),
        ("metrics_hourly", "hour"),
        ("metrics_alltime", "currentEquity"),
        ("metrics_alltime", "trader"),
        ("metrics_daily", "priorDaysBalance"),
    ],
)
def test_a_record_missing_a_field_its_kind_must_carry_is_quarantined(
    source: str, dropped: str
) -> None:
    records = records_for(source, DAY, 3)
    del records[1][dropped]
    parsed = parse_records(source, records, partition=_partition(source))
    assert parsed.valid.height == 2
    assert parsed.quarantine["reason"].to_list() == [f"{dropped}: required, missing or null"]


def test_pandera_follows_the_kind() -> None:
    hourly = parse_records(
        "metrics_hourly", [minimal_record("metrics_hourly", DAY, 0)], partition=DAY
    ).valid
    assert schema_failures("metrics_hourly", hourly) is None
    daily_frame = hourly.select(
        [c for c in hourly.columns if c in SOURCES["metrics_daily"].columns]
    ).with_columns(
        pl.lit(None, pl.Float64).alias("todays_payouts"),
        pl.lit(None, pl.Int64).alias("days_to_next_payout"),
    )
    failures = schema_failures("metrics_daily", daily_frame)
    assert failures is not None
    assert "prior_days_balance" in failures["column"].to_list()


@pytest.fixture
def wh(warehouse_url: str) -> Iterator[Warehouse]:
    migrate.upgrade(warehouse_url)
    warehouse = Warehouse(warehouse_url)
    yield warehouse
    warehouse.dispose()


def test_sparse_hourly_and_alltime_rows_land_with_their_nulls(wh: Warehouse) -> None:
    hourly = parse_records(
        "metrics_hourly",
        [minimal_record("metrics_hourly", DAY, i, hour=i % 24) for i in range(30)],
        partition=DAY,
    )
    alltime = parse_records(
        "metrics_alltime",
        [minimal_record("metrics_alltime", DAY, i) for i in range(5)],
        partition=None,
    )
    wh.replace_partitions("raw_metrics_hourly", hourly.valid, dates=[DAY], run_id="r1")
    wh.replace_table("raw_metrics_alltime", alltime.valid, run_id="r1")
    landed = wh.read_partitions("raw_metrics_hourly", DAY, DAY)
    assert landed.height == 30
    assert landed["current_balance"].null_count() == 30
    master = wh.read_table("raw_metrics_alltime")
    assert master.height == 5
    assert master["prior_days_balance"].null_count() == 5
    assert master["current_equity"].null_count() == 0
