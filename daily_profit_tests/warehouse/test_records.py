"""parse_records: valid rows typed per spec, every malformed record quarantined with its reason."""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import time
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daily_profit.warehouse.records import (
    QUARANTINE_SCHEMA,
    SOURCES,
    Kind,
    parse_plans_csv,
    parse_records,
    snake_case,
    source_spec,
)
from daily_profit_tests.warehouse.factories import (
    plan_row,
    plans_csv,
    records_for,
)

DAY = dt.date(2025, 6, 1)
API_SOURCES = [s for s in SOURCES if s != "plans"]


def _partition(source: str) -> dt.date | None:
    return None if SOURCES[source].partition_column is None else DAY


def _batch_partition(source: str) -> dt.date | None:
    # The regimes factory makes one record per day: a batch of them is a range parse.
    return None if source == "regimes_daily" else _partition(source)


def _one_bad(source: str, mutate: Any, n: int = 5) -> tuple[Any, dict[str, Any]]:
    """Parse n valid records of which the first is mutated; return (result, its quarantine)."""
    records = records_for(source, DAY, n)
    mutate(records[0])
    parsed = parse_records(source, records, partition=_batch_partition(source))
    assert parsed.received == n
    assert parsed.valid.height == n - 1, parsed.quarantine
    assert parsed.quarantine.height == 1
    return parsed, parsed.quarantine.row(0, named=True)


def test_snake_case_names() -> None:
    assert snake_case("volumeUSD") == "volume_usd"
    assert snake_case("qtyInBaseCrncy") == "qty_in_base_crncy"
    assert snake_case("meanSL") == "mean_sl"
    assert snake_case("approved_payouts") == "approved_payouts"
    assert snake_case("treasury10y") == "treasury10y"
    spec = source_spec("metrics_daily")
    assert spec.by_api["mt_version"].column == "platform"
    assert spec.by_api["accountId"].column == "account_id"
    assert source_spec("raw_trades_closed").by_api["tradeDate"].column == "trade_date"
    assert source_spec("regimes_daily").by_api["instruments"].column == "instruments_json"


@pytest.mark.parametrize("source", API_SOURCES)
def test_valid_records_parse_with_spec_types(source: str) -> None:
    records = records_for(source, DAY, 50)
    parsed = parse_records(source, records, partition=_batch_partition(source))
    spec = SOURCES[source]
    assert parsed.quarantine.height == 0
    assert parsed.valid.height == 50
    assert parsed.valid.schema == spec.polars_schema
    assert parsed.unknown_fields == {}
    assert parsed.quarantine.schema == QUARANTINE_SCHEMA


def test_values_are_the_records_own() -> None:
    record = records_for("trades_closed", DAY, 1)[0]
    # Closed just after midnight UTC: the trade date stays the record's, not the timestamp's.
    record["closeTime"] = "2025-06-02T00:30:00.250Z"
    row = parse_records("trades_closed", [record], partition=DAY).valid.row(0, named=True)
    assert row["trade_date"] == DAY
    assert row["close_time"] == dt.datetime(2025, 6, 2, 0, 30, 0, 250000, tzinfo=dt.UTC)
    assert row["lots"] == record["lots"]
    assert row["position"] == record["position"]
    assert row["stop_loss"] is None


def test_timestamp_offsets_are_converted_to_utc() -> None:
    record = records_for("trades_closed", DAY, 1)[0]
    record["openTime"] = "2025-06-01T12:00:00.000+02:00"
    record["closeTime"] = "2025-06-01T11:00:00Z"
    row = parse_records("trades_closed", [record], partition=DAY).valid.row(0, named=True)
    assert row["open_time"] == dt.datetime(2025, 6, 1, 10, 0, tzinfo=dt.UTC)


def test_plain_iso_date_is_accepted() -> None:
    record = records_for("metrics_daily", DAY, 1)[0]
    record["date"] = "2025-06-01"
    assert parse_records("metrics_daily", [record], partition=DAY).valid.height == 1


