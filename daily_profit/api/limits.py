"""The API key's allowance, shared by every process and run that uses the key.

The contract grants about 15 requests/s per key (bursts of 20) across all its users at once, so a
limiter that lives in one process is not enough: several Dagster runs ingesting at the same time
would each spend the whole allowance and collect 429s. pyrate-limiter keeps the request log in a
SQLite file guarded by a file lock, which every process on the machine shares; on a cluster,
point ``DAILY_PROFIT_RATE_LIMIT_PATH`` at shared storage or swap in its Redis bucket.
"""

from __future__ import annotations

from pathlib import Path

from pyrate_limiter import Duration, Limiter, Rate, SQLiteBucket

# The contract's allowance. Staying at 15/s (never bursting) keeps the server's bucket from ever
# running dry, which is what "few 429s" needs.
CONTRACT_REQUESTS_PER_SECOND = 15


class SharedAllowance:
    """Blocks until the key's shared allowance admits one more request."""

    def __init__(
        self, state_path: Path, requests_per_second: int = CONTRACT_REQUESTS_PER_SECOND
    ) -> None:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        bucket = SQLiteBucket.init_from_file(
            [Rate(requests_per_second, Duration.SECOND)],
            db_path=str(state_path),
            use_file_lock=True,
        )
        self._limiter = Limiter(bucket)
        self.requests_per_second = requests_per_second

    def acquire(self) -> None:
        self._limiter.try_acquire("risk_api", blocking=True)
