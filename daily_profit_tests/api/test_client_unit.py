"""The client's retry, Retry-After, breaker and de-duplication rules, on a scripted transport.

These pin the exact decisions (what is retried, how long it waits, when the breaker opens);
``test_client_sandbox.py`` shows the same behaviour against the real sandbox over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import orjson
import pytest

from daily_profit.api.client import BreakerSettings, RetrySettings, RiskApiClient
from daily_profit.api.errors import (
    RiskApiAuthError,
    RiskApiCircuitOpen,
    RiskApiPermanentError,
    RiskApiTransientError,
)

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
    assert result.conflicts[0]["kept"]["profit"] == 3.0
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