MALFORMED: list[tuple[str, str, Any, str]] = [
    # (source, field, bad value, expected start of the reason)
    ("trades_closed", "lots", -1.0, "lots: must be > 0 (got -1.0)"),
    ("trades_closed", "lots", 0, "lots: must be > 0"),
    ("trades_closed", "profit", "abc", "profit: expected number, got str 'abc'"),
    ("trades_closed", "broker", 7.5, "broker: expected integer, got float 7.5"),
    ("trades_closed", "broker", 7.0, "broker: expected integer, got float 7.0"),
    ("trades_closed", "broker", "7", "broker: expected integer, got str '7'"),
    ("trades_closed", "fee", True, "fee: expected number, got bool True"),
    ("trades_closed", "platform", False, "platform: expected integer, got bool False"),
    (
        "trades_closed",
        "position",
        123,
        "position: expected string, got int (value withheld: identity)",
    ),
    ("trades_closed", "login", None, "login: required, missing or null"),
    ("trades_closed", "login", "", "login: required, blank"),
    ("trades_closed", "side", "Hold", "side: must be one of Buy, Sell, any case (got 'Hold')"),
    ("trades_closed", "side", 1, "side: expected string, got int 1"),
    ("trades_closed", "openTime", "2025-06-01T10:00:00", "openTime: not a valid ISO timestamp"),
    ("trades_closed", "openTime", "yesterday", "openTime: not a valid ISO timestamp"),
    ("trades_closed", "openTime", 1748736000000, "openTime: expected ISO timestamp"),
    ("trades_closed", "closeTime", "2025-05-31T00:00:00.000Z", "closeTime: before openTime"),
    (
        "trades_closed",
        "tradeDate",
        "2025-06-02T00:00:00.000Z",
        "outside_partition: tradeDate 2025-06-02 is not the partition 2025-06-01",
    ),
    ("trades_closed", "tradeDate", "2025-06-01T13:00:00.000Z", "tradeDate: not a valid ISO date"),
    ("trades_closed", "tradeDate", "2025-02-30", "tradeDate: not a valid ISO date"),
    ("trades_closed", "tradeDate", None, "tradeDate: required, missing or null"),
    ("trades_closed", "profit", float("nan"), "profit: not a finite number"),
    ("trades_closed", "swap", float("inf"), "swap: not a finite number"),
    ("trades_closed", "duration", -0.5, "duration: must be >= 0"),
    ("trades_closed", "mngr", 2**70, "mngr: integer out of the int64 range"),
    ("trades_closed", "comment", {"x": 1}, "comment: expected string, got dict"),
    ("trades_open", "lots", -2.0, "lots: must be > 0"),
    ("metrics_daily", "successRate", 100.5, "successRate: must be <= 100 (got 100.5)"),
    ("metrics_daily", "successRate", -1.0, "successRate: must be >= 0"),
    ("metrics_daily", "grossProfit", -0.01, "grossProfit: must be >= 0"),
    ("metrics_daily", "grossLoss", 5.0, "grossLoss: must be <= 0"),
    ("metrics_daily", "status", 4, "status: must be <= 3 (got 4)"),
    ("metrics_daily", "phase", 0, "phase: must be >= 1 (got 0)"),
    ("metrics_daily", "numTrades", 1.5, "numTrades: expected integer, got float 1.5"),
    ("metrics_daily", "planId", "3", "planId: expected integer, got str '3'"),
    ("metrics_daily", "netProfit", None, "netProfit: required, missing or null"),
    ("metrics_daily", "maxDrawDown", 10.0, "maxDrawDown: must be <= 0"),
    ("metrics_daily", "firstTradeDate", "soon", "firstTradeDate: not a valid ISO date"),
    ("metrics_hourly", "hour", 24, "hour: must be <= 23 (got 24)"),
    ("metrics_hourly", "hour", -1, "hour: must be >= 0"),
    ("metrics_alltime", "currentEquity", "1e5", "currentEquity: expected number"),
    ("regimes_daily", "sentimentScore", 1.5, "sentimentScore: must be <= 1"),
    ("regimes_daily", "volatilityRegime", "WILD", "volatilityRegime: must be one of"),
    ("regimes_daily", "instruments", "EURUSD", "instruments: expected object, got str"),
    ("regimes_daily", "instruments", {"EURUSD": {"eodPrice": "x"}}, "instruments: EURUSD.eodPrice"),
    ("regimes_daily", "instruments", None, "instruments: required, missing or null"),
]


