"""The one daily partitioning of the graph: the broker's trading date, from the configured start.

With the built-in sandbox the partitions end on the day its clock stands on (the last simulated
day unless a test or an operator holds days back), so the UI offers exactly the days that have
data; the end follows the clock when the code location reloads. Against the real API they run
up to yesterday.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from daily_profit.config import get_settings
from daily_profit.sandbox.clock import sandbox_current_day


def _daily_partitions() -> dg.DailyPartitionsDefinition:
    settings = get_settings()
    end = sandbox_current_day(settings) + dt.timedelta(days=1) if settings.uses_sandbox else None
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(),
        end_date=end.isoformat() if end else None,
        fmt="%Y-%m-%d",
        # A partition is the broker's trading day: it closes at the broker's rollover.
        timezone=settings.broker_timezone,
    )


daily_partitions = _daily_partitions()


def partition_day(key: str) -> dt.date:
    return dt.date.fromisoformat(key)


def days_in_window(window: dg.TimeWindow) -> list[dt.date]:
    """The trading dates a partition time window covers (end exclusive)."""
    start, end = window.start.date(), window.end.date()
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]
