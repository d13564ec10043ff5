"""The champion's rolling windows on a small outcomes table whose numbers are known."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from daily_profit.monitoring.performance import (
    DecayRules,
    WindowPerformance,
    champion_version,
    decay_verdict,
    rolling_performance,
    window_start,
)
from daily_profit.trading_calendar import TradingCalendar
from daily_profit_tests.monitoring.outcomes_factory import (
    LAST_DAY,
    SHARP_SESSIONS,
    known_history,
    known_outcomes,
    weekdays,
)

CALENDAR = TradingCalendar()  # Monday to Friday


def test_windows_count_trading_sessions_back_from_the_day() -> None:
    assert window_start(CALENDAR, LAST_DAY, 1) == LAST_DAY
    # Friday 14 March, 7 sessions: back to Thursday 6 March over one weekend.
    assert window_start(CALENDAR, LAST_DAY, 7) == dt.date(2025, 3, 6)
    start = window_start(CALENDAR, LAST_DAY, 28)
    assert len(weekdays(start, LAST_DAY)) == 28 and start == dt.date(2025, 2, 5)


def test_rolling_windows_of_the_champion_against_the_best_baseline() -> None:
    outcomes = known_outcomes()
    history = known_history()
    version, windows = rolling_performance(outcomes, history, LAST_DAY, CALENDAR)
    assert version == "1"  # the challenger's rows never enter the champion's windows
    day, week, month = windows[1], windows[7], windows[28]

    assert day.metrics["rows"] == 10 and day.metrics["days"] == 1
    assert day.metrics["rmse"] == pytest.approx(1.0) and day.metrics["mae"] == pytest.approx(1.0)
    # The last 7 sessions are the sharp ones: 1 off everywhere.
    assert week.metrics["days"] == SHARP_SESSIONS
    assert week.metrics["rmse"] == pytest.approx(1.0)
    # 28 sessions: 7 days 1 off and 21 days 2 off.
    assert month.metrics["days"] == 28 and month.metrics["rows"] == 280
    assert month.metrics["rmse"] == pytest.approx(math.sqrt((7 * 1 + 21 * 4) / 28))
    assert month.metrics["mae"] == pytest.approx((7 * 1 + 21 * 2) / 28)
    for window in (day, week, month):
        assert window.metrics["coverage"] == pytest.approx(0.9)
        assert window.metrics["breach_brier"] == pytest.approx(0.01)
    # P&L swinging between +10 and -10: the zero baseline is exactly 10 off, and none of the
    # mean baselines does better than ~10 (yesterday's is 20 off).
    assert month.best_baseline in {
        "zero",
        "trailing_20_sessions",
        "account_mean",
        "trailing_5_sessions",
    }
    assert 9.0 <= month.metrics["best_baseline_rmse"] <= 10.0 + 1e-9
    assert month.metrics["rmse_vs_best_baseline"] == pytest.approx(
        month.metrics["rmse"] / month.metrics["best_baseline_rmse"]
    )
    assert decay_verdict(month, DecayRules()).decayed is False


def test_the_champion_is_the_version_that_predicted_the_day_as_champion() -> None:
    outcomes = known_outcomes()
    assert champion_version(outcomes, LAST_DAY) == "1"
    assert (
        champion_version(outcomes.filter(outcomes["model_role"] == "challenger"), LAST_DAY) is None
    )


def _window(days: int, rmse: float, best: float, coverage: float) -> WindowPerformance:
    metrics = {"days": float(days), "rmse": rmse, "best_baseline_rmse": best, "coverage": coverage}
    return WindowPerformance(28, LAST_DAY, LAST_DAY, metrics, "account_mean")


@pytest.mark.parametrize(
    ("window", "decayed", "says"),
    [
        (_window(28, 104.0, 100.0, 0.90), False, "in line"),
        (_window(28, 106.0, 100.0, 0.90), True, "worse than the best baseline (account_mean)"),
        (_window(28, 90.0, 100.0, 0.80), True, "coverage of the 90% interval 80.0%"),
        (_window(28, 90.0, 100.0, 0.97), True, "outside 85%-95%"),
        (_window(5, 500.0, 100.0, 0.10), False, "not judged: 5 days"),
    ],
)
def test_decay_is_the_error_beyond_the_margin_or_coverage_out_of_band(
    window: WindowPerformance, decayed: bool, says: str
) -> None:
    verdict = decay_verdict(window, DecayRules(rmse_margin=0.05, min_days=10))
    assert verdict.decayed is decayed
    assert any(says in reason for reason in verdict.reasons), verdict.reasons