@pytest.mark.parametrize(("source", "field", "value", "reason"), MALFORMED)
def test_malformed_record_is_quarantined_with_reason(
    source: str, field: str, value: Any, reason: str
) -> None:
    def mutate(record: dict[str, Any]) -> None:
        record[field] = value

    _, row = _one_bad(source, mutate)
    assert row["reason"].startswith(reason), row["reason"]
    assert row["source"] == source
    assert row["partition_date"] == _partition(source)
    payload = json.loads(row["raw_payload"])
    # NaN != NaN: compare the spelling (the payload keeps NaN and Infinity as they came).
    assert repr(payload[field]) == repr(value)


def test_missing_required_field_is_quarantined() -> None:
    def drop(record: dict[str, Any]) -> None:
        del record["stdSymbol"]

    parsed, row = _one_bad("trades_closed", drop)
    assert row["reason"] == "stdSymbol: required, missing or null"
    assert "stdSymbol" not in json.loads(row["raw_payload"])
    assert parsed.unknown_fields == {}


def test_missing_optional_field_is_null() -> None:
    records = records_for("trades_closed", DAY, 3)
    del records[0]["trdSymbol"]
    parsed = parse_records("trades_closed", records, partition=DAY)
    assert parsed.quarantine.height == 0
    assert parsed.valid["trd_symbol"].null_count() == 1


def test_every_fault_of_a_record_is_named() -> None:
    def mutate(record: dict[str, Any]) -> None:
        record.update(lots=-1.0, profit="x", side="up")

    _, row = _one_bad("trades_closed", mutate)
    reason = row["reason"]
    assert "side:" in reason and "lots:" in reason and "profit:" in reason
    assert json.loads(row["natural_key"]) == {
        "tradeDate": "2025-06-01T00:00:00.000Z",
        "broker": 7,
        "platform": 5,
        "position": "P0",
    }


def test_null_account_id_stays_for_the_raw_layer() -> None:
    records = records_for("metrics_daily", DAY, 3)
    records[1]["accountId"] = None
    parsed = parse_records("metrics_daily", records, partition=DAY)
    assert parsed.valid.height == 3
    assert parsed.valid["account_id"].null_count() == 1


@pytest.mark.parametrize(("raw", "stored"), [("bUY", "Buy"), ("SELL", "Sell"), ("sell", "Sell")])
def test_side_case_is_normalised(raw: str, stored: str) -> None:
    records = records_for("trades_closed", DAY, 2)
    records[0]["side"] = raw
    parsed = parse_records("trades_closed", records, partition=DAY)
    assert parsed.quarantine.height == 0
    assert parsed.valid.filter(pl.col("position") == "P0")["side"].item() == stored


def test_unknown_fields_are_counted_not_fatal() -> None:
    records = records_for("trades_closed", DAY, 4)
    records[0]["newField"] = 1
    records[1]["newField"] = None
    records[2]["other"] = "x"
    parsed = parse_records("trades_closed", records, partition=DAY)
    assert parsed.valid.height == 4
    assert parsed.unknown_fields == {"newField": 2, "other": 1}


