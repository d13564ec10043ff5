"""The API key's allowance, shared by every process and run that uses the key, on every host.

The contract grants about 15 requests/s per key (bursts of 20) across all its users at once, so a
limiter that lives in one process is not enough: several Dagster runs ingesting at the same time
would each spend the whole allowance and collect 429s. pyrate-limiter keeps the log of recent
requests where every user of the key sees it, chosen by ``DAILY_PROFIT_RATE_LIMIT_BACKEND``:

* ``file`` (the laptop default): a SQLite file under the data folder guarded by a file lock,
  shared by every process on the machine;
* ``redis``: a sorted set on a Redis server (``DAILY_PROFIT_RATE_LIMIT_REDIS_URL``), checked and
  updated atomically by a Lua script, timed by the Redis server's clock;
* ``postgres``: a table in a PostgreSQL database (``DAILY_PROFIT_RATE_LIMIT_POSTGRES_URL``, by
  default the warehouse's when that is PostgreSQL), checked and updated under a table lock, timed
  by the database server's clock.

Redis and PostgreSQL share the allowance across hosts; their server clock means hosts whose
clocks drift apart still agree on what "the last second" is.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa
from pyrate_limiter import Duration, Limiter, PostgresBucket, Rate, RedisBucket, SQLiteBucket
from pyrate_limiter.abstracts import AbstractBucket

if TYPE_CHECKING:
    from daily_profit.config import Settings

# The contract's allowance. Staying at 15/s (never bursting) keeps the server's bucket from ever
# running dry, which is what "few 429s" needs.
CONTRACT_REQUESTS_PER_SECOND = 15

RateLimitBackend = Literal["file", "redis", "postgres"]
ALLOWANCE_FILE_NAME = "risk_api_allowance.sqlite"
# Slack added to every computed wait: absorbs the round trip to the shared store and clock jitter.
# pyrate-limiter's default (50 ms) costs ~5% of the allowance at 15/s; 20 ms keeps it above 95%.
WAIT_BUFFER_MS = 20


class AllowanceConfigError(ValueError):
    """The settings name a shared allowance that cannot be built (missing or wrong URL)."""


def allowance_name(api_key: str) -> str:
    """The shared bucket's name for one API key: the same on every host, the key not in it.

    A truncated SHA-256 of a random API key reveals nothing usable; two deployments with
    different keys on one Redis or database keep apart allowances, as the API does."""
    return "risk_api_" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


class SharedAllowance:
    """Blocks until the key's shared allowance admits one more request.

    Build it with :meth:`from_settings` (what the resources do) or one of :meth:`on_file`,
    :meth:`on_redis`, :meth:`on_postgres`; release its connections with :meth:`close`."""

    def __init__(
        self, bucket: AbstractBucket, requests_per_second: int, backend: RateLimitBackend
    ) -> None:
        self._limiter = Limiter(bucket, buffer_ms=WAIT_BUFFER_MS)
        self.requests_per_second = requests_per_second
        self.backend: RateLimitBackend = backend

    @staticmethod
    def rates(requests_per_second: int) -> list[Rate]:
        return [Rate(requests_per_second, Duration.SECOND)]

    @classmethod
    def on_file(
        cls, state_path: Path, requests_per_second: int = CONTRACT_REQUESTS_PER_SECOND
    ) -> SharedAllowance:
        """Every process on this machine: a SQLite file guarded by a file lock."""
        state_path.parent.mkdir(parents=True, exist_ok=True)
        bucket = SQLiteBucket.init_from_file(
            cls.rates(requests_per_second), db_path=str(state_path), use_file_lock=True
        )
        return cls(bucket, requests_per_second, "file")

    @classmethod
    def on_redis(
        cls,
        url: str,
        requests_per_second: int = CONTRACT_REQUESTS_PER_SECOND,
        *,
        name: str = "risk_api",
    ) -> SharedAllowance:
        """Every process on every host that reaches this Redis server."""
        from redis import Redis

        bucket = RedisServerClockBucket.init(
            cls.rates(requests_per_second), Redis.from_url(url), f"daily_profit:allowance:{name}"
        )
        return cls(bucket, requests_per_second, "redis")

    @classmethod
    def on_postgres(
        cls,
        url: str,
        requests_per_second: int = CONTRACT_REQUESTS_PER_SECOND,
        *,
        name: str = "risk_api",
    ) -> SharedAllowance:
        """Every process on every host that reaches this PostgreSQL database."""
        from psycopg_pool import ConnectionPool

        # One request at a time per client, plus the clock query: two connections are plenty.
        pool = ConnectionPool(libpq_url(url), min_size=1, max_size=2, open=True)
        bucket = PostgresBucket(pool, f"daily_profit_{name}", cls.rates(requests_per_second))
        return cls(bucket, requests_per_second, "postgres")

    @classmethod
    def from_settings(
        cls, settings: Settings, requests_per_second: int = CONTRACT_REQUESTS_PER_SECOND
    ) -> SharedAllowance:
        """The allowance the settings choose (``DAILY_PROFIT_RATE_LIMIT_BACKEND``)."""
        backend = settings.rate_limit_backend
        if backend == "file":
            return cls.on_file(settings.data_dir / ALLOWANCE_FILE_NAME, requests_per_second)
        name = allowance_name(settings.risk_api_key.get_secret_value())
        if backend == "redis":
            if settings.rate_limit_redis_url is None:
                raise AllowanceConfigError(
                    "DAILY_PROFIT_RATE_LIMIT_BACKEND=redis needs DAILY_PROFIT_RATE_LIMIT_REDIS_URL"
                )
            return cls.on_redis(
                settings.rate_limit_redis_url.get_secret_value(), requests_per_second, name=name
            )
        url = (
            settings.rate_limit_postgres_url.get_secret_value()
            if settings.rate_limit_postgres_url is not None
            else settings.resolved_warehouse_url
        )
        if not is_postgres_url(url):
            raise AllowanceConfigError(
                "DAILY_PROFIT_RATE_LIMIT_BACKEND=postgres needs a PostgreSQL database: set "
                "DAILY_PROFIT_RATE_LIMIT_POSTGRES_URL, or a PostgreSQL DAILY_PROFIT_WAREHOUSE_URL"
            )
        return cls.on_postgres(url, requests_per_second, name=name)

    def acquire(self) -> None:
        self._limiter.try_acquire("risk_api", blocking=True)

    def close(self) -> None:
        """Stop the background leak and release the store's connections."""
        self._limiter.close()


class RedisServerClockBucket(RedisBucket):
    """RedisBucket timed by the Redis server: hosts with drifting clocks share one timeline.

    (pyrate-limiter's RedisBucket reads the local clock; its docs suggest this override.)"""

    def now(self) -> int:
        seconds, microseconds = self.redis.time()  # a sync client: a (seconds, micros) pair
        return int(seconds) * 1000 + int(microseconds) // 1000


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql", "postgres://"))


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (``postgresql+psycopg://...``) as libpq takes it."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = sa.make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)
