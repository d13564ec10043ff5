"""Pages read column-wise: the same result as record by record, and every unusual page read
record by record (so it keeps its reasons, counts and quarantine)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
import orjson
import pytest
from polars.testing import assert_frame_equal

from daily_profit.api.client import RetrySettings, RiskApiClient
from daily_profit.warehouse.records import TRADES_CLOSED, parse_records
from daily_profit_tests.warehouse.factories import records_for

DAY = dt.date(2025, 1, 2)
FAST_RETRY = RetrySettings(max_attempts=3, initial_backoff=0.001, max_backoff=0.01, jitter=0.0)


def _serve(records: list[dict], *, page_size: int, raw: bytes | None = None):
    """A transport paging ``records`` (or serving ``raw`` as the only page)."""

    def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        if raw is not None:
            return httpx.Response(200, content=raw)
        page = records[skip : skip + page_size]
        data = {"total": len(records), "skip": skip, "count": len(page), "data": page}
        return httpx.Response(200, content=orjson.dumps({"Status": "ok", "Data": data}))

    return httpx.MockTransport(handler)


def _both(transport: Callable[[], httpx.MockTransport], page_size: int):
    """The same query read column-wise and record by record."""
    results = []
    for record_type in (TRADES_CLOSED.record_type, None):
        with RiskApiClient("http://api.test/", "k", transport=transport(), retry=FAST_RETRY) as c:
            results.append(
                c.fetch_all(
                    "v2/trades/closed",
                    page_size=page_size,
                    compare_fields=frozenset(TRADES_CLOSED.by_api),
                    record_type=record_type,
                    recovery_passes=0,
                )
            )
    return results


def _parsed(result):
    return parse_records(
        TRADES_CLOSED.name,
        result.records if result.columns is None else result.columns,
        partition=DAY,
        superseded=result.superseded,
    )


def _assert_same(columns, records) -> None:
    a, b = _parsed(columns), _parsed(records)
    assert_frame_equal(a.valid, b.valid)
    assert_frame_equal(a.quarantine, b.quarantine)
    assert a.profile == b.profile
    assert a.unknown_fields == b.unknown_fields
    assert (columns.served, columns.shortfall) == (records.served, records.shortfall)


def test_plain_pages_become_one_table_with_the_same_rows_checks_and_profile():
    records = records_for("trades_closed", DAY, 25)
    records[3]["stopLoss"] = None  # nulls written as null: still plain
    records[4]["lots"] = -1.0  # a rule broken: quarantined the same way, from columns
    records[5]["side"] = "sELL"  # any case: canonical spelling
    records[6]["closeTime"] = "2025-01-02 10:00"  # no offset: not a timestamp
    columns, by_record = _both(lambda: _serve(records, page_size=10), page_size=10)
    assert columns.columns is not None and columns.records == []
    assert columns.columns.num_rows == 25
    assert by_record.columns is None
    _assert_same(columns, by_record)
    parsed = _parsed(columns)
    assert parsed.quarantine.height == 2
    assert "lots: must be > 0 (got -1.0)" in parsed.quarantine["reason"].to_list()


def _page(body_records: bytes) -> bytes:
    return b'{"Status":"ok","Data":{"total":3,"data":[' + body_records + b"]}}"


def _json(record: dict) -> bytes:
    return orjson.dumps(record)


@pytest.mark.parametrize(
    "change",
    [
        "string_in_a_number",
        "integer_as_float",
        "unknown_field",
        "absent_optional_field",
        "absent_required_field",
        "not_an_object",
        "repeated_key",
    ],
)
def test_a_page_that_is_not_plain_is_read_record_by_record(change: str):
    records = records_for("trades_closed", DAY, 3)
    raw: bytes | None = None
    if change == "string_in_a_number":
        records[1]["profit"] = "12.5"
    elif change == "integer_as_float":
        records[1]["broker"] = 1.0
    elif change == "unknown_field":
        records[1]["rebate"] = 0.4
    elif change == "absent_optional_field":
        records[0]["stopLoss"] = None
        del records[1]["stopLoss"]
    elif change == "absent_required_field":
        records[2]["takeProfit"] = None
        del records[1]["profit"]
    elif change == "not_an_object":
        raw = _page(b",".join([_json(records[0]), b"null", _json(records[2])]))
    elif change == "repeated_key":
        raw = _page(b",".join([_json(records[0]), _json(records[0]), _json(records[2])]))
    columns, by_record = _both(lambda: _serve(records, page_size=10, raw=raw), page_size=10)
    assert columns.columns is None
    assert columns.records == by_record.records
    _assert_same(columns, by_record)


def test_a_nan_literal_is_flagged_as_record_by_record():
    records = records_for("trades_closed", DAY, 2)
    records[1]["profit"] = 1.5
    bad = _json(records[1]).replace(b'"profit":1.5', b'"profit":NaN')
    raw = _page(b",".join([_json(records[0]), bad]))
    columns, by_record = _both(lambda: _serve(records, page_size=10, raw=raw), page_size=10)
    assert columns.columns is None
    _assert_same(columns, by_record)
    assert "NaN literal" in _parsed(columns).quarantine["reason"][0]
