"""Baselines are point in time, on the label's span target, and compute what they claim."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from daily_profit.modeling.baselines import (
    CARRIED_SOURCE,
    CARRIED_UNREALISED,
    MEAN_BASELINES,
    SHRUNK_ACCOUNT_MEANS,
    baseline_predictions,
    span_history,
)
from daily_profit.trading_calendar import TradingCalendar

D0 = dt.date(2025, 3, 1)  # a Saturday
EVERY_DAY = TradingCalendar(weekdays=frozenset(range(7)))
WEEKDAYS = TradingCalendar()


def _history(values: list[float], account: str = "A", start: dt.date = D0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": [account] * len(values),
            "date": [start + dt.timedelta(days=i) for i in range(len(values))],
            "net_profit": values,
        }
    )


def test_baselines_use_history_up_to_d_only() -> None:
    values = [float(v) for v in range(1, 31)]  # P&L 1, 2, ..., 30 on consecutive days
    history = _history(values)
    d = D0 + dt.timedelta(days=9)  # the day with P&L 10
    rows = pl.DataFrame({"account_id": ["A"], "date": [d]})
    base = baseline_predictions(rows, history, EVERY_DAY).row(0, named=True)
    assert base["zero"] == 0.0
    assert base["yesterday"] == 10.0
    assert base["trailing_5_sessions"] == pytest.approx(np.mean([6, 7, 8, 9, 10]))
    assert base["trailing_20_sessions"] == pytest.approx(np.mean(range(1, 11)))
    assert base["account_mean"] == pytest.approx(np.mean(range(1, 11)))
    assert base["baseline_p05"] == pytest.approx(np.quantile(range(1, 11), 0.05))
    assert base["baseline_p95"] == pytest.approx(np.quantile(range(1, 11), 0.95))


def test_baselines_predict_the_span_to_the_next_session() -> None:
    # Sat 1 .. Fri 14 March 2025, P&L 1, 2, ..., 14: weekend trading belongs to Monday's span.
    history = _history([float(v) for v in range(1, 15)])
    spans = dict(span_history(history, WEEKDAYS).select("date", "net_profit").iter_rows())
    monday, tuesday, next_monday = dt.date(2025, 3, 3), dt.date(2025, 3, 4), dt.date(2025, 3, 10)
    assert spans[monday] == 1.0 + 2.0 + 3.0  # Sat + Sun + Mon
    assert spans[next_monday] == 8.0 + 9.0 + 10.0
    assert set(spans) == set(WEEKDAYS.sessions(monday, dt.date(2025, 3, 14)))
    rows = pl.DataFrame({"account_id": ["A", "A"], "date": [monday, next_monday]})
    base = baseline_predictions(rows, history, WEEKDAYS)
    assert base["yesterday"].to_list() == [6.0, 27.0]
    # The five sessions up to next Monday: Tue 4 .. Fri 7 (one day each) and Mon 10's span.
    assert base["trailing_5_sessions"][1] == pytest.approx(np.mean([4, 5, 6, 7, 27]))
    assert base["account_mean"][1] == pytest.approx(np.mean([6, 4, 5, 6, 7, 27]))
    assert base.row(0, named=True)["account_mean"] == 6.0
    assert WEEKDAYS.sessions(tuesday, tuesday) == [tuesday]


def test_changing_future_days_leaves_every_earlier_baseline_unchanged() -> None:
    rng = np.random.default_rng(3)
    history = pl.concat(
        [_history(list(rng.normal(0, 100, 60)), account=acc) for acc in ("A", "B", "C")]
    )
    sessions = WEEKDAYS.sessions(D0, D0 + dt.timedelta(days=59))
    rows = pl.DataFrame(
        {
            "account_id": [a for a in ("A", "B", "C") for _ in sessions],
            "date": sessions * 3,
        }
    )
    cut = sessions[20]
    future = history.with_columns(
        pl.when(pl.col("date") > cut)
        .then(pl.col("net_profit") * 1e3 + 1e6)
        .otherwise(pl.col("net_profit"))
        .alias("net_profit")
    )
    # Future rows added for a new account and dropped for another change nothing earlier either.
    future = pl.concat(
        [
            future.filter(~((pl.col("account_id") == "B") & (pl.col("date") > cut))),
            _history([5e5] * 10, account="A2", start=cut + dt.timedelta(days=1)),
        ]
    )
    before = baseline_predictions(rows, history, WEEKDAYS)
    after = baseline_predictions(rows, future, WEEKDAYS)
    earlier = pl.col("date") <= cut
    assert after.filter(earlier).equals(before.filter(earlier))
    # ... and the later rows do move: the perturbation is visible where it may be.
    later = ~earlier
    assert not after.filter(later)[list(MEAN_BASELINES[1:])].equals(
        before.filter(later)[list(MEAN_BASELINES[1:])]
    )


def test_no_row_in_the_span_means_no_pnl_yesterday_and_unknown_accounts_get_zero() -> None:
    history = _history([5.0, 7.0])
    rows = pl.DataFrame({"account_id": ["A", "B"], "date": [D0 + dt.timedelta(days=4)] * 2})
    base = baseline_predictions(rows, history, EVERY_DAY)
    assert base["yesterday"].to_list() == [0.0, 0.0]
    assert base["trailing_5_sessions"].to_list() == [6.0, 0.0]
    assert base["account_id"].to_list() == ["A", "B"]  # input order kept
    assert base.columns == [
        "account_id",
        "date",
        *MEAN_BASELINES,
        "baseline_p05",
        "baseline_p95",
        "typical_move",
        *SHRUNK_ACCOUNT_MEANS,
        CARRIED_UNREALISED,
    ]


def test_the_carried_unrealised_pnl_is_the_rows_own_open_positions() -> None:
    history = _history([5.0, 7.0])
    day = D0 + dt.timedelta(days=1)
    rows = pl.DataFrame(
        {
            "account_id": ["A", "A", "B"],
            "date": [day] * 3,
            CARRIED_SOURCE: [120.5, None, float("nan")],
        }
    )
    base = baseline_predictions(rows, history, EVERY_DAY)
    # Nothing open (null) or not computable (NaN) carries nothing.
    assert base[CARRIED_UNREALISED].to_list() == [120.5, 0.0, 0.0]
    without = baseline_predictions(rows.drop(CARRIED_SOURCE), history, EVERY_DAY)
    assert without[CARRIED_UNREALISED].to_list() == [0.0, 0.0, 0.0]


def test_the_shrunk_account_mean_trusts_an_account_as_far_as_its_history_goes() -> None:
    # A: 40 sessions of +10; B: 4 sessions of +10 (the same mean, a tenth of the evidence).
    history = pl.concat([_history([10.0] * 40, account="A"), _history([10.0] * 4, account="B")])
    day = D0 + dt.timedelta(days=39)
    rows = pl.DataFrame({"account_id": ["A", "B", "C"], "date": [day] * 3})
    base = baseline_predictions(rows, history, EVERY_DAY)
    assert base["account_mean"].to_list() == [10.0, 10.0, 0.0]
    for name, k in SHRUNK_ACCOUNT_MEANS.items():
        a, b, c = base[name].to_list()
        assert a == pytest.approx(10.0 * 40 / (40 + k))
        assert b == pytest.approx(10.0 * 4 / (4 + k))
        assert c == 0.0  # no history: no edge assumed
