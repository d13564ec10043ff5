"""The client's retry, Retry-After, breaker and de-duplication rules, on a scripted transport.

These pin the exact decisions (what is retried, how long it waits, when the breaker opens);
``test_client_sandbox.py`` shows the same behaviour against the real sandbox over HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from daily_profit.api.client import (
    BreakerSettings,
    RereadSettings,
    RetrySettings,
    RiskApiClient,
)
from daily_profit.api.errors import (
    RiskApiAuthError,
    RiskApiCircuitOpen,
    RiskApiPermanentError,
    RiskApiRateLimited,
    RiskApiTransientError,
)
from daily_profit.served import FlaggedRecord

FAST_RETRY = RetrySettings(max_attempts=5, initial_backoff=0.001, max_backoff=0.01, jitter=0.0)


def ok(records: list[dict], total: int | None = None, skip: int = 0) -> httpx.Response:
    data = {"total": total, "skip": skip, "limit": 1000, "count": len(records), "data": records}
    return httpx.Response(200, content=orjson.dumps({"Status": "ok", "Data": data}))


def scripted(responses: list[Callable[[httpx.Request], httpx.Response] | httpx.Response]):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = responses[min(len(seen) - 1, len(responses) - 1)]
        return step(request) if callable(step) else step

    return httpx.MockTransport(handler), seen


def client_for(transport: httpx.MockTransport, **kwargs) -> RiskApiClient:
    kwargs.setdefault("retry", FAST_RETRY)
    return RiskApiClient("http://api.test/external", "secret-key", transport=transport, **kwargs)


def test_transient_failures_are_retried_until_success():
    transport, seen = scripted(
        [
            httpx.Response(503, json={"Status": "error", "Error": "busy"}),
            httpx.Response(200, json={"Status": "fail", "Error": "backend hiccup"}),
            ok([{"date": "2025-01-01T00:00:00.000Z"}], total=1),
        ]
    )
    with client_for(transport) as client:
        page = client.get_page("v2/regimes/daily", {"dates": "20250101"})
    assert page.records == [{"date": "2025-01-01T00:00:00.000Z"}]
    assert len(seen) == 3
    assert client.stats.snapshot()["retries"] == 2
    assert seen[0].headers["apiKey"] == "secret-key"
    assert "secret-key" not in str(seen[0].url)


def test_retry_after_is_honoured():
    transport, _ = scripted(
        [httpx.Response(429, headers={"Retry-After": "0.3"}, json={"Status": "fail"}), ok([], 0)]
    )
    slow_cap = RetrySettings(max_attempts=3, initial_backoff=0.001, max_backoff=1.0, jitter=0.0)
    with client_for(transport, retry=slow_cap) as client:
        started = time.perf_counter()
        client.get_page("v2/regimes/daily")
        waited = time.perf_counter() - started
    assert waited >= 0.3
    assert client.stats.snapshot()["rate_limited"] == 1


def test_permanent_errors_fail_at_once_and_name_the_call_not_the_key():
    transport, seen = scripted([httpx.Response(400, json={"Status": "fail", "Error": "bad dates"})])
    with client_for(transport) as client, pytest.raises(RiskApiPermanentError) as caught:
        client.get_page("v2/metrics/daily", {"dates": "2025-13-01"})
    assert len(seen) == 1
    message = str(caught.value)
    assert "v2/metrics/daily" in message and "dates=2025-13-01" in message
    assert "bad dates" in message and "secret-key" not in message


def test_wrong_key_is_an_auth_error():
    transport, _ = scripted([httpx.Response(401, json={"Status": "fail", "Error": "bad key"})])
    with client_for(transport) as client, pytest.raises(RiskApiAuthError):
        client.get_page("accounts")


def test_retries_are_bounded():
    transport, seen = scripted([httpx.Response(502, text="bad gateway")])
    with client_for(transport) as client, pytest.raises(RiskApiTransientError):
        client.get_page("accounts")
    assert len(seen) == FAST_RETRY.max_attempts


def test_breaker_opens_after_repeated_failures_and_fails_fast():
    transport, seen = scripted([httpx.Response(500, json={"Status": "error", "Error": "down"})])
    breaker = BreakerSettings(fail_max=3, reset_seconds=60)
    with client_for(transport, breaker=breaker) as client:
        with pytest.raises((RiskApiTransientError, RiskApiCircuitOpen)):
            client.get_page("accounts")
        calls_when_open = len(seen)
        with pytest.raises(RiskApiCircuitOpen):
            client.get_page("accounts")
        assert len(seen) == calls_when_open == 3
        assert client.breaker_state == "open"


def test_pages_in_flight_are_fetched_at_once_while_the_breaker_is_closed():
    # Each response waits until four requests are in the transport together: a client that
    # fetched them one at a time (pybreaker's lock around the call) breaks the barrier.
    in_flight = threading.Barrier(4, timeout=5)

    def handler(request: httpx.Request) -> httpx.Response:
        in_flight.wait()
        return ok([], 0)

    with (
        client_for(httpx.MockTransport(handler), retry=RetrySettings(max_attempts=1)) as client,
        ThreadPoolExecutor(4) as pool,
    ):
        pages = list(pool.map(lambda _: client.get_page("accounts"), range(4)))
    assert [p.total for p in pages] == [0, 0, 0, 0]
    assert client.breaker_state == "closed"


def test_a_trial_after_the_reset_timeout_closes_the_breaker_again():
    transport, seen = scripted([httpx.Response(500, json={"Status": "error"})] * 2 + [ok([], 0)])
    breaker = BreakerSettings(fail_max=2, reset_seconds=0.2)
    with client_for(transport, breaker=breaker) as client:
        with pytest.raises((RiskApiTransientError, RiskApiCircuitOpen)):
            client.get_page("accounts")
        assert client.breaker_state == "open"
        time.sleep(0.25)
        assert client.get_page("accounts").total == 0
        assert client.breaker_state == "closed"
        assert len(seen) == 3


def test_rate_limiting_never_trips_the_breaker():
    responses = [httpx.Response(429, headers={"Retry-After": "0"}, json={})] * 4 + [ok([], 0)]
    transport, _ = scripted(responses)
    breaker = BreakerSettings(fail_max=2, reset_seconds=60)
    with client_for(transport, breaker=breaker) as client:
        client.get_page("accounts")
        assert client.breaker_state == "closed"


def _trade(position: str, profit: float) -> dict:
    return {
        "broker": 1,
        "platform": 5,
        "position": position,
        "tradeDate": "2025-01-02",
        "profit": profit,
    }


def test_fetch_all_deduplicates_and_reports_conflicts():
    pages = {
        0: [_trade("1", 1.0), _trade("2", 2.0)],
        2: [_trade("2", 2.0), _trade("3", 3.0)],  # "2" repeated identically
        4: [_trade("3", 9.0), _trade("4", 4.0)],  # "3" repeated with another value
    }

    def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        return ok(pages.get(skip, []), total=6, skip=skip)

    with client_for(httpx.MockTransport(handler)) as client:
        result = client.fetch_all("v2/trades/closed", {"trade-date": "20250102"}, page_size=2)
    assert sorted(r["position"] for r in result.records) == ["1", "2", "3", "4"]
    assert result.identical_duplicates == 1
    assert result.conflicting_duplicates == 1
    # Served last wins; the other copy is handed back for the quarantine, not dropped.
    assert result.conflicts[0]["kept"]["profit"] == 9.0
    assert [r["profit"] for r in result.superseded] == [3.0]
    assert result.conflicts[0]["key"] == {
        "broker": 1,
        "platform": 5,
        "position": "3",
        "tradeDate": "2025-01-02",
    }
    assert result.served == 5
    assert result.shortfall == 2


def test_fetch_all_recovers_skipped_records_with_smaller_pages():
    everything = [_trade(str(i), float(i)) for i in range(10)]
    first_pass = {"done": False}

    def handler(request: httpx.Request) -> httpx.Response:
        skip, limit = int(request.url.params["skip"]), int(request.url.params["limit"])
        page = everything[skip : skip + limit]
        if limit == 5 and skip == 5:
            first_pass["done"] = True
            page = page[1:]  # the live data shifted: one record slipped between pages
        return ok(page, total=10, skip=skip)

    with client_for(httpx.MockTransport(handler)) as client:
        result = client.fetch_all("v2/trades/closed", page_size=5, recovery_passes=1)
    assert first_pass["done"]
    assert len(result.records) == 10
    assert result.recovered == 1 and result.recovery_passes == 1
    assert result.shortfall == 0


def test_fetch_all_declares_a_shortfall_it_cannot_recover():
    def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        return ok([_trade("1", 1.0)] if skip == 0 else [], total=3, skip=skip)

    with client_for(httpx.MockTransport(handler)) as client:
        result = client.fetch_all("v2/trades/closed", page_size=1, recovery_passes=2)
    assert result.shortfall == 2


def test_a_copy_served_again_by_a_reread_is_the_last_served():
    # First pass: "1" then a conflicting "1"; the re-read (smaller pages) serves the first
    # body again, so that one is the API's latest word.
    first_pass = [_trade("1", 1.0), _trade("1", 7.0)]

    def handler(request: httpx.Request) -> httpx.Response:
        skip, limit = int(request.url.params["skip"]), int(request.url.params["limit"])
        if limit == 2:
            return ok(first_pass if skip == 0 else [], total=2, skip=skip)
        return ok([_trade("1", 1.0)] if skip == 0 else [_trade("2", 2.0)], total=2, skip=skip)

    with client_for(httpx.MockTransport(handler)) as client:
        result = client.fetch_all("v2/trades/closed", page_size=2, recovery_passes=1)
    assert {r["position"]: r["profit"] for r in result.records} == {"1": 1.0, "2": 2.0}
    assert [r["profit"] for r in result.superseded] == [7.0]
    assert result.identical_duplicates == 0  # a re-read's repeats are expected
    assert result.rereads == 2 and result.recovery_passes == 1


def test_metrics_rows_without_account_id_are_matched_by_their_identity():
    def row(net: float) -> dict:
        return {
            "accountId": None,
            "login": "1001",
            "mt_version": 5,
            "broker": 2,
            "date": "2025-01-02T00:00:00.000Z",
            "netProfit": net,
        }

    pages = {0: [row(1.0), row(1.0), row(4.0)]}

    def handler(request: httpx.Request) -> httpx.Response:
        return ok(pages.get(int(request.url.params["skip"]), []), total=1)

    with client_for(httpx.MockTransport(handler)) as client:
        result = client.fetch_all("v2/metrics/daily", recovery_passes=0)
    assert [r["netProfit"] for r in result.records] == [4.0]
    assert result.identical_duplicates == 1 and result.conflicting_duplicates == 1
    assert result.conflicts[0]["key"]["login"] == "1001"


def test_a_nan_or_infinity_literal_costs_only_its_record():
    body = (
        b'{"Status":"ok","Data":{"total":3,"skip":0,"limit":1000,"count":3,"data":['
        b'{"position":"1","broker":1,"platform":5,"tradeDate":"2025-01-02","profit":NaN},'
        b'{"position":"2","broker":1,"platform":5,"tradeDate":"2025-01-02","profit":2.0},'
        b'{"position":"3","broker":1,"platform":5,"tradeDate":"2025-01-02",'
        b'"x":{"y":[1,-Infinity]}}]}}'
    )
    transport, _ = scripted([httpx.Response(200, content=body)])
    with client_for(transport) as client:
        result = client.fetch_all("v2/trades/closed")
    flagged = [r for r in result.records if isinstance(r, FlaggedRecord)]
    assert [f.problem for f in flagged] == [
        "profit: NaN literal, not valid JSON",
        "x.y[1]: -Infinity literal, not valid JSON",
    ]
    assert '"profit":NaN' in flagged[0].raw_text
    assert [r["position"] for r in result.records if isinstance(r, dict)] == ["2"]
    assert result.shortfall == 0


def test_a_body_that_is_not_json_at_all_is_still_transient():
    transport, seen = scripted([httpx.Response(200, content=b'{"Status":"ok","Data":{'), ok([])])
    with client_for(transport) as client:
        assert client.request("v2/trades/closed") == {"Status": "ok", "Data": _empty_data()}
    assert len(seen) == 2


def _empty_data() -> dict:
    return {"total": None, "skip": 0, "limit": 1000, "count": 0, "data": []}


@pytest.mark.parametrize(
    ("data", "missing"),
    [
        ({"total": 3, "skip": 0, "count": 0}, "Data.data"),
        ({"skip": 0, "count": 0, "data": []}, "Data.total"),
        ({"total": "3", "data": []}, "Data.total"),
    ],
)
def test_an_envelope_without_data_or_total_is_a_permanent_error_naming_the_call(data, missing):
    response = httpx.Response(200, content=orjson.dumps({"Status": "ok", "Data": data}))
    transport, seen = scripted([response])
    with client_for(transport) as client, pytest.raises(RiskApiPermanentError) as caught:
        client.fetch_all("v2/trades/closed", {"trade-date": "20250102"})
    message = str(caught.value)
    assert missing in message
    assert "GET v2/trades/closed" in message and "trade-date=20250102" in message
    assert "secret-key" not in message
    assert len(seen) == 1  # not retried


def test_retry_after_is_honoured_up_to_the_configured_maximum():
    limited = httpx.Response(429, headers={"Retry-After": "30"}, content=b"{}")
    transport, seen = scripted([limited, ok([], total=0)])
    retry = RetrySettings(
        max_attempts=3, initial_backoff=0.001, max_backoff=0.01, jitter=0.0, max_retry_after=0.2
    )
    with client_for(transport, retry=retry) as client:
        started = time.perf_counter()
        client.request("v2/trades/closed")
        waited = time.perf_counter() - started
    assert len(seen) == 2
    assert 0.2 <= waited < 5


def test_a_retry_after_beyond_the_time_budget_fails_at_once():
    limited = httpx.Response(429, headers={"Retry-After": "120"}, content=b"{}")
    transport, seen = scripted([limited, ok([], total=0)])
    retry = RetrySettings(max_attempts=3, max_total_seconds=5.0, max_retry_after=300.0)
    with client_for(transport, retry=retry) as client:
        started = time.perf_counter()
        with pytest.raises(RiskApiRateLimited, match="Retry-After 120 s outlasts"):
            client.request("v2/trades/closed")
    assert time.perf_counter() - started < 2
    assert len(seen) == 1


def test_rereads_are_bounded_in_calls_and_say_how_many_they_made():
    def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        return ok([_trade("1", 1.0)] if skip == 0 else [], total=50, skip=skip)

    reread = RereadSettings(max_passes=10, max_calls=7, max_seconds=60)
    with client_for(httpx.MockTransport(handler), reread=reread) as client:
        result = client.fetch_all("v2/trades/closed", page_size=10, concurrency=1)
    assert result.rereads == 7
    assert result.reread_stopped == "call limit"
    assert result.shortfall == 49


def test_rereads_are_bounded_in_time():
    def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        if int(request.url.params["limit"]) < 10:
            time.sleep(0.05)
        return ok([_trade("1", 1.0)] if skip == 0 else [], total=50, skip=skip)

    reread = RereadSettings(max_passes=10, max_calls=10_000, max_seconds=0.3)
    with client_for(httpx.MockTransport(handler), reread=reread) as client:
        started = time.perf_counter()
        result = client.fetch_all("v2/trades/closed", page_size=10, concurrency=1)
    assert result.reread_stopped == "time limit"
    assert 0 < result.rereads < 20
    assert time.perf_counter() - started < 3
