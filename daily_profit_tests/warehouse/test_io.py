"""Warehouse write/read path on SQLite and PostgreSQL: idempotent partitions, nothing lost."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterator

import polars as pl
import pytest
import sqlalchemy as sa

from daily_profit.warehouse import migrate
from daily_profit.warehouse.io import (
    InjectedWriteFailure,
    Warehouse,
    frame_checksum,
    normalise_url,
)
from daily_profit.warehouse.records import parse_plans_csv, parse_records
from daily_profit_tests.warehouse.factories import plan_row, plans_csv, records_for

D1, D2, D3 = dt.date(2025, 6, 1), dt.date(2025, 6, 2), dt.date(2025, 6, 3)
EMPTY_SHA = hashlib.sha256(b"").hexdigest()
TRADES = "raw_trades_closed"


@pytest.fixture
def wh(warehouse_url: str) -> Iterator[Warehouse]:
    migrate.upgrade(warehouse_url)
    warehouse = Warehouse(warehouse_url)
    yield warehouse
    warehouse.dispose()


def _trades(day: dt.date, n: int, seed: int = 1, bad: int = 0):
    records = records_for("trades_closed", day, n, seed=seed)
    for r in records[:bad]:
        r["lots"] = -1.0
    return parse_records("trades_closed", records, partition=day)


def _write(wh: Warehouse, day: dt.date, n: int, run_id: str, seed: int = 1, bad: int = 0):
    parsed = _trades(day, n, seed, bad)
    return wh.replace_partitions(
        TRADES, parsed.valid, dates=[day], run_id=run_id, quarantine=parsed.quarantine
    )


def test_url_normalisation() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ValueError, match="psycopg 3"):
        normalise_url("postgresql+psycopg2://u@h/db")


def test_replace_twice_gives_the_same_rows_and_checksum(wh: Warehouse) -> None:
    first = _write(wh, D1, 200, "run-1")
    second = _write(wh, D1, 200, "run-2")
    assert first.rows == second.rows == {D1: 200}
    assert first.checksums == second.checksums
    assert wh.partition_checksums(TRADES, [D1]) == first.checksums
    stored = wh.read_partitions(TRADES, D1, D1, columns=["position", "_run_id", "_loaded_at"])
    assert stored.height == 200
    assert stored["_run_id"].unique().to_list() == ["run-2"]
    assert stored["_loaded_at"].unique().to_list() == [second.loaded_at]
    loads = wh.read_partition_loads(TRADES)
    assert loads["run_id"].to_list() == ["run-1", "run-2"]
    assert loads["checksum"].unique().to_list() == [first.checksums[D1]]
    assert loads["rows"].to_list() == [200, 200]


def test_checksum_ignores_input_order_and_sees_a_change(wh: Warehouse) -> None:
    parsed = _trades(D1, 100)
    first = wh.replace_partitions(TRADES, parsed.valid, dates=[D1], run_id="a")
    shuffled = parsed.valid.sample(fraction=1.0, shuffle=True, seed=3)
    second = wh.replace_partitions(TRADES, shuffled, dates=[D1], run_id="b")
    assert first.checksums == second.checksums
    restated = parsed.valid.with_columns(
        pl.when(pl.col("position") == "P7").then(1.0).otherwise(pl.col("profit")).alias("profit")
    )
    third = wh.replace_partitions(TRADES, restated, dates=[D1], run_id="c")
    assert third.checksums != first.checksums


def test_read_back_equals_what_was_written(wh: Warehouse) -> None:
    parsed = _trades(D1, 300)
    wh.replace_partitions(TRADES, parsed.valid, dates=[D1], run_id="r")
    back = wh.read_partitions(TRADES, D1, D1)
    expected = parsed.valid.sort(["trade_date", "broker", "platform", "position"])
    assert back.schema == expected.schema
    assert back.equals(expected)


def test_awkward_values_round_trip(wh: Warehouse) -> None:
    parsed = _trades(D1, 6)
    awkward = parsed.valid.with_columns(
        pl.Series(
            "comment",
            ['a,b "quoted"', "", None, "line1\nline2", "  padded  ", "ünïcødé \\ back\\slash"],
        ),
        pl.Series("profit", [0.1 + 0.2, -0.0, 1e-300, 1.7976931348623157e308, -123.456, 5.0]),
        pl.Series("stop_loss", [None, 0.0, 1.23456789012345678, None, 2.5, None]),
    )
    result = wh.replace_partitions(TRADES, awkward, dates=[D1], run_id="r")
    back = wh.read_partitions(TRADES, D1, D1)
    expected = awkward.sort(["trade_date", "broker", "platform", "position"])
    assert back.equals(expected)
    # -0.0 is stored as 0.0 on both engines (SQLite cannot keep the sign).
    assert back["profit"].to_list().count(0.0) == 1
    assert str(back.filter(pl.col("profit") == 0.0)["profit"].item()) == "0.0"
    assert wh.partition_checksums(TRADES, [D1]) == result.checksums
    assert result.checksums[D1] == frame_checksum(TRADES, back)


def test_replacing_a_day_leaves_other_days_alone(wh: Warehouse) -> None:
    d1 = _write(wh, D1, 50, "run-1")
    d2 = _write(wh, D2, 70, "run-1", seed=2)
    _write(wh, D1, 30, "run-2", seed=3)
    assert wh.partition_row_counts(TRADES, D1, D3) == {D1: 30, D2: 70}
    assert wh.partition_checksums(TRADES, [D2]) == d2.checksums
    assert wh.partition_checksums(TRADES, [D1]) != d1.checksums
    untouched = wh.read_partitions(TRADES, D2, D2, columns=["_run_id"])
    assert untouched["_run_id"].unique().to_list() == ["run-1"]


def test_replacing_a_day_with_an_empty_frame_clears_it(wh: Warehouse) -> None:
    _write(wh, D1, 40, "run-1", bad=2)
    _write(wh, D2, 40, "run-1", seed=2)
    empty = _trades(D1, 0)
    result = wh.replace_partitions(TRADES, empty.valid, dates=[D1], run_id="run-2")
    assert result.rows == {D1: 0}
    assert result.checksums == {D1: EMPTY_SHA}
    assert wh.partition_row_counts(TRADES, D1, D3) == {D2: 40}
    assert wh.partition_checksums(TRADES, [D1]) == {D1: EMPTY_SHA}
    # Its quarantine went with it: the partition now holds what this run saw, nothing else.
    assert wh.read_quarantine(TRADES, D1, D1).height == 0


def test_several_days_in_one_write(wh: Warehouse) -> None:
    frame = pl.concat([_trades(D1, 10).valid, _trades(D3, 5, seed=2).valid])
    result = wh.replace_partitions(TRADES, frame, dates=[D3, D1, D2], run_id="r")
    assert result.rows == {D1: 10, D2: 0, D3: 5}
    assert result.checksums[D2] == EMPTY_SHA
    assert wh.partition_checksums(TRADES, [D1, D2, D3]) == result.checksums
    assert wh.read_partitions(TRADES, D1, D3).height == 15


@pytest.mark.parametrize("fail_after", [0, 1, 150])
def test_failure_mid_write_leaves_previous_contents(wh: Warehouse, fail_after: int) -> None:
    before = _write(wh, D1, 100, "run-1", bad=1)
    parsed = _trades(D1, 300, seed=9, bad=3)
    with pytest.raises(InjectedWriteFailure):
        wh.replace_partitions(
            TRADES,
            parsed.valid,
            dates=[D1],
            run_id="run-2",
            quarantine=parsed.quarantine,
            _fail_after_rows=fail_after,
        )
    assert wh.partition_checksums(TRADES, [D1]) == before.checksums
    assert wh.read_partitions(TRADES, D1, D1, columns=["_run_id"])[
        "_run_id"
    ].unique().to_list() == ["run-1"]
    assert wh.read_quarantine(TRADES, D1, D1)["run_id"].to_list() == ["run-1"]
    assert wh.read_partition_loads(TRADES)["run_id"].to_list() == ["run-1"]
    # The rerun completes.
    after = wh.replace_partitions(
        TRADES, parsed.valid, dates=[D1], run_id="run-3", quarantine=parsed.quarantine
    )
    assert after.rows == {D1: 297}
    assert wh.partition_checksums(TRADES, [D1]) == after.checksums
    assert wh.read_quarantine(TRADES, D1, D1).height == 3


def test_first_write_failing_leaves_nothing(wh: Warehouse) -> None:
    parsed = _trades(D1, 50)
    with pytest.raises(InjectedWriteFailure):
        wh.replace_partitions(TRADES, parsed.valid, dates=[D1], run_id="x", _fail_after_rows=20)
    assert wh.partition_row_counts(TRADES, D1, D1) == {}


def test_quarantine_is_replaced_per_partition(wh: Warehouse) -> None:
    _write(wh, D1, 20, "run-1", bad=2)
    _write(wh, D2, 20, "run-1", seed=2, bad=4)
    first = _write(wh, D1, 20, "run-2", bad=1)
    assert first.quarantined == {D1: 1}
    q = wh.read_quarantine(TRADES)
    assert q.group_by("partition_date").len().sort("partition_date").rows() == [(D1, 1), (D2, 4)]
    row = q.filter(pl.col("partition_date") == D1).row(0, named=True)
    assert row["reason"].startswith("lots: must be > 0")
    assert row["run_id"] == "run-2" and row["asset"] == TRADES and row["source"] == "trades_closed"
    assert wh.read_partition_loads(TRADES)["quarantined_rows"].to_list() == [2, 4, 1]
    # Rerunning without quarantine clears this partition's quarantine only.
    _write(wh, D1, 20, "run-3")
    assert wh.read_quarantine(TRADES)["partition_date"].to_list() == [D2] * 4


def test_replace_table_unpartitioned(wh: Warehouse) -> None:
    parsed = parse_plans_csv(plans_csv([plan_row(1), plan_row(2, leverage="x"), plan_row(3)]))
    first = wh.replace_table("raw_plans", parsed.valid, run_id="r1", quarantine=parsed.quarantine)
    assert first.rows == {None: 2} and first.quarantined == {None: 1}
    again = wh.replace_table("raw_plans", parsed.valid, run_id="r2", quarantine=parsed.quarantine)
    assert again.checksums == first.checksums == {None: wh.table_checksum("raw_plans")}
    plans = wh.read_table("raw_plans")
    assert plans.equals(parsed.valid.sort("plan_id"))
    assert wh.read_quarantine("raw_plans").height == 1
    smaller = parse_plans_csv(plans_csv([plan_row(3)]))
    wh.replace_table("raw_plans", smaller.valid, run_id="r3")
    assert wh.read_table("raw_plans")["plan_id"].to_list() == [3]
    assert wh.read_quarantine("raw_plans").height == 0


def test_other_sources_round_trip(wh: Warehouse) -> None:
    for source, table in [
        ("metrics_daily", "raw_metrics_daily"),
        ("metrics_hourly", "raw_metrics_hourly"),
        ("trades_open", "raw_trades_open"),
    ]:
        parsed = parse_records(source, records_for(source, D1, 48), partition=D1)
        result = wh.replace_partitions(table, parsed.valid, dates=[D1], run_id="r")
        assert result.rows == {D1: 48}
        assert wh.read_partitions(table, D1, D1).height == 48
        assert wh.partition_checksums(table, [D1]) == result.checksums
    regimes = parse_records("regimes_daily", records_for("regimes_daily", D1, 3), partition=None)
    result = wh.replace_partitions(
        "raw_regimes_daily", regimes.valid, dates=[D1, D2, D3], run_id="r"
    )
    assert result.rows == {D1: 1, D2: 1, D3: 1}
    assert wh.read_partitions("raw_regimes_daily", D1, D3).equals(regimes.valid)
    alltime = parse_records(
        "metrics_alltime", records_for("metrics_alltime", D1, 30), partition=None
    )
    wh.replace_table("raw_metrics_alltime", alltime.valid, run_id="r")
    assert wh.read_table("raw_metrics_alltime").equals(alltime.valid.sort("account_id"))


def test_writes_refuse_what_a_rerun_could_not_replace(wh: Warehouse) -> None:
    frame = _trades(D1, 5).valid
    with pytest.raises(ValueError, match="outside the partitions"):
        wh.replace_partitions(TRADES, frame, dates=[D2], run_id="r")
    with pytest.raises(ValueError, match="missing"):
        wh.replace_partitions(TRADES, frame.drop("lots"), dates=[D1], run_id="r")
    metrics = parse_records(
        "metrics_daily", records_for("metrics_daily", D1, 2), partition=D1
    ).valid.with_columns(pl.lit(None, dtype=pl.String).alias("account_id"))
    with pytest.raises(ValueError, match="account_id"):
        wh.replace_partitions("raw_metrics_daily", metrics, dates=[D1], run_id="r")
    quarantine = _trades(D1, 3, bad=1).quarantine.with_columns(pl.lit(D2).alias("partition_date"))
    with pytest.raises(ValueError, match="partition_date"):
        wh.replace_partitions(TRADES, frame, dates=[D1], run_id="r", quarantine=quarantine)
    with pytest.raises(ValueError, match="use replace_table"):
        wh.replace_partitions("raw_plans", frame, dates=[D1], run_id="r")
    assert wh.read_partition_loads().height == 0


def test_concurrent_writers_of_different_days(wh: Warehouse) -> None:
    errors: list[BaseException] = []

    def write(day: dt.date, seed: int) -> None:
        try:
            for i in range(3):
                _write(wh, day, 200, f"run-{day}-{i}", seed=seed)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(d, i)) for i, d in enumerate([D1, D2, D3])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert wh.partition_row_counts(TRADES, D1, D3) == {D1: 200, D2: 200, D3: 200}


@pytest.mark.postgres
def test_same_checksum_on_sqlite_and_postgres(sqlite_url: str, fresh_postgres_url: str) -> None:
    parsed = _trades(D1, 150)
    checksums = []
    for url in (sqlite_url, fresh_postgres_url):
        migrate.upgrade(url)
        warehouse = Warehouse(url)
        result = warehouse.replace_partitions(TRADES, parsed.valid, dates=[D1], run_id="r")
        assert warehouse.partition_checksums(TRADES, [D1]) == result.checksums
        checksums.append(result.checksums)
        warehouse.dispose()
    assert checksums[0] == checksums[1]


@pytest.mark.postgres
def test_postgres_day_lands_in_its_own_partition(fresh_postgres_url: str) -> None:
    migrate.upgrade(fresh_postgres_url)
    warehouse = Warehouse(fresh_postgres_url)
    try:
        _write(warehouse, D2, 25, "r")
        with warehouse.engine.connect() as conn:
            count = conn.execute(sa.text("SELECT count(*) FROM raw_trades_closed_p20250602"))
            assert count.scalar_one() == 25
    finally:
        warehouse.dispose()


def test_no_dates_writes_nothing(wh: Warehouse) -> None:
    _write(wh, D1, 10, "run-1")
    result = wh.replace_partitions(TRADES, _trades(D1, 0).valid, dates=[], run_id="run-2")
    assert result.rows == {} and result.total_rows == 0
    assert wh.partition_row_counts(TRADES, D1, D1) == {D1: 10}
    assert wh.read_partition_loads(TRADES)["run_id"].to_list() == ["run-1"]
