"""The shared allowance on Redis and on PostgreSQL: two processes that share one API key, each as
greedy as it can be, together get almost all of the contract's allowance and never a 429.

Each process is a separate interpreter (spawn) with its own limiter built from the same store,
as two Dagster runs on two hosts would be; the sandbox enforces the contract's allowance (15
requests/s, bursts of 20) and answers 429 beyond it.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from daily_profit.api.client import RiskApiClient
from daily_profit.api.limits import (
    CONTRACT_REQUESTS_PER_SECOND,
    AllowanceConfigError,
    SharedAllowance,
)
from daily_profit.config import Settings
from daily_profit.sandbox.server import RateLimit, SandboxServer
from daily_profit.sandbox.simulation import SimulationConfig, simulate

PROCESSES = 2
HAMMER_SECONDS = 5.0
MIN_SHARE_USED = 0.9


@pytest.fixture(scope="module")
def contract_sandbox() -> Iterator[SandboxServer]:
    data = simulate(SimulationConfig(n_accounts=10, n_days=3, seed=3))
    with SandboxServer(data, rate_limit=RateLimit(CONTRACT_REQUESTS_PER_SECOND, burst=20)) as s:
        yield s


def _allowance(backend: str, url: str, name: str) -> SharedAllowance:
    if backend == "redis":
        return SharedAllowance.on_redis(url, CONTRACT_REQUESTS_PER_SECOND, name=name)
    return SharedAllowance.on_postgres(url, CONTRACT_REQUESTS_PER_SECOND, name=name)


def _hammer(
    backend: str, store_url: str, name: str, base_url: str, key: str, ready, start, out
) -> None:
    """One process: as many requests as the shared allowance admits, until the common deadline."""
    allowance = _allowance(backend, store_url, name)
    with RiskApiClient(base_url, key, limiter=allowance) as client:
        ready.release()
        start.wait(timeout=60)
        deadline = time.time() + HAMMER_SECONDS
        requests = 0
        while time.time() < deadline:
            client.get_page("accounts", {"logins": "1"}, limit=1)
            requests += 1
        out.put({"requests": requests, **client.stats.snapshot()})
    allowance.close()


def _share_two_processes(
    backend: str, store_url: str, name: str, sandbox: SandboxServer
) -> tuple[list[dict[str, Any]], int]:
    ctx = multiprocessing.get_context("spawn")
    ready, start, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(
            target=_hammer,
            args=(backend, store_url, name, sandbox.base_url, sandbox.api_key, ready, start, out),
        )
        for _ in range(PROCESSES)
    ]
    for w in workers:
        w.start()
    try:
        for _ in workers:  # both built their limiter and client: the clock starts now
            assert ready.acquire(timeout=60), "a worker did not start"
        time.sleep(1.1)  # the server's bucket full again after the workers' start-up
        rate_limited_before = sandbox.stats.rate_limited
        start.set()
        stats = [out.get(timeout=60) for _ in workers]
        for w in workers:
            w.join(timeout=30)
            assert w.exitcode == 0
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
    return stats, sandbox.stats.rate_limited - rate_limited_before


def _assert_shared(stats: list[dict[str, Any]], server_429s: int) -> None:
    requests = sum(s["requests"] for s in stats)
    used = requests / (CONTRACT_REQUESTS_PER_SECOND * HAMMER_SECONDS)
    assert server_429s == 0
    assert all(s["rate_limited"] == 0 and s["retries"] == 0 for s in stats), stats
    # Both processes spent from it (not evenly: the buckets are not fair queues, and the
    # PostgreSQL one turns away whoever finds its table locked), together almost all of it.
    assert all(s["requests"] > 0 for s in stats), stats
    assert used >= MIN_SHARE_USED, f"{requests} requests in {HAMMER_SECONDS}s: {used:.0%}"
    print(f"{requests} requests in {HAMMER_SECONDS}s by {len(stats)} processes: {used:.0%} used")


def test_two_processes_share_the_allowance_on_redis(redis_url, contract_sandbox) -> None:
    import redis

    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        stats, server_429s = _share_two_processes("redis", redis_url, name, contract_sandbox)
    finally:
        client = redis.Redis.from_url(redis_url)
        client.delete(f"daily_profit:allowance:{name}")
        client.close()
    _assert_shared(stats, server_429s)


def test_two_processes_share_the_allowance_on_postgres(
    fresh_postgres_url, contract_sandbox
) -> None:
    name = f"test_{uuid.uuid4().hex[:12]}"
    stats, server_429s = _share_two_processes(
        "postgres", fresh_postgres_url, name, contract_sandbox
    )
    _assert_shared(stats, server_429s)
    # The log of requests lives in the database, where every host sees it.
    engine = sa.create_engine(fresh_postgres_url, hide_parameters=True)
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
    engine.dispose()
    assert f"ratelimit___daily_profit_{name}" in tables, tables


def test_the_settings_choose_the_backend(tmp_path, redis_url, postgres_url) -> None:
    on_file = SharedAllowance.from_settings(Settings(data_dir=tmp_path))
    assert on_file.backend == "file" and (tmp_path / "risk_api_allowance.sqlite").exists()
    on_file.close()
    on_redis = SharedAllowance.from_settings(
        Settings(data_dir=tmp_path, rate_limit_backend="redis", rate_limit_redis_url=redis_url)
    )
    assert on_redis.backend == "redis"
    on_redis.close()
    # PostgreSQL defaults to the warehouse's database.
    on_postgres = SharedAllowance.from_settings(
        Settings(data_dir=tmp_path, rate_limit_backend="postgres", warehouse_url=postgres_url)
    )
    assert on_postgres.backend == "postgres"
    on_postgres.close()


def test_a_backend_without_its_store_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(AllowanceConfigError, match="DAILY_PROFIT_RATE_LIMIT_REDIS_URL"):
        SharedAllowance.from_settings(Settings(data_dir=tmp_path, rate_limit_backend="redis"))
    # The default warehouse is a SQLite file: it cannot hold a shared allowance.
    with pytest.raises(AllowanceConfigError, match="DAILY_PROFIT_RATE_LIMIT_POSTGRES_URL"):
        SharedAllowance.from_settings(Settings(data_dir=tmp_path, rate_limit_backend="postgres"))
