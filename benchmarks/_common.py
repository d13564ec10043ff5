"""Shared helpers of the benchmarks: one JSON line per figure, scratch PostgreSQL databases.

Every figure is printed as one JSON object on its own line::

    {"name": "...", "value": 123.4, "unit": "rows/s", "baseline": 13500.0, "ratio": 9.1,
     "params": {...}}

``baseline`` is the figure of the method being replaced, measured in the same run (or null
when there is none); ``ratio`` is value / baseline.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def report(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print one figure as a JSON line on stdout and return it."""
    ratio = None if not baseline else value / baseline
    line = {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": None if ratio is None else round(ratio, 3),
        "params": params or {},
    }
    print(json.dumps(line), flush=True)
    return line


def log(message: str) -> None:
    """Progress for humans, on stderr: stdout carries only the JSON lines."""
    print(message, file=sys.stderr, flush=True)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median_time(fn: Callable[[], object], repeat: int) -> float:
    return statistics.median(timed(fn)[0] for _ in range(repeat))


def pg_admin_url() -> str:
    return os.environ.get("DAILY_PROFIT_BENCH_PG_ADMIN_URL", DEFAULT_PG_ADMIN_URL)


@contextmanager
def scratch_postgres_database(
    admin_url: str | None = None, prefix: str = "dp_bench"
) -> Iterator[str]:
    """Create a brand-new PostgreSQL database, yield its URL, drop it afterwards."""
    import sqlalchemy as sa

    from daily_profit.warehouse.io import normalise_url

    admin = sa.create_engine(
        normalise_url(admin_url or pg_admin_url()),
        isolation_level="AUTOCOMMIT",
        hide_parameters=True,
    )
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
