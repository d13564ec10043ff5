"""The client against the real sandbox over HTTP: paging, auth, faults, the shared allowance."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from daily_profit.api.client import BreakerSettings, RetrySettings, RiskApiClient
from daily_profit.api.errors import RiskApiAuthError, RiskApiCircuitOpen, RiskApiTransientError
from daily_profit.api.limits import SharedAllowance
from daily_profit.sandbox.server import RateLimit, SandboxServer
from daily_profit.sandbox.simulation import SimulationConfig, simulate

FAST_RETRY = RetrySettings(max_attempts=6, initial_backoff=0.01, max_backoff=0.05, jitter=0.0)


@pytest.fixture(scope="module")
def data():
    return simulate(SimulationConfig(n_accounts=30, n_days=8, seed=3))


@pytest.fixture(scope="module")
def open_sandbox(data):
    with SandboxServer(data, rate_limit=None) as server:
        yield server


def test_fetch_all_pages_through_everything_the_api_holds(open_sandbox, data):
    with RiskApiClient(open_sandbox.base_url, open_sandbox.api_key, page_size=7) as client:
        result = client.fetch_all("v2/metrics/daily", {"dates": "20250103"})
    day_rows = data.metrics_daily.filter(
        data.metrics_daily["date"].cast(str).str.slice(0, 10) == "2025-01-03"
    )
    assert result.total == day_rows.height == len(result.records)
    assert result.stats["calls"] == -(-day_rows.height // 7)
    assert result.shortfall == 0 and result.identical_duplicates == 0


def test_a_wrong_key_is_refused_and_never_printed(open_sandbox):
    with (
        RiskApiClient(open_sandbox.base_url, "not-the-key") as client,
        pytest.raises(RiskApiAuthError) as caught,
    ):
        client.get_page("accounts", {"logins": "1"})
    assert "not-the-key" not in str(caught.value)
    assert "accounts" in str(caught.value)


def test_retry_after_of_a_429_storm_is_honoured(open_sandbox):
    headers = {"X-Sandbox-Faults": "429=1, storm_length=2, retry_after=1, seed=4"}
    with RiskApiClient(
        open_sandbox.base_url, open_sandbox.api_key, extra_headers=headers
    ) as client:
        started = time.perf_counter()
        client.get_page("v2/regimes/daily", {"dates": "20250102"})
        waited = time.perf_counter() - started
        stats = client.stats.snapshot()
    assert stats["rate_limited"] == 2 and stats["retries"] == 2
    assert waited >= 2.0  # two 429s, each asking for one second


def test_5xx_bursts_and_failed_statuses_are_retried_through(open_sandbox):
    headers = {"X-Sandbox-Faults": "5xx=0.5, burst_length=2, fail=0.3, seed=9"}
    with RiskApiClient(
        open_sandbox.base_url,
        open_sandbox.api_key,
        extra_headers=headers,
        retry=FAST_RETRY,
        page_size=20,
    ) as client:
        result = client.fetch_all("v2/metrics/hourly", {"dates": "20250106"})
    assert result.shortfall == 0
    assert result.stats["retries"] > 0


def test_the_breaker_opens_when_the_api_keeps_failing(open_sandbox):
    headers = {"X-Sandbox-Faults": "5xx=1, burst_length=50, seed=1"}
    breaker = BreakerSettings(fail_max=4, reset_seconds=60)
    with RiskApiClient(
        open_sandbox.base_url,
        open_sandbox.api_key,
        extra_headers=headers,
        retry=FAST_RETRY,
        breaker=breaker,
    ) as client:
        with pytest.raises((RiskApiTransientError, RiskApiCircuitOpen)):
            client.get_page("accounts")
        served_before = open_sandbox.stats.requests
        with pytest.raises(RiskApiCircuitOpen):
            client.get_page("accounts")
        # Open means fail fast: the second call never reached the server.
        assert open_sandbox.stats.requests == served_before


def _spend(base_url: str, key: str, state: str, requests: int, out) -> None:
    allowance = SharedAllowance.on_file(Path(state))
    with RiskApiClient(base_url, key, limiter=allowance) as client:
        for _ in range(requests):
            client.get_page("accounts", {"logins": "1"}, limit=1)
        out.put(client.stats.snapshot())


def test_the_allowance_is_shared_across_processes(data, tmp_path):
    """Two processes on one key stay within 15 requests/s together: no 429 from the server."""
    per_process = 30
    with SandboxServer(data, rate_limit=RateLimit(15, burst=20)) as server:
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        state = str(tmp_path / "allowance.sqlite")
        workers = [
            ctx.Process(
                target=_spend, args=(server.base_url, server.api_key, state, per_process, out)
            )
            for _ in range(2)
        ]
        for w in workers:
            w.start()
        stats = [out.get(timeout=120) for _ in workers]
        for w in workers:
            w.join(timeout=30)
        assert server.stats.rate_limited == 0
    assert sum(s["calls"] for s in stats) == 2 * per_process
    assert all(s["rate_limited"] == 0 for s in stats)