def test_exact_repeat_dropped_conflicting_repeat_quarantined() -> None:
    records = records_for("trades_closed", DAY, 3)
    repeat = copy.deepcopy(records[0])
    conflict = copy.deepcopy(records[1]) | {"profit": 999.0}
    parsed = parse_records("trades_closed", [*records, repeat, conflict], partition=DAY)
    assert parsed.received == 5
    assert parsed.dropped == 1
    assert parsed.valid.height == 3
    # The later record wins; the superseded one is kept in quarantine, not lost.
    assert parsed.valid.filter(pl.col("position") == "P1")["profit"].item() == 999.0
    assert parsed.quarantine.height == 1
    assert parsed.quarantine["reason"].item() == (
        "conflicting_copy: another copy of natural key (tradeDate, broker, platform, position) "
        "with a different body was served later and kept"
    )
    assert parsed.conflicting_copies == 1
    assert json.loads(parsed.quarantine["raw_payload"].item())["profit"] == records[1]["profit"]


def test_range_parse_files_quarantine_under_record_date() -> None:
    day2 = DAY + dt.timedelta(days=1)
    records = records_for("trades_closed", DAY, 2) + records_for("trades_closed", day2, 2, seed=2)
    records[3]["position"] = "Q1"
    records[3]["lots"] = -1.0
    parsed = parse_records("trades_closed", records, partition=None)
    assert parsed.valid["trade_date"].unique().sort().to_list() == [DAY, day2]
    assert parsed.quarantine["partition_date"].to_list() == [day2]


def test_empty_batch() -> None:
    parsed = parse_records("metrics_daily", [], partition=DAY)
    assert parsed.valid.height == 0
    assert parsed.valid.schema == SOURCES["metrics_daily"].polars_schema
    assert parsed.received == 0


# --- plans CSV -------------------------------------------------------------------------------


def test_plans_csv_last_row_wins_and_types() -> None:
    csv = plans_csv(
        [
            plan_row(1, description="first"),
            plan_row(2, liquidateFriday="TRUE", enableConsistency="1", maximumTime="30"),
            plan_row(1, description="second", makeDrawdownStatic="0"),
        ]
    )
    parsed = parse_plans_csv(csv)
    assert parsed.quarantine.height == 0
    assert parsed.dropped == 1
    assert parsed.received == 3
    plans = parsed.valid.sort("plan_id")
    assert plans["plan_id"].to_list() == [1, 2]
    one, two = plans.rows(named=True)
    assert one["description"] == "second"
    assert one["make_drawdown_static"] is False
    assert one["daily_drawdown_by_balance_equity"] is True
    assert one["maximum_time"] is None and one["minimum_required_active_trading_days"] is None
    assert two["liquidate_friday"] is True and two["enable_consistency"] is True
    assert two["maximum_time"] == 30
    assert one["platform"] == "MT5" and one["broker"] == "Acme Markets"
    assert parsed.valid.schema == SOURCES["plans"].polars_schema


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"leverage": "1:100"}, "leverage: not a valid integer ('1:100')"),
        ({"maximumTime": "2.5"}, "maximumTime: not a valid integer ('2.5')"),
        ({"liquidateFriday": "yes"}, "liquidateFriday: not a valid boolean ('yes')"),
        ({"startingBalance": "100k"}, "startingBalance: not a valid number ('100k')"),
        ({"startingBalance": "0"}, "startingBalance: must be > 0"),
        ({"profitSharePct": "120"}, "profitSharePct: must be <= 100"),
        ({"platform": ""}, "platform: required, missing or null"),
    ],
)
def test_plans_csv_bad_rows_quarantined(override: dict[str, str], reason: str) -> None:
    parsed = parse_plans_csv(plans_csv([plan_row(1), plan_row(2, **override)]))
    assert parsed.valid["plan_id"].to_list() == [1]
    assert parsed.quarantine["reason"].item().startswith(reason), parsed.quarantine["reason"].item()
    assert json.loads(parsed.quarantine["raw_payload"].item())["planId"] == "2"
    assert parsed.quarantine["partition_date"].item() is None


