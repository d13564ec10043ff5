"""The trading calendar: which days are sessions, and what span a prediction of day D is for.

The desk thinks in sessions, not calendar days. A prediction made at the close of session D is
for the account's net P&L from the day after D up to and including the next session: Friday's
target is Saturday + Sunday + Monday, so weekend trading is neither lost nor a target of its own
(a Saturday with no trading is not a "trivially right" zero to predict). Labels, the nightly
cron, the predictions' deadline and the monitoring's rolling windows all follow this calendar.

The calendar is known at D: a holiday must be configured before the session it removes. It
comes from the settings (``DAILY_PROFIT_TRADING_WEEKDAYS``, ``DAILY_PROFIT_TRADING_HOLIDAYS``);
by default Monday to Friday without holidays. No Dagster here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import polars as pl

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_WEEKDAYS = frozenset(range(5))
# A calendar without a session in this many days is a configuration error, not a long holiday.
MAX_GAP_DAYS = 31


def parse_weekdays(text: str) -> frozenset[int]:
    """``"mon,tue,wed,thu,fri"`` (or ``"mon-fri"``) -> {0, 1, 2, 3, 4}; Monday is 0."""
    days: set[int] = set()
    for part in (p.strip().lower() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        if "-" in part:
            first, last = (WEEKDAY_NAMES.index(x.strip()[:3]) for x in part.split("-", 1))
            days.update(
                range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)]
            )
            continue
        if part[:3] not in WEEKDAY_NAMES:
            raise ValueError(
                f"trading weekdays: {part!r} is not a weekday (use {', '.join(WEEKDAY_NAMES)})"
            )
        days.add(WEEKDAY_NAMES.index(part[:3]))
    if not days:
        raise ValueError("trading weekdays: at least one weekday must be a session")
    return frozenset(days)


@dataclass(frozen=True)
class TradingCalendar:
    """Sessions are the ``weekdays`` (Monday = 0) that are not ``holidays``."""

    weekdays: frozenset[int] = DEFAULT_WEEKDAYS
    holidays: frozenset[dt.date] = frozenset()

    def __post_init__(self) -> None:
        if not self.weekdays or not set(self.weekdays) <= set(range(7)):
            raise ValueError(
                f"trading weekdays must be a non-empty subset of 0..6: {self.weekdays}"
            )

    @classmethod
    def from_settings(cls, settings: object | None = None) -> TradingCalendar:
        if settings is None:
            from daily_profit.config import get_settings

            settings = get_settings()
        return cls(
            weekdays=parse_weekdays(settings.trading_weekdays),  # type: ignore[attr-defined]
            holidays=frozenset(settings.trading_holidays),  # type: ignore[attr-defined]
        )

    @cached_property
    def description(self) -> str:
        days = ",".join(WEEKDAY_NAMES[d] for d in sorted(self.weekdays))
        return f"sessions {days}; {len(self.holidays)} holidays"

    def is_session(self, day: dt.date) -> bool:
        return day.weekday() in self.weekdays and day not in self.holidays

    def next_session(self, day: dt.date) -> dt.date:
        """The first session strictly after ``day``."""
        for offset in range(1, MAX_GAP_DAYS + 1):
            candidate = day + dt.timedelta(days=offset)
            if self.is_session(candidate):
                return candidate
        raise ValueError(f"no trading session within {MAX_GAP_DAYS} days after {day}")

    def previous_session(self, day: dt.date) -> dt.date:
        """The last session strictly before ``day``."""
        for offset in range(1, MAX_GAP_DAYS + 1):
            candidate = day - dt.timedelta(days=offset)
            if self.is_session(candidate):
                return candidate
        raise ValueError(f"no trading session within {MAX_GAP_DAYS} days before {day}")

    def sessions(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Every session in [start, end]."""
        n = (end - start).days + 1
        return [d for i in range(max(n, 0)) if self.is_session(d := start + dt.timedelta(days=i))]

    def sessions_back(self, day: dt.date, n: int) -> list[dt.date]:
        """The last ``n`` sessions up to and including ``day`` (fewer near the calendar's start
        is the caller's concern: this walks back as far as needed)."""
        out: list[dt.date] = []
        current = day if self.is_session(day) else self.previous_session(day)
        while len(out) < n:
            out.append(current)
            current = self.previous_session(current)
        return sorted(out)

    def target_span(self, day: dt.date) -> tuple[dt.date, dt.date]:
        """The days whose P&L the prediction made at the close of ``day`` is for:
        (the day after ``day``, the next session), both included."""
        return day + dt.timedelta(days=1), self.next_session(day)

    def longest_span_days(self) -> int:
        """The most days a target span covers on this calendar: the longest weekly gap between
        sessions, or a longer one around a holiday (what a label of D may read after D)."""
        plain = TradingCalendar(self.weekdays)
        week = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(7)]
        weekly = max((plain.target_span(d)[1] - d).days for d in week)
        near_holidays = [
            (self.target_span(d)[1] - d).days
            for holiday in self.holidays
            for d in (holiday - dt.timedelta(days=i) for i in range(1, 8))
        ]
        return max([weekly, *near_holidays])

    def only_sessions(self, frame: pl.DataFrame, column: str = "date") -> pl.DataFrame:
        """The rows of ``frame`` whose ``column`` is a session."""
        sessions = [d for d in frame[column].unique().to_list() if self.is_session(d)]
        return frame.filter(pl.col(column).is_in(sessions))

    def with_spans(self, frame: pl.DataFrame, column: str = "date") -> pl.DataFrame:
        """The rows of ``frame`` on sessions, with ``target_start`` and ``target_end`` of each."""
        spans = self.span_table(frame[column].unique().to_list()).filter("is_session")
        return frame.join(
            spans.select(pl.col("date").alias(column), "target_start", "target_end"),
            on=column,
            how="inner",
            maintain_order="left",
        )

    def span_table(self, days: Iterable[dt.date]) -> pl.DataFrame:
        """``date``, ``is_session``, ``target_start``, ``target_end`` for each of ``days``: the
        vectorised form of ``target_span`` to join onto a frame of account-days."""
        unique = sorted(set(days))
        spans = [self.target_span(d) for d in unique]
        return pl.DataFrame(
            {
                "date": unique,
                "is_session": [self.is_session(d) for d in unique],
                "target_start": [s for s, _ in spans],
                "target_end": [e for _, e in spans],
            },
            schema={
                "date": pl.Date,
                "is_session": pl.Boolean,
                "target_start": pl.Date,
                "target_end": pl.Date,
            },
        )


def trading_calendar() -> TradingCalendar:
    """The configured calendar."""
    return TradingCalendar.from_settings()
