"""A small outcomes table with known numbers, and the labels that go with it.

Ten accounts, every weekday from FIRST_DAY to LAST_DAY. Each account's realised P&L swings
between +10 and -10 from one day to the next (so the mean baselines are ~10 off), the champion
(version "1") is 2 off on every row but 1 off in the last SHARP_SESSIONS sessions, and its 90%
interval covers nine accounts in ten. A challenger (version "2") is far off everywhere: the
champion's windows must not see it.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from daily_profit.features.labels import LABEL_SCHEMA
from daily_profit.modeling.outcomes import OUTCOME_SCHEMA
from daily_profit.trading_calendar import TradingCalendar

FIRST_DAY, LAST_DAY = dt.date(2025, 2, 3), dt.date(2025, 3, 14)  # Monday .. Friday
SHARP_SESSIONS = 7
ACCOUNTS = [f"acct-{i}" for i in range(10)]


def weekdays(first: dt.date = FIRST_DAY, last: dt.date = LAST_DAY) -> list[dt.date]:
    n = (last - first).days + 1
    return [d for i in range(n) if (d := first + dt.timedelta(days=i)).weekday() < 5]


def known_outcomes() -> pl.DataFrame:
    days = weekdays()
    sharp_from = days[-SHARP_SESSIONS]
    rows = []
    for k, day in enumerate(days):
        for i, account in enumerate(ACCOUNTS):
            realised = 10.0 if (k + i) % 2 == 0 else -10.0
            miss = 1.0 if day >= sharp_from else 2.0
            expected = realised - miss
            # Account 9's interval sits above the outcome: nine in ten covered.
            p05, p95 = (expected + 3, expected + 5) if i == 9 else (expected - 5, expected + 5)
            common = {
                "date": day,
                "account_id": account,
                "breach_probability": 0.1,
                "realised_net_profit": realised,
                "realised_breach": False,
                "new_account": False,
            }
            rows.append(
                common
                | {
                    "model_version": "1",
                    "model_role": "champion",
                    "expected_net_profit": expected,
                    "p05": p05,
                    "p95": p95,
                    "error": miss,
                    "covered": p05 <= realised <= p95,
                }
            )
            rows.append(
                common
                | {
                    "model_version": "2",
                    "model_role": "challenger",
                    "expected_net_profit": realised + 500.0,
                    "p05": realised + 400.0,
                    "p95": realised + 600.0,
                    "error": -500.0,
                    "covered": False,
                }
            )
    frame = TradingCalendar().with_spans(pl.DataFrame(rows))
    return frame.select(OUTCOME_SCHEMA.names()).cast(dict(OUTCOME_SCHEMA))


def known_labels() -> pl.DataFrame:
    """The labels of the same account-days: the realised P&L of each session's target span."""
    outcomes = known_outcomes().filter(pl.col("model_version") == "1")
    return outcomes.select(
        "date",
        "account_id",
        "target_start",
        "target_end",
        pl.lit("observed").alias("label_status"),
        pl.lit(True).alias("label_available"),
        pl.col("realised_net_profit").alias("net_profit_next_session"),
        pl.lit(False).alias("breached_next_session"),
        pl.lit(False).alias("breach_by_rules"),
        pl.lit(None, dtype=pl.Float64).alias("eod_equity_next_session"),
    ).cast(dict(LABEL_SCHEMA))


def known_history() -> pl.DataFrame:
    """The raw daily P&L behind the labels: the accounts trade on weekdays only, so each span's
    P&L is its last day's (account_id, date, net_profit)."""
    return known_labels().select(
        "account_id",
        pl.col("target_end").alias("date"),
        pl.col("net_profit_next_session").alias("net_profit"),
    )
