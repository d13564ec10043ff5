"""Schema drift of a batch: required fields gone, new types, optional fields emptied, widening."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from daily_profit.ingestion.drift import (
    INT_WIDENED_TO_FLOAT,
    NEW_TYPE,
    OPTIONAL_FIELD_ALL_NULL,
    REQUIRED_FIELD_MISSING,
    SchemaDrift,
    schema_drift,
)
from daily_profit.warehouse.records import SOURCES, parse_records
from daily_profit_tests.warehouse.factories import records_for

DAY = dt.date(2025, 6, 3)


def _drift(source: str, records: list[Any], **kwargs: Any) -> SchemaDrift:
    parsed = parse_records(source, records, partition=DAY)
    assert parsed.profile is not None
    return schema_drift(SOURCES[source], parsed.profile, **kwargs)


def _rules(drift: SchemaDrift) -> set[tuple[str, str, str]]:
    return {(f.rule, f.severity, f.field) for f in drift.findings}


def test_a_batch_as_the_contract_says_has_no_drift() -> None:
    drift = _drift(
        "trades_closed", records_for("trades_closed", DAY, 60), min_records_for_all_null=1000
    )
    assert drift.passed and drift.findings == ()


def test_a_required_field_missing_from_every_record_blocks() -> None:
    records = records_for("metrics_daily", DAY, 20)
    for i, r in enumerate(records):
        if i % 2:
            del r["numTrades"]
        else:
            r["numTrades"] = None
    drift = _drift("metrics_daily", records)
    assert not drift.passed
    (finding,) = drift.blocking
    assert (finding.rule, finding.field, finding.source, finding.day) == (
        REQUIRED_FIELD_MISSING,
        "numTrades",
        "metrics_daily",
        DAY,
    )
    assert (finding.records, finding.present, finding.non_null) == (20, 10, 0)
    assert "numTrades" in finding.message and "2025-06-03" in finding.message
    assert "metrics_daily" in finding.message


def test_a_required_field_missing_from_some_records_is_not_drift() -> None:
    records = records_for("metrics_daily", DAY, 20)
    del records[3]["numTrades"]
    assert _drift("metrics_daily", records).passed


def test_a_field_whose_every_value_has_another_type_blocks() -> None:
    records = records_for("metrics_daily", DAY, 20)
    for r in records:
        r["numTrades"] = str(r["numTrades"])
    records[0]["numTrades"] = None
    drift = _drift("metrics_daily", records)
    (finding,) = drift.blocking
    assert finding.rule == NEW_TYPE and finding.field == "numTrades"
    assert finding.types == {"string": 19} and finding.non_null == 19


def test_some_values_of_another_type_are_quarantined_not_drift() -> None:
    records = records_for("metrics_daily", DAY, 20)
    records[0]["numTrades"] = "7"
    assert _drift("metrics_daily", records).passed


def test_an_optional_field_all_null_warns_only_in_a_sizeable_batch() -> None:
    def emptied(n: int) -> list[dict[str, Any]]:
        records = records_for("trades_closed", DAY, n)
        for r in records:
            r["trdSymbol"] = None
        return records

    big = _drift("trades_closed", emptied(50))
    assert big.passed
    assert (OPTIONAL_FIELD_ALL_NULL, "warning", "trdSymbol") in _rules(big)
    small = _drift("trades_closed", emptied(49))
    assert (OPTIONAL_FIELD_ALL_NULL, "warning", "trdSymbol") not in _rules(small)


def test_an_int_field_carrying_fractions_is_a_widening_warning() -> None:
    records = records_for("metrics_daily", DAY, 20)
    records[2]["numTrades"] = 3.5
    drift = _drift("metrics_daily", records)
    assert drift.passed
    (finding,) = drift.warnings
    assert finding.rule == INT_WIDENED_TO_FLOAT and finding.field == "numTrades"
    assert finding.types == {"integer": 19, "number": 1}


def test_an_int_field_turned_float_everywhere_blocks_and_says_it_widened() -> None:
    records = records_for("metrics_daily", DAY, 20)
    for r in records:
        r["numTrades"] = float(r["numTrades"]) + 0.5
    drift = _drift("metrics_daily", records)
    assert (INT_WIDENED_TO_FLOAT, "warning", "numTrades") in _rules(drift)
    assert (NEW_TYPE, "blocking", "numTrades") in _rules(drift)


def test_integers_in_a_float_field_are_no_drift() -> None:
    records = records_for("trades_closed", DAY, 10)
    for r in records:
        r["profit"] = int(r["profit"])
    parsed = parse_records("trades_closed", records, partition=DAY)
    assert parsed.profile is not None
    assert parsed.profile.fields["profit"].types == {"number": 10}
    assert schema_drift(SOURCES["trades_closed"], parsed.profile).passed


def test_an_empty_batch_has_no_drift() -> None:
    drift = _drift("metrics_daily", [])
    assert drift.passed and drift.records == 0


def test_the_result_goes_into_metadata_as_plain_json() -> None:
    records = records_for("metrics_daily", DAY, 60)
    for r in records:
        del r["grossLoss"]
        r["profitFactor"] = None
    drift = _drift("metrics_daily", records)
    as_json = json.loads(json.dumps(drift.to_dict()))
    assert as_json["passed"] is False
    assert [f["field"] for f in as_json["blocking"]] == ["grossLoss"]
    assert "profitFactor" in [f["field"] for f in as_json["warnings"]]
    assert as_json["day"] == "2025-06-03"
