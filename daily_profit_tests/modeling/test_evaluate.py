"""Evaluation on the label's span target: the sandbox's truth over spans, non-zero rows apart."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from daily_profit.modeling.evaluate import _interval_metrics, _mean_metrics, truth_over_spans
from daily_profit.trading_calendar import TradingCalendar

THURSDAY = dt.date(2025, 3, 6)


def test_truth_over_spans_sums_the_days_of_each_span() -> None:
    # The truth of day t is about t + 1: Thursday's row is Friday's expected P&L, and so on.
    days = [THURSDAY + dt.timedelta(days=i) for i in range(5)]  # Thu .. Mon
    truth = pl.DataFrame(
        {
            "account_id": ["A"] * 5,
            "date": days,
            "expected_next_day_net_profit": [1.0, 2.0, 3.0, 4.0, 5.0],
            "next_day_std": [1.0, 2.0, 2.0, 4.0, 1.0],
        }
    )
    spans = truth_over_spans(truth, TradingCalendar())
    by_day = {r["date"]: r for r in spans.iter_rows(named=True)}
    # Thursday predicts Friday alone; Friday predicts Sat + Sun + Mon (the truth of Fri..Sun).
    assert by_day[THURSDAY]["expected_next_day_net_profit"] == 1.0
    friday = by_day[THURSDAY + dt.timedelta(days=1)]
    assert friday["expected_next_day_net_profit"] == 2.0 + 3.0 + 4.0
    assert friday["next_day_std"] == pytest.approx(math.sqrt(4 + 4 + 16))
    assert by_day[THURSDAY + dt.timedelta(days=4)]["expected_next_day_net_profit"] == 5.0
    assert set(by_day) == {THURSDAY, THURSDAY + dt.timedelta(days=1), THURSDAY + dt.timedelta(4)}
    # Without Saturday's truth (the account ended), Friday's span gets no oracle, not a part.
    partial = truth_over_spans(truth.filter(pl.col("date") != days[2]), TradingCalendar())
    assert THURSDAY + dt.timedelta(days=1) not in set(partial["date"].to_list())


def test_metrics_on_rows_with_a_non_zero_outcome() -> None:
    y = np.array([0.0, 0.0, 10.0, -10.0])
    pred = np.array([0.0, 0.0, 5.0, -5.0])
    mean = _mean_metrics(y, pred)
    assert mean["rmse"] == pytest.approx(math.sqrt(50 / 4))
    assert mean["rmse_nonzero"] == pytest.approx(5.0)
    lo, hi = pred - 1.0, pred + 1.0
    interval = _interval_metrics(y, lo, hi)
    assert interval["coverage"] == pytest.approx(0.5)  # the zeros are the easy half
    assert interval["coverage_nonzero"] == pytest.approx(0.0)