def test_plans_csv_extra_cells_are_unknown_fields(tmp_path: Any) -> None:
    path = tmp_path / "plans.csv"
    path.write_bytes(plans_csv([plan_row(1) + ",surprise"]))
    parsed = parse_plans_csv(path)
    assert parsed.valid.height == 1
    assert parsed.unknown_fields == {"__extra_cells__": 1}


# --- never coerced: any wrong-typed value of any field is rejected ---------------------------

_WRONG_BY_KIND: dict[Kind, st.SearchStrategy[Any]] = {
    Kind.STR: st.one_of(st.integers(), st.floats(), st.booleans(), st.lists(st.integers())),
    Kind.INT: st.one_of(
        st.floats(allow_nan=False).filter(lambda x: True), st.booleans(), st.text(max_size=5)
    ),
    Kind.FLOAT: st.one_of(
        st.booleans(), st.text(max_size=5), st.dictionaries(st.text(), st.integers())
    ),
    Kind.DATE: st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=8)),
    Kind.TS: st.one_of(st.integers(), st.booleans(), st.text(max_size=8)),
    Kind.BOOL: st.one_of(st.integers(), st.text(max_size=3)),
    Kind.JSON: st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers())),
}

_FIELDS = [(s, f.api) for s in ("metrics_daily", "trades_closed") for f in SOURCES[s].fields]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_FIELDS), st.data())
def test_wrong_type_is_never_coerced(pick: tuple[str, str], data: st.DataObject) -> None:
    source, api = pick
    field = SOURCES[source].by_api[api]
    value = data.draw(_WRONG_BY_KIND[field.kind])
    records = records_for(source, DAY, 3)
    records[0][api] = value
    parsed = parse_records(source, records, partition=DAY)
    assert parsed.received == 3
    assert parsed.quarantine.height == 1, (api, value, parsed.valid.head(1))
    assert api in parsed.quarantine["reason"].item()


def test_parse_speed_regression_guard() -> None:
    """The real figure is in benchmarks/README.md; this only catches a gross regression."""
    records = records_for("metrics_daily", DAY, 1000)
    parse_records("metrics_daily", records, partition=DAY)
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        parse_records("metrics_daily", records, partition=DAY)
        best = min(best, time.perf_counter() - start)
    assert best < 0.1, f"1,000 daily metrics records took {best * 1000:.1f} ms"


def test_a_record_that_is_not_an_object_is_quarantined() -> None:
    records: list[Any] = [*records_for("trades_closed", DAY, 2), None, [1, 2], "x"]
    parsed = parse_records("trades_closed", records, partition=DAY)
    assert parsed.valid.height == 2
    assert parsed.received == 5
    assert parsed.quarantine["reason"].to_list() == [
        "record: expected object, got NoneType",
        "record: expected object, got list",
        "record: expected object, got str",
    ]
    assert parsed.quarantine["raw_payload"].to_list() == ["null", "[1,2]", '"x"']


def test_the_field_profile_counts_every_object_record_and_its_json_types() -> None:
    records: list[Any] = records_for("metrics_daily", DAY, 6)
    records[0]["numTrades"] = "3"  # quarantined, still profiled
    records[1]["numTrades"] = None
    del records[2]["numTrades"]
    records[3]["numTrades"] = True
    records.append("not an object")
    parsed = parse_records("metrics_daily", records, partition=DAY)
    assert parsed.profile is not None
    assert parsed.profile.records == 6
    stats = parsed.profile.fields["numTrades"]
    assert (stats.present, stats.non_null) == (5, 4)
    assert stats.types == {"integer": 2, "string": 1, "boolean": 1}
    clean = parsed.profile.fields["netProfit"]
    assert (clean.present, clean.non_null, clean.types) == (6, 6, {"number": 6})
    assert parsed.profile.fields["country"].types == {"string": 6}
    assert set(parsed.profile.fields) == set(SOURCES["metrics_daily"].by_api)
    assert parsed.profile.to_dict()["fields"]["numTrades"]["non_null"] == 4


