"""The trading calendar: sessions, holidays and the span each prediction is for."""

import datetime as dt

import pytest

from daily_profit.config import Settings
from daily_profit.trading_calendar import TradingCalendar, parse_weekdays

FRI = dt.date(2025, 1, 3)
MON = dt.date(2025, 1, 6)


def test_friday_targets_the_weekend_and_monday() -> None:
    cal = TradingCalendar()
    assert cal.target_span(FRI) == (dt.date(2025, 1, 4), MON)
    assert cal.target_span(MON) == (dt.date(2025, 1, 7), dt.date(2025, 1, 7))


def test_a_holiday_extends_the_span_and_is_not_a_session() -> None:
    cal = TradingCalendar(holidays=frozenset({MON}))
    assert not cal.is_session(MON)
    assert cal.target_span(FRI) == (dt.date(2025, 1, 4), dt.date(2025, 1, 7))
    assert cal.previous_session(dt.date(2025, 1, 7)) == FRI
    assert cal.sessions(FRI, dt.date(2025, 1, 8)) == [FRI, dt.date(2025, 1, 7), dt.date(2025, 1, 8)]


def test_sessions_back_skips_non_sessions() -> None:
    cal = TradingCalendar()
    assert cal.sessions_back(dt.date(2025, 1, 5), 2) == [dt.date(2025, 1, 2), FRI]


def test_span_table_matches_target_span() -> None:
    cal = TradingCalendar(weekdays=parse_weekdays("mon-thu,sun"))
    days = [FRI + dt.timedelta(days=i) for i in range(10)]
    table = cal.span_table(days)
    for row in table.iter_rows(named=True):
        assert (row["target_start"], row["target_end"]) == cal.target_span(row["date"])
        assert row["is_session"] == cal.is_session(row["date"])


def test_weekdays_parse_names_and_ranges() -> None:
    assert parse_weekdays("mon,tue,wed,thu,fri") == frozenset(range(5))
    assert parse_weekdays("mon-fri") == frozenset(range(5))
    assert parse_weekdays("fri-mon") == frozenset({4, 5, 6, 0})
    with pytest.raises(ValueError, match="'funday' is not a weekday"):
        parse_weekdays("mon,funday")


def test_calendar_from_settings(monkeypatch) -> None:
    monkeypatch.setenv("DAILY_PROFIT_TRADING_WEEKDAYS", "mon-sun")
    monkeypatch.setenv("DAILY_PROFIT_TRADING_HOLIDAYS", '["2025-01-01"]')
    cal = TradingCalendar.from_settings(Settings())
    assert cal.is_session(dt.date(2025, 1, 4))
    assert not cal.is_session(dt.date(2025, 1, 1))


def test_longest_span_counts_weekends_and_holidays() -> None:
    assert TradingCalendar().longest_span_days() == 3  # Friday -> Monday
    assert TradingCalendar(holidays=frozenset({MON})).longest_span_days() == 4
    assert TradingCalendar(weekdays=frozenset(range(7))).longest_span_days() == 1
