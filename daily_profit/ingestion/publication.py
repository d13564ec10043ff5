"""Which days the layers after the raw one may use: only days whose raw inputs were published.

A raw day is published when rows that passed their audit (or an operator's recorded waiver)
replaced it; a day whose first landing failed its audit holds nothing and stays unpublished.
Every layer that reads raw days asks here first and skips the days whose inputs are not all
published, so a failed day never feeds staging, features, labels or predictions. The choice is
"skip and report": the other days of a range go on, each skipped day gets a failed blocking
check naming what it waits for.

The window a layer needs for day D: staging needs D's daily metrics; features need D and the
``FEATURE_HISTORY_DAYS`` before it of every daily source they read (a lookback on a hole would
silently read it as an idle day), clipped at the first partition; labels need D's target span
once a later day has landed (before that the label is pending, not wrong).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from daily_profit.trading_calendar import TradingCalendar
from daily_profit.warehouse.io import Warehouse

RAW_INPUTS_PUBLISHED = "raw_inputs_published"


@dataclass(frozen=True)
class Requirement:
    """A raw table that day D needs, over ``before`` days before D up to ``after`` days after;
    with ``span`` (a label's), up to the end of D's target span on that trading calendar."""

    table: str
    before: int = 0
    after: int = 0
    span: TradingCalendar | None = None

    def window(self, day: dt.date, first: dt.date) -> list[dt.date]:
        start = max(day - dt.timedelta(days=self.before), first)
        end = self.span.target_span(day)[1] if self.span is not None else day
        end += dt.timedelta(days=self.after)
        return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]

    @property
    def reaches_after(self) -> bool:
        return self.after > 0 or self.span is not None


def unpublished_inputs(
    store: Warehouse,
    days: Sequence[dt.date],
    requirements: Sequence[Requirement],
    *,
    first_day: dt.date,
    last_day: dt.date | None = None,
) -> dict[dt.date, list[str]]:
    """For each of ``days`` that may not be computed, the raw partitions it waits for.

    ``last_day`` clips the windows that reach after D (a label's span): days past it are not
    required yet.
    """
    if not days:
        return {}
    lo = max(min(days) - dt.timedelta(days=max(r.before for r in requirements)), first_day)
    hi = max(r.window(max(days), first_day)[-1] for r in requirements)
    published = store.published_days([r.table for r in requirements], lo, hi)
    blocked: dict[dt.date, list[str]] = {}
    for day in days:
        missing = [
            f"{r.table} {d.isoformat()}"
            for r in requirements
            for d in r.window(day, first_day)
            if (last_day is None or d <= last_day) and d not in published[r.table]
        ]
        if missing:
            blocked[day] = missing
    return blocked


def summary(blocked: Mapping[dt.date, list[str]], limit: int = 20) -> dict[str, list[str]]:
    """Skipped days and what each waits for, for metadata (the first ``limit`` of each)."""
    return {day.isoformat(): waits[:limit] for day, waits in sorted(blocked.items())}