def test_copies_the_client_set_aside_are_quarantined_as_conflicting() -> None:
    records = records_for("trades_closed", DAY, 3)
    older = copy.deepcopy(records[1]) | {"profit": -1.25}
    parsed = parse_records("trades_closed", records, partition=DAY, superseded=[older])
    assert parsed.valid.height == 3
    assert parsed.conflicting_copies == 1
    (row,) = parsed.quarantine.to_dicts()
    assert row["reason"].startswith("conflicting_copy: ")
    assert "P1" not in row["reason"]  # names the key's fields, never its values
    assert json.loads(row["natural_key"])["position"] == "P1"
    assert json.loads(row["raw_payload"])["profit"] == -1.25
    assert parsed.received == 4
    assert parsed.profile is not None and parsed.profile.records == 4


def test_copies_that_meet_once_account_ids_are_resolved_are_conflicts() -> None:
    records = records_for("metrics_daily", DAY, 3)
    unresolved = copy.deepcopy(records[0]) | {"accountId": None, "netProfit": 12.5}
    repeat = copy.deepcopy(records[2]) | {"accountId": None}

    def resolve(frame: pl.DataFrame) -> pl.DataFrame:
        known = {"100000": "acc-000000", "100002": "acc-000002"}
        return frame.with_columns(
            pl.coalesce("account_id", pl.col("login").replace_strict(known, default=None))
        )

    parsed = parse_records(
        "metrics_daily", [*records, unresolved, repeat], partition=DAY, resolve=resolve
    )
    # The later-served copy wins; an identical one after resolution is a repeat, dropped.
    assert parsed.valid.height == 3
    assert parsed.valid.filter(pl.col("account_id") == "acc-000000")["net_profit"].item() == 12.5
    assert parsed.conflicting_copies == 1 and parsed.dropped == 1
    (row,) = parsed.quarantine.to_dicts()
    assert row["reason"].startswith(
        "conflicting_copy: another copy of natural key (date, accountId)"
    )
    assert json.loads(row["raw_payload"])["netProfit"] == records[0]["netProfit"]


def test_a_flagged_record_is_quarantined_with_its_problem_and_text() -> None:
    from daily_profit.served import FlaggedRecord

    records: list[Any] = records_for("trades_closed", DAY, 3)
    bad = copy.deepcopy(records[2]) | {"profit": math.nan}
    text = json.dumps(bad, separators=(",", ":"))
    records[2] = FlaggedRecord(bad, text, "profit: NaN literal, not valid JSON")
    parsed = parse_records("trades_closed", records, partition=DAY)
    assert parsed.valid.height == 2
    (row,) = parsed.quarantine.to_dicts()
    assert "profit: NaN literal, not valid JSON" in row["reason"]
    assert row["raw_payload"] == text and '"profit":NaN' in text
    assert json.loads(row["natural_key"])["position"] == "P2"


def test_a_reason_never_quotes_the_value_of_an_identity_field():
    from daily_profit_tests.warehouse.factories import records_for

    [record] = records_for("metrics_daily", dt.date(2025, 1, 6), 1)
    record["login"] = 9876543210123  # a number where the contract says text
    record["trader"] = ["T-4242"]
    parsed = parse_records("metrics_daily", [record], partition=dt.date(2025, 1, 6))
    [reason] = parsed.quarantine["reason"].to_list()
    assert "login" in reason and "trader" in reason
    assert "9876543210123" not in reason and "T-4242" not in reason
    # The record itself is kept whole for whoever may read the quarantine.
    assert "9876543210123" in parsed.quarantine["raw_payload"][0]
