"""Baselines are point in time and compute what they claim."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from daily_profit.modeling.baselines import baseline_predictions, history_from_labels

D0 = dt.date(2025, 3, 1)


def _history(values: list[float], account: str = "A") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": [account] * len(values),
            "date": [D0 + dt.timedelta(days=i) for i in range(len(values))],
            "net_profit": values,
        }
    )


def test_baselines_use_history_up_to_d_only() -> None:
    values = [float(v) for v in range(1, 31)]  # P&L 1, 2, ..., 30 on consecutive days
    history = _history(values)
    d = D0 + dt.timedelta(days=9)  # the day with P&L 10
    rows = pl.DataFrame({"account_id": ["A"], "date": [d]})
    base = baseline_predictions(rows, history).row(0, named=True)
    assert base["zero"] == 0.0
    assert base["yesterday"] == 10.0
    assert base["trailing_5d"] == pytest.approx(np.mean([6, 7, 8, 9, 10]))
    assert base["trailing_20d"] == pytest.approx(np.mean(range(1, 11)))
    assert base["account_mean"] == pytest.approx(np.mean(range(1, 11)))
    assert base["baseline_p05"] == pytest.approx(np.quantile(range(1, 11), 0.05))
    assert base["baseline_p95"] == pytest.approx(np.quantile(range(1, 11), 0.95))
    # Changing anything after D changes nothing.
    future = history.with_columns(
        pl.when(pl.col("date") > d).then(1e9).otherwise(pl.col("net_profit")).alias("net_profit")
    )
    assert baseline_predictions(rows, future).equals(baseline_predictions(rows, history))


def test_no_row_on_d_means_no_pnl_yesterday_and_unknown_accounts_get_zero() -> None:
    history = _history([5.0, 7.0])
    rows = pl.DataFrame({"account_id": ["A", "B"], "date": [D0 + dt.timedelta(days=4)] * 2})
    base = baseline_predictions(rows, history)
    assert base["yesterday"].to_list() == [0.0, 0.0]
    assert base["trailing_5d"].to_list() == [6.0, 0.0]
    assert base["account_id"].to_list() == ["A", "B"]  # input order kept


def test_history_from_labels_dates_each_label_on_its_realisation_day() -> None:
    frame = pl.DataFrame(
        {
            "account_id": ["A", "A"],
            "date": [D0, D0 + dt.timedelta(days=1)],
            "net_profit_next_session": [3.0, None],
        }
    )
    history = history_from_labels(frame)
    assert history.rows() == [("A", D0 + dt.timedelta(days=1), 3.0)]
